package broker

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A second upgrade request pipelined on an upgraded socket, one that would
// fail a check (no Sec-WebSocket-Key: 400), must not get an HTTP answer
// written into the WebSocket stream: after the 101 only frames follow.
func TestPipelinedBadUpgradeWritesNothingIntoTheStream(t *testing.T) {
	ts := startServer(t, nil)
	c, err := net.Dial("tcp", ts.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	good := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: " + testOrigin + "\r\n\r\n"
	bad := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Origin: " + testOrigin + "\r\n\r\n"
	if _, err := c.Write([]byte(good + bad)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "upgraded", func() bool { return ts.Stats().Connections == 1 })
	// The second request's handler has run: it counts a bad handshake.
	waitFor(t, 5*time.Second, "the pipelined request refused", func() bool { return ts.Stats().BadHandshake == 1 })
	if code, _ := publish(t, ts.adminURL, testKey, `{"eventType":1}`); code != 202 {
		t.Fatal(code)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	want := "\r\n\r\n\x81\x0f{\"eventType\":1}"
	for !strings.Contains(string(got), want) {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if strings.Count(string(got), "HTTP/1.1") != 1 || !strings.HasSuffix(string(got), want) {
		t.Fatalf("stream after the upgrade: %q", got)
	}
}

// An upgrade that reaches the table after Shutdown began gets a 503, not
// an EOF.
func TestUpgradeRacingShutdownGets503(t *testing.T) {
	ts := startServer(t, nil)
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	hook := func() {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	testHookUpgrade.Store(&hook)
	t.Cleanup(func() { testHookUpgrade.Store(nil) })

	type result struct {
		code int
		err  error
	}
	res := make(chan result, 1)
	go func() {
		_, resp, err := websocket.DefaultDialer.Dial(ts.wsURL, http.Header{"Origin": {testOrigin}})
		if resp != nil {
			res <- result{resp.StatusCode, nil}
			return
		}
		res <- result{0, err}
	}()
	<-entered
	done := make(chan error, 1)
	go func() { done <- ts.Shutdown(t.Context()) }()
	waitFor(t, 5*time.Second, "draining", func() bool { return ts.draining.Load() })
	close(release)
	r := <-res
	if r.code != http.StatusServiceUnavailable {
		t.Fatalf("upgrade racing shutdown: status %d (%v), want 503", r.code, r.err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// -max-conns holds under a burst of concurrent upgrades: the cap is
// checked and counted under one lock.
func TestMaxConnsUnderConcurrentUpgrades(t *testing.T) {
	const limit = 10
	ts := startServer(t, func(c *Config) { c.MaxConns = limit })
	// Every handler waits at the same point, so all of them pass the early
	// check before any is added.
	var arrived atomic.Int32
	gate := make(chan struct{})
	hook := func() {
		if arrived.Add(1) == 40 {
			close(gate)
		}
		<-gate
	}
	testHookUpgrade.Store(&hook)
	t.Cleanup(func() { testHookUpgrade.Store(nil) })
	var wg sync.WaitGroup
	var ok, full atomic.Int32
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, resp, err := websocket.DefaultDialer.Dial(ts.wsURL, http.Header{"Origin": {testOrigin}})
			switch {
			case err == nil:
				ok.Add(1)
				t.Cleanup(func() { _ = c.Close() })
			case resp != nil && resp.StatusCode == http.StatusServiceUnavailable:
				full.Add(1)
			default:
				t.Errorf("dial: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != limit || full.Load() != 40-limit {
		t.Fatalf("%d upgraded, %d refused; want %d and %d", ok.Load(), full.Load(), limit, 40-limit)
	}
	if n := ts.Stats().Connections; n != limit {
		t.Fatalf("%d connections in the table", n)
	}
}

// After a protocol error the broker sends 1002 and closes the socket as
// soon as the client answers, not after CloseTimeout.
func TestProtocolErrorClosesOnReply(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.CloseTimeout = 20 * time.Second })
	rc := dialRaw(t, ts.Addr())
	rc.writeFrame(true, opText, []byte("x"), false) // unmasked: protocol error
	if code := rc.expectCloseCode(); code != closeProtocolError {
		t.Fatalf("close %d", code)
	}
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], closeProtocolError)
	rc.writeFrame(true, opClose, p[:], true)
	start := time.Now()
	_ = rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(rc.br); err != nil {
		t.Fatalf("socket not closed after the reply: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("closed %v after the reply; CloseTimeout is 20s", d)
	}
}

// A client that closes while it has a backlog queued in the broker still
// receives the backlog and then the close reply; closing the socket at once
// would discard them (the client would see 1006).
func TestCloseReplyBehindBacklog(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.SocketWriteBuffer = 4096 // the kernel takes little: nbio holds the rest
		c.WriteWindow = 1 << 20    // and the broker writes far more than that
		c.NotSentLowat = -1
		c.CloseTimeout = 10 * time.Second
	})
	rc := dialRaw(t, ts.Addr())
	pad := strings.Repeat("y", 2000)
	var parts []string
	for i := 0; i < 400; i++ {
		parts = append(parts, `{"eventType":5,"file":"`+pad+`"}`)
	}
	if code, _ := publish(t, ts.adminURL, testKey, "["+strings.Join(parts, ",")+"]"); code != 202 {
		t.Fatal(code)
	}
	var c *conn
	waitFor(t, 5*time.Second, "backlog in nbio", func() bool {
		ts.hub.each(func(x *conn) { c = x })
		return c != nil && c.pending() > 0
	})
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], closeNormal)
	rc.writeFrame(true, opClose, p[:], true)
	// The broker has taken the close (its answer is queued behind the
	// backlog) before the client reads anything.
	waitFor(t, 5*time.Second, "the close taken", func() bool { return c.closing.Load() })
	for {
		_ = rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, op, payload := rc.readFrame()
		if op == opClose {
			if len(payload) < 2 || binary.BigEndian.Uint16(payload) != closeNormal {
				t.Fatalf("close reply %v", payload)
			}
			return
		}
	}
}

// A mass disconnect while events are being written leaves the broker
// working: the workers write without holding their shard's lock, so
// nbio's close callbacks (which take it) can never wait on a writer that
// waits on them.
func TestMassDisconnectWhilePublishing(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 400 sockets")
	}
	ts := startServer(t, func(c *Config) { c.Shards = 1 })
	var conns []*rawConn
	for i := 0; i < 400; i++ {
		conns = append(conns, dialRaw(t, ts.Addr()))
	}
	waitFor(t, 5*time.Second, "registered", func() bool { return ts.Stats().Connections == 400 })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ts.publish([][]byte{[]byte(`{"eventType":1,"username":"x"}`)})
			time.Sleep(100 * time.Microsecond) // a steady publisher while the sockets go
		}
	}()
	for _, rc := range conns {
		if tc, ok := rc.c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = rc.c.Close()
	}
	waitFor(t, 10*time.Second, "all removed", func() bool { return ts.Stats().Connections == 0 })
	c := dial(t, ts.wsURL, testOrigin)
	close(stop)
	wg.Wait()
	if code, _ := publish(t, ts.adminURL, testKey, `{"eventType":2}`); code != 202 {
		t.Fatal(code)
	}
	for {
		if got := read(t, c); got == `{"eventType":2}` {
			break
		}
	}
}

