package broker

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/webinate/broker/internal/testutil"
)

var soakFlag = flag.Duration("soak", 0, "churn soak duration (default $BROKER_SOAK or 30s; scripts/soak.sh runs 10m)")

func soakDuration(t *testing.T) time.Duration {
	if *soakFlag > 0 {
		return *soakFlag
	}
	if v := os.Getenv("BROKER_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("BROKER_SOAK=%q: %v", v, err)
		}
		return d
	}
	return 30 * time.Second
}

// TestChurnSoak connects and disconnects thousands of clients, in every
// rude and polite way, while events are published; stable clients must not
// lose or reorder any event, and goroutines and heap must come back to
// where they started.
func TestChurnSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	dur := soakDuration(t)
	ts := startServer(t, func(c *Config) {
		c.CloseTimeout = 200 * time.Millisecond
		c.BroadcastRate = -1
	})
	const stableN, churners = 20, 8

	// Settle, then take the baseline with the server idle.
	warm := dial(t, ts.wsURL, testOrigin)
	send(t, warm, `{"eventType":10,"message":"warm"}`)
	read(t, warm)
	_ = warm.Close()
	waitFor(t, 5*time.Second, "warm-up conn gone", func() bool { return ts.Stats().Connections == 0 })
	baseG, baseHeap := settle()
	baseRSS := rssBytes()

	stable := make([]*websocket.Conn, stableN)
	for i := range stable {
		stable[i] = dial(t, ts.wsURL, testOrigin)
	}
	var published atomic.Int64
	received := make([]atomic.Int64, stableN)
	errs := make(chan error, stableN+churners+1)
	var readers sync.WaitGroup
	for i, c := range stable {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for want := int64(0); ; want++ {
				_ = c.SetReadDeadline(time.Now().Add(dur + 30*time.Second))
				_, b, err := c.ReadMessage()
				if err != nil {
					return // closed at the end of the test
				}
				var e struct {
					EventType int
					Seq       int64
				}
				if err := json.Unmarshal(b, &e); err != nil || e.EventType != 4 || e.Seq != want {
					errs <- fmt.Errorf("stable client %d: got %s, want seq %d", i, b, want)
					return
				}
				received[i].Store(want + 1)
			}
		}()
	}

	deadline := time.Now().Add(dur)
	var work sync.WaitGroup
	work.Add(1)
	go func() { // publisher, ~200 events/s in small batches
		defer work.Done()
		client := &http.Client{Timeout: 5 * time.Second}
		for seq := int64(0); time.Now().Before(deadline); {
			n := 1 + seq%3
			parts := make([]string, n)
			for j := range parts {
				parts[j] = fmt.Sprintf(`{"eventType":4,"username":"u","seq":%d}`, seq+int64(j))
			}
			req, _ := http.NewRequest(http.MethodPost, ts.adminURL+"/api/events", strings.NewReader("["+strings.Join(parts, ",")+"]"))
			req.Header.Set("Authorization", "Bearer "+testKey)
			resp, err := client.Do(req)
			if err != nil || resp.StatusCode != http.StatusAccepted {
				errs <- fmt.Errorf("publish: %v %v", err, resp)
				return
			}
			resp.Body.Close()
			seq += n
			published.Store(seq)
			time.Sleep(10 * time.Millisecond) // the pace of a steady publisher
		}
	}()
	var cycles atomic.Int64
	for w := 0; w < churners; w++ {
		work.Add(1)
		go func() {
			defer work.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				if err := churnOnce(ts.Addr(), (w+i)%5); err != nil {
					errs <- fmt.Errorf("churner %d: %v", w, err)
					return
				}
				cycles.Add(1)
				time.Sleep(20 * time.Millisecond) // stay within ephemeral ports
			}
		}()
	}
	work.Wait()

	total := published.Load()
	waitFor(t, 30*time.Second, "stable clients caught up", func() bool {
		for i := range received {
			if received[i].Load() != total {
				return false
			}
		}
		return true
	})
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	for _, c := range stable {
		_ = c.Close()
	}
	readers.Wait()
	waitFor(t, 10*time.Second, "all connections gone", func() bool { return ts.Stats().Connections == 0 })

	var g int
	var heap uint64
	testutil.Eventually(10*time.Second, func() bool {
		g, heap = settle()
		return g <= baseG+10 && heap <= baseHeap+16<<20
	})
	t.Logf("soak %v: %d churn cycles, %d events to %d stable clients; goroutines %d -> %d, heap %d -> %d KiB; closes %v",
		dur, cycles.Load(), total, stableN, baseG, g, baseHeap>>10, heap>>10, ts.Stats().Closed)
	if g > baseG+10 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines %d -> %d\n%s", baseG, g, buf[:runtime.Stack(buf, true)])
	}
	if heap > baseHeap+16<<20 {
		t.Fatalf("heap %d -> %d KiB", baseHeap>>10, heap>>10)
	}
	// RSS only shrinks when the runtime returns memory; force that, then
	// allow for what the churn legitimately keeps (nbio buffer pools).
	debug.FreeOSMemory()
	if rss := rssBytes(); !raceEnabled && baseRSS > 0 && rss > baseRSS+64<<20 {
		t.Fatalf("RSS %d -> %d MiB", baseRSS>>20, rss>>20)
	} else {
		t.Logf("RSS %d -> %d MiB", baseRSS>>20, rss>>20)
	}
	if cycles.Load() < 100 {
		t.Fatalf("only %d churn cycles", cycles.Load())
	}
}

// rssBytes reads this process's resident set size (0 where /proc is
// missing).
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb uint64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}

func settle() (int, uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapAlloc
}

// churnOnce opens one connection and ends it in one of several ways.
func churnOnce(addr string, mode int) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var key [16]byte
	_, _ = rand.Read(key[:])
	if mode == 4 {
		// Never finish the handshake: just hang up mid-request.
		_, err = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"))
		return err
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\nOrigin: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(key[:]), testOrigin)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("handshake status %d", resp.StatusCode)
	}
	switch mode {
	case 0: // abrupt disconnect
		return nil
	case 1: // echo, then a proper close handshake
		if _, err := c.Write(maskedFrame(true, opText, []byte(`{"eventType":10,"message":"churn"}`))); err != nil {
			return err
		}
		if _, err := c.Write(maskedFrame(true, opClose, []byte{0x03, 0xE8})); err != nil {
			return err
		}
		// Read until the server's close (events may come first).
		for {
			var h [2]byte
			if _, err := br.Read(h[:1]); err != nil {
				return nil
			}
		}
	case 2: // garbage
		_, _ = c.Write([]byte("\x00\x01garbage\xff"))
		return nil
	case 3: // half a frame, then gone
		f := maskedFrame(true, opText, []byte(`{"eventType":10,"message":"half"}`))
		_, _ = c.Write(f[:len(f)/2])
		return nil
	}
	return nil
}
