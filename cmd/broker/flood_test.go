package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/webinate/broker/internal/testutil"
	"github.com/webinate/broker/wsframe"
)

// A publish flood against the real binary, with fast readers and clients
// that never read: publishers are held back to what the readers take
// (503 when saturated, never a silent drop), every reader receives every
// accepted event in order, the stalled clients are closed with 1008, and
// the broker's peak RSS (VmHWM, from /proc) stays within 64 MiB + 2 KiB
// per connection, the bound of issue #8. Without the shared log and its
// credit windows, each stalled connection would buffer its own backlog.
func TestFloodBoundedMemoryNoLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a broker process for several seconds")
	}
	const (
		readers    = 150
		stalled    = 50
		publishers = 4
		batch      = 50
		flood      = 4 * time.Second
	)
	bin := buildBroker(t)
	p := startBroker(t, bin, append(os.Environ(), "BROKER_SOCKET_API_KEY=flood-key"),
		"-listen", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0",
		"-max-lag", "2s")
	addr, _ := p.started["addr"].(string)
	admin, _ := p.started["admin"].(string)
	pid := p.cmd.Process.Pid

	type reader struct {
		c    *websocket.Conn
		got  [publishers]int64 // next expected seq per publisher
		n    atomic.Int64
		err  error
		done chan struct{}
	}
	rs := make([]*reader, readers)
	for i := range rs {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/", http.Header{"Origin": {"http://localhost"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		rs[i] = &reader{c: c, done: make(chan struct{})}
	}
	var stalls []net.Conn
	for i := 0; i < stalled; i++ {
		stalls = append(stalls, rawUpgrade(t, addr))
	}
	// Every socket counts (its cursor is placed) before the flood starts.
	testutil.WaitFor(t, 10*time.Second, "every socket registered", func() bool { return connections(t, admin) == readers+stalled })
	for _, r := range rs {
		go func() {
			defer close(r.done)
			for {
				_, b, err := r.c.ReadMessage()
				if err != nil {
					r.err = err
					return
				}
				// {"eventType":5,"p":P,"seq":N,...}
				pi := bytes.Index(b, []byte(`"p":`))
				si := bytes.Index(b, []byte(`,"seq":`))
				ei := bytes.IndexByte(b[si+7:], ',')
				if pi < 0 || si < 0 || ei < 0 {
					r.err = fmt.Errorf("unexpected event %.80s", b)
					return
				}
				pub, _ := strconv.Atoi(string(b[pi+4 : si]))
				seq, _ := strconv.ParseInt(string(b[si+7:si+7+ei]), 10, 64)
				if seq != r.got[pub] {
					r.err = fmt.Errorf("publisher %d: seq %d, want %d", pub, seq, r.got[pub])
					return
				}
				r.got[pub]++
				r.n.Add(1)
			}
		}()
	}

	var accepted [publishers]int64
	var refused atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(flood)
	pad := strings.Repeat("x", 64)
	for pub := 0; pub < publishers; pub++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 30 * time.Second}
			var seq int64
			for time.Now().Before(end) {
				var body bytes.Buffer
				body.WriteByte('[')
				for j := 0; j < batch; j++ {
					if j > 0 {
						body.WriteByte(',')
					}
					fmt.Fprintf(&body, `{"eventType":5,"p":%d,"seq":%d,"pad":"%s"}`, pub, seq+int64(j), pad)
				}
				body.WriteByte(']')
				req, _ := http.NewRequest(http.MethodPost, "http://"+admin+"/api/events", &body)
				req.Header.Set("Authorization", "Bearer flood-key")
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("publish: %v", err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusAccepted:
					seq += batch
				case http.StatusServiceUnavailable:
					// Saturated: nothing was published; the same
					// sequence numbers go again.
					if resp.Header.Get("Retry-After") == "" {
						t.Errorf("503 without Retry-After")
					}
					refused.Add(1)
				default:
					t.Errorf("publish: HTTP %d", resp.StatusCode)
					return
				}
			}
			accepted[pub] = seq
		}()
	}
	wg.Wait()
	var total int64
	for _, n := range accepted {
		total += n
	}
	if total == 0 {
		t.Fatal("nothing was accepted")
	}
	// Every reader gets every accepted event, in order. A reader's
	// goroutine ends (done) only on an error, which it has set by then.
	deadline := time.Now().Add(30 * time.Second)
	for i, r := range rs {
		testutil.Eventually(time.Until(deadline), func() bool {
			select {
			case <-r.done:
				return true
			default:
				return r.n.Load() >= total
			}
		})
		select {
		case <-r.done:
			t.Fatalf("reader %d after %d events: %v", i, r.n.Load(), r.err)
		default:
		}
		if got := r.n.Load(); got != total {
			t.Fatalf("reader %d received %d of %d accepted events", i, got, total)
		}
	}
	hwm := vmHWM(t, pid)
	bound := int64(64<<20 + 2<<10*(readers+stalled))
	t.Logf("accepted %d events (%d requests refused with 503), %d deliveries; broker peak RSS %.1f MiB (bound %.1f MiB)",
		total, refused.Load(), total*readers, float64(hwm)/(1<<20), float64(bound)/(1<<20))
	if hwm > bound {
		t.Errorf("broker peak RSS %d bytes, bound %d", hwm, bound)
	}
	// The stalled clients were closed with 1008, within the lag bound (they
	// have been stalled for longer than -max-lag by now).
	for i, c := range stalls {
		if code := readCloseCode(c); code != 1008 {
			t.Fatalf("stalled client %d: close code %d, want 1008", i, code)
		}
	}
}

// rawUpgrade completes a WebSocket handshake on a plain TCP connection that
// the test then never reads (until readCloseCode).
func rawUpgrade(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	var k [16]byte
	_, _ = rand.Read(k[:])
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\nOrigin: http://localhost\r\n\r\n",
		addr, base64.StdEncoding.EncodeToString(k[:]))
	// Read exactly the response head, byte by byte, so no frame is consumed.
	var head []byte
	b := make([]byte, 1)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := c.Read(b); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		head = append(head, b[0])
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101")) {
		t.Fatalf("handshake: %s", head)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c
}

// readCloseCode reads server frames until a close frame and returns its
// code, or 0 if the connection ends without one.
func readCloseCode(c net.Conn) int {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	for {
		h, err := wsframe.FromServer.ReadHeader(r)
		if err != nil || h.Length > 1<<30 {
			return 0
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(r, p); err != nil {
			return 0
		}
		if h.Op == wsframe.OpClose && len(p) >= 2 {
			return int(binary.BigEndian.Uint16(p))
		}
	}
}

// vmHWM is a process's peak resident set size, from /proc.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}