// A backend socket that publishes while the broker is saturated is paced
// (read more slowly), not dropped: every event it sent is published, in
// order, once the broker catches up.
func TestBackendSocketPaced(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.MaxLag = 2 * time.Second // the majority that gave up is cut after this
		c.PublishLag = 50 * time.Millisecond
	})
	// Readers that answer one credit ping and then stop reading: behind,
	// with a vote until they stall (a socket that never reads has none).
	var stalled []*rawConn
	for i := 0; i < 6; i++ {
		r := dialRaw(t, ts.Addr())
		r.answerCreditPings(1)
		stalled = append(stalled, r)
	}
	good := dial(t, ts.wsURL, testOrigin)
	be := dialBackend(t, ts.wsURL, testKey)
	go func() { // a backend reads what it is sent (and so answers pings)
		for {
			if _, _, err := be.ReadMessage(); err != nil {
				return
			}
		}
	}()
	waitFor(t, 5*time.Second, "registered", func() bool { return ts.Stats().Connections == 8 })
	pad := strings.Repeat("p", 4000)
	const events = 100
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := 0; i < events; i++ {
			msg := fmt.Sprintf(`{"eventType":6,"n":%d,"file":"%s"}`, i, pad)
			if err := be.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				return
			}
			time.Sleep(2 * time.Millisecond) // a steady publisher, not one burst
		}
	}()
	// The reader keeps reading throughout, as clients do (it answers the
	// broker's pings as it goes).
	msgs := make(chan string, events+10)
	go func() {
		for {
			_, b, err := good.ReadMessage()
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(b)
		}
	}()
	next := func() string {
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatalf("reader closed; stats %+v", ts.Stats())
			}
			return m
		case <-time.After(20 * time.Second):
			t.Fatalf("timeout; stats %+v", ts.Stats())
		}
		return ""
	}
	for i := 0; i < events; i++ {
		if m, want := next(), fmt.Sprintf(`"n":%d,`, i); !strings.Contains(m, want) {
			t.Fatalf("event %d: %.40s", i, m)
		}
	}
	st := ts.Stats()
	if st.Paced == 0 || st.PublishWaits == 0 {
		t.Fatalf("backend never paced: %+v", st)
	}
	waitFor(t, 10*time.Second, "the stalled clients cut as slow consumers", func() bool {
		return ts.Stats().Closed["slow_consumer"] == int64(len(stalled))
	})
	<-published // the publisher goroutine is done with be
	// The backend is still connected and still publishes.
	if n := ts.Stats().Connections; n != 2 {
		t.Fatalf("%d connections, want the reader and the backend", n)
	}
	if err := be.WriteMessage(websocket.TextMessage, []byte(`{"eventType":1,"username":"after"}`)); err != nil {
		t.Fatal(err)
	}
	for next() != `{"eventType":1,"username":"after"}` {
	}
	_ = stalled
}

// Over max-output-memory, the connections holding the most buffered output
// are closed at once; the others stay.
func TestOutputMemoryGuard(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.HistorySize = 2 << 20
		c.MaxOutputMemory = 3 << 20 // the log plus a little
		c.WriteWindow = 8 << 20     // let stalled sockets hold a lot in nbio
		c.SocketWriteBuffer = 4096
		c.NotSentLowat = -1
		c.MaxLag = time.Minute
		c.PublishLag = -1
	})
	var stalled []net.Conn
	for i := 0; i < 4; i++ {
		stalled = append(stalled, dialTinyBuffer(t, ts.Addr()))
	}
	good := dial(t, ts.wsURL, testOrigin)
	waitFor(t, 5*time.Second, "registered", func() bool { return ts.Stats().Connections == 5 })
	pad := strings.Repeat("m", 4000)
	for r := 0; r < 4; r++ {
		parts := make([]string, 50)
		for i := range parts {
			parts[i] = fmt.Sprintf(`{"eventType":6,"file":"%s"}`, pad)
		}
		if code, _ := publish(t, ts.adminURL, testKey, "["+strings.Join(parts, ",")+"]"); code != 202 {
			t.Fatal(code)
		}
		for i := 0; i < 50; i++ {
			read(t, good)
		}
	}
	waitFor(t, 5*time.Second, "guard", func() bool { return ts.Stats().Closed["output_memory"] > 0 })
	if st := ts.Stats(); st.MemoryCloses == 0 || st.Connections < 1 {
		t.Fatalf("%+v", st)
	}
	// The reader, holding nothing, is still there.
	if code, _ := publish(t, ts.adminURL, testKey, `{"eventType":2}`); code != 202 {
		t.Fatal(code)
	}
	if got := read(t, good); got != `{"eventType":2}` {
		t.Fatal(got)
	}
	_ = stalled
}

// dialTinyBuffer upgrades a connection whose receive buffer is set small
// before connecting (so the kernel cannot hold a backlog for it), and
// never reads it.
func dialTinyBuffer(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: " + testOrigin + "\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	var head []byte
	b := make([]byte, 1)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for !strings.HasSuffix(string(head), "\r\n\r\n") {
		if _, err := c.Read(b); err != nil {
			t.Fatal(err)
		}
		head = append(head, b[0])
	}
	if !strings.HasPrefix(string(head), "HTTP/1.1 101") {
		t.Fatalf("handshake: %s", head)
	}
	return c
}
