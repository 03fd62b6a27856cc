package broker

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
)

// 200 clients never read while 2,000 events of 4 KiB are published: they
// are dropped as slow consumers, a reading client gets every event, and the
// heap stays within what the configured bounds allow.
func TestSlowConsumers(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 8 MiB to 200 sockets")
	}
	const (
		slow       = 200
		events     = 2000
		eventSize  = 4096
		perRequest = 40
		maxPending = 256 << 10
	)
	ts := startServer(t, func(c *Config) {
		c.MaxPendingBytes = maxPending
		c.MaxPublishBytes = 192 << 10
		c.SocketWriteBuffer = 32 << 10 // small kernel buffers: reach the bound sooner
		// Long enough for every stalled client to read its backlog and
		// the close frame below before the broker gives up on it.
		c.CloseTimeout = 30 * time.Second
		// The stalled clients are the majority, so publishers are held
		// (the broker as a whole is behind) until MaxLag cuts them.
		c.MaxLag = time.Second
		c.PublishWait = 20 * time.Second
	})
	good := dial(t, ts.wsURL, testOrigin)
	var stalled []*rawConn
	for i := 0; i < slow; i++ {
		// Never read. (A tiny SO_RCVBUF would reach the bound sooner, but on
		// loopback, whose MSS is 64 KiB, it stalls the later catch-up read
		// behind TCP's zero-window probe backoff.)
		stalled = append(stalled, dialRaw(t, ts.Addr()))
	}
	waitFor(t, 5*time.Second, "registered", func() bool { return ts.Stats().Connections == slow+1 })

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	received := make(chan error, 1)
	var got atomic.Int64
	go func() {
		_ = good.SetReadDeadline(time.Now().Add(60 * time.Second))
		for i := 0; i < events; i++ {
			_, b, err := good.ReadMessage()
			if err != nil {
				received <- fmt.Errorf("event %d: %v", i, err)
				return
			}
			if want := fmt.Sprintf(`"seq":%d,`, i); !strings.Contains(string(b), want) {
				received <- fmt.Errorf("event %d out of order: %.60s", i, b)
				return
			}
			got.Store(int64(i + 1))
		}
		received <- nil
	}()
	pad := strings.Repeat("x", eventSize-60)
	for i := 0; i < events; i += perRequest {
		// Pace the publisher to the reading client (it is "normal": it
		// keeps up with the load, however slow the machine), so only the
		// stalled sockets can reach the pending bound.
		waitFor(t, 30*time.Second, "reader keeping up", func() bool { return got.Load() >= int64(i) })
		parts := make([]string, perRequest)
		for j := range parts {
			parts[j] = fmt.Sprintf(`{"eventType":5,"seq":%d,"file":"%s"}`, i+j, pad)
		}
		if code, body := publish(t, ts.adminURL, testKey, "["+strings.Join(parts, ",")+"]"); code != http.StatusAccepted {
			t.Fatalf("publish: %d %s", code, body)
		}
	}
	if err := <-received; err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "slow consumers detected", func() bool { return ts.Stats().SlowConsumers == slow })
	close(stop)
	sampler.Wait()
	// A stalled client that finally reads finds, after its backlog, a
	// close frame that says why; hanging up then frees it at once.
	for i, r := range stalled {
		if code := r.expectCloseCode(); code != closePolicyViolation {
			t.Fatalf("slow consumer %d: close %d, want 1008", i, code)
		}
		_ = r.c.Close()
	}
	waitFor(t, 10*time.Second, "slow consumers dropped", func() bool {
		st := ts.Stats()
		return st.Closed["slow_consumer"] == slow && st.Connections == 1
	})
	// What the bounds allow: each stalled connection's pending bytes (plus
	// nbio's backstop headroom), the shared encoded events (queued once, not
	// per connection) and the request bodies. HeapAlloc also counts garbage
	// not yet collected, which the default GOGC lets reach the live size,
	// hence the factor 2. Without the bound, 200 x 8 MiB would be buffered.
	live := uint64(slow*(maxPending+64<<10) + 2*events*eventSize)
	bound := 2*live + 32<<20
	if grew := peak.Load() - min(base, peak.Load()); grew > bound {
		t.Fatalf("heap grew by %d MiB, bound %d MiB", grew>>20, bound>>20)
	}
	t.Logf("heap peak growth %d MiB (bound %d MiB)", (peak.Load()-min(base, peak.Load()))>>20, bound>>20)
}

func TestServerPingsAndIdleTimeout(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.PingInterval = 100 * time.Millisecond
		c.IdleTimeout = 600 * time.Millisecond
	})
	// A live client answers pings (gorilla does inside ReadMessage) and stays.
	live := dial(t, ts.wsURL, testOrigin)
	var pings atomic.Int32
	live.SetPingHandler(func(s string) error {
		pings.Add(1)
		return live.WriteControl(websocket.PongMessage, []byte(s), time.Now().Add(time.Second))
	})
	go func() {
		for {
			if _, _, err := live.ReadMessage(); err != nil {
				return
			}
		}
	}()
	// A silent raw client sees pings, never answers, and is closed.
	r := dialRaw(t, ts.Addr())
	_, op, _ := r.readFrame()
	if op != opPing {
		t.Fatalf("want a ping, got op %d", op)
	}
	start := time.Now()
	if code := r.expectCloseCode(); code != closeGoingAway {
		t.Fatalf("idle close %d, want 1001", code)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("idle close took %v", d)
	}
	// The live client answers pings for longer than an idle timeout after
	// the silent one was cut (a ping every 100 ms: 7 of them span 700 ms),
	// counted by the pings it saw rather than slept through.
	seen := pings.Load()
	waitFor(t, 5*time.Second, "7 more pings answered", func() bool { return pings.Load() >= seen+7 })
	send(t, live, `{"eventType":10,"message":"alive"}`)
	waitFor(t, 2*time.Second, "live client still connected", func() bool { return ts.Stats().MessagesIn >= 1 })
	waitFor(t, 5*time.Second, "idle close counted", func() bool { return ts.Stats().Closed["idle_timeout"] == 1 })
}

func TestHandshakeTimeoutDropsSlowloris(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", ts.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	// Dribble an incomplete request, one header line at a time.
	go func() {
		for i := 0; i < 20; i++ {
			if _, err := fmt.Fprintf(c, "X-Drip-%d: y\r\n", i); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond) // the slow drip is the attack being tested
		}
	}()
	_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	for {
		if _, err := c.Read(buf); err != nil {
			break
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("slowloris connection held for %v", d)
	}
	// An upgraded connection is not subject to the handshake deadline.
	live := dial(t, ts.wsURL, testOrigin)
	// Idle past the handshake timeout (300 ms): the time that passes is
	// what is tested, so it is slept, not waited on.
	time.Sleep(500 * time.Millisecond)
	send(t, live, `{"eventType":10,"message":"x"}`)
	if got := read(t, live); got != `{"eventType":10,"message":"x"}` {
		t.Fatal(got)
	}
}

func TestMaxConns(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxConns = 3 })
	var conns []*websocket.Conn
	for i := 0; i < 3; i++ {
		conns = append(conns, dial(t, ts.wsURL, testOrigin))
	}
	_, code := rawHandshake(t, ts.Addr(), map[string]string{"Origin": testOrigin})
	if code != http.StatusServiceUnavailable {
		t.Fatalf("4th connection: %d, want 503", code)
	}
	_ = conns[0].Close()
	waitFor(t, 5*time.Second, "slot freed", func() bool { return ts.Stats().Connections == 2 })
	dial(t, ts.wsURL, testOrigin)
}

// A sender over the message rate is paced, not refused: 1,000 echoes sent
// back to back are all answered, in order, with no error event, while the
// broker holds its input.
func TestFastSenderPaced(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.MessageRate = 2000
		c.MessageBurst = 50
	})
	echoBurst(t, ts, 1000)
	if ts.Stats().Paced == 0 {
		t.Fatal("the sender was never paced")
	}
	if n := ts.Stats().ErrorsOut; n != 0 {
		t.Fatalf("%d error events", n)
	}
}

// With default flags, a burst of 1,000 echoes is answered in full, in order.
func TestEchoBurstDefaults(t *testing.T) {
	ts := startServer(t, nil)
	echoBurst(t, ts, 1000)
	if n := ts.Stats().ErrorsOut; n != 0 {
		t.Fatalf("%d error events", n)
	}
}

// echoBurst writes n echo requests back to back from one goroutine while
// another reads the replies, and checks every reply in order.
func echoBurst(t *testing.T, ts *testServer, n int) {
	t.Helper()
	c := dial(t, ts.wsURL, testOrigin)
	errs := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			msg := fmt.Sprintf(`{"eventType":10,"message":"m%d"}`, i)
			if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i := 0; i < n; i++ {
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if want := fmt.Sprintf(`{"eventType":10,"message":"m%d"}`, i); string(b) != want {
			t.Fatalf("reply %d: %s, want %s", i, b, want)
		}
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// Echo broadcasts over their rate are paced too: every one reaches the
// other client, in order, later rather than never.
func TestEchoBroadcastPaced(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.BroadcastRate = 20
		c.BroadcastBurst = 2
	})
	a := dial(t, ts.wsURL, testOrigin)
	b := dial(t, ts.wsURL, testOrigin)
	for i := 0; i < 8; i++ {
		send(t, a, fmt.Sprintf(`{"eventType":10,"message":"all %d","broadcast":true}`, i))
	}
	send(t, a, `{"eventType":10,"message":"me"}`)
	for i := 0; i < 8; i++ {
		if got, want := read(t, b), fmt.Sprintf(`{"eventType":10,"message":"all %d","broadcast":true}`, i); got != want {
			t.Fatalf("broadcast %d: %s", i, got)
		}
	}
	for i := 0; i < 8; i++ {
		read(t, a) // its own broadcasts
	}
	if got := read(t, a); got != `{"eventType":10,"message":"me"}` {
		t.Fatal(got)
	}
	if st := ts.Stats(); st.Paced == 0 || st.ErrorsOut != 0 {
		t.Fatalf("paced %d, errors %d", st.Paced, st.ErrorsOut)
	}
}

func TestPanicClosesOnlyThatConnection(t *testing.T) {
	testHookDispatch = func(msg []byte) {
		if strings.Contains(string(msg), "boom") {
			panic("test panic")
		}
	}
	t.Cleanup(func() { testHookDispatch = nil })
	ts := startServer(t, nil)
	victim := dial(t, ts.wsURL, testOrigin)
	other := dial(t, ts.wsURL, testOrigin)
	send(t, victim, `{"eventType":10,"message":"boom"}`)
	if code := expectClose(t, victim); code != closeInternalError {
		t.Fatalf("close %d, want 1011", code)
	}
	send(t, other, `{"eventType":10,"message":"fine"}`)
	if got := read(t, other); got != `{"eventType":10,"message":"fine"}` {
		t.Fatal(got)
	}
	if ts.Stats().Panics != 1 {
		t.Fatalf("panics %d", ts.Stats().Panics)
	}
}

// Events accepted before Shutdown reach clients before their 1001.
func TestGracefulDrain(t *testing.T) {
	ts := startServer(t, nil)
	const events = 500
	var conns []*websocket.Conn
	for i := 0; i < 5; i++ {
		conns = append(conns, dial(t, ts.wsURL, testOrigin))
	}
	parts := make([]string, events)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"eventType":2,"username":"u%d"}`, i)
	}
	if code, _ := publish(t, ts.adminURL, testKey, "["+strings.Join(parts, ",")+"]"); code != 202 {
		t.Fatal(code)
	}
	done := make(chan error, 1)
	go func() { done <- ts.Shutdown(t.Context()) }()
	for ci, c := range conns {
		for i := 0; i < events; i++ {
			if got := read(t, c); got != parts[i] {
				t.Fatalf("conn %d event %d: %s", ci, i, got)
			}
		}
		if code := expectClose(t, c); code != closeGoingAway {
			t.Fatalf("conn %d: close %d, want 1001", ci, code)
		}
		_ = c.Close()
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Refused afterwards.
	if _, err := net.DialTimeout("tcp", ts.Addr(), time.Second); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

// When most subscribers are behind, publish requests wait for them and,
// past PublishWait, are refused with 503 and Retry-After, with nothing
// published; once the backlog clears, publishing works again.
func TestPublishBackpressure(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.PublishLag = 100 * time.Millisecond
		c.PublishWait = 300 * time.Millisecond
		c.MaxLag = time.Minute // behind, but not slow consumers
		c.MaxPublishBytes = 1 << 20
	})
	// Readers that answer one credit ping and then stop reading: behind,
	// with a vote (for MaxLag/4) in backpressure.
	var stalled []*rawConn
	var gaveUp []<-chan struct{}
	for i := 0; i < 4; i++ {
		r := dialRaw(t, ts.Addr())
		gaveUp = append(gaveUp, r.answerCreditPings(1))
		stalled = append(stalled, r)
	}
	waitFor(t, 5*time.Second, "registered", func() bool { return ts.Stats().Connections == 4 })
	pad := strings.Repeat("x", 4000)
	batch := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`{"eventType":5,"file":"%s"}`, pad)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	// Far more than the credit window: every reader falls behind.
	for i := 0; i < 4; i++ {
		if i == 1 {
			for _, ch := range gaveUp {
				<-ch // each has answered its ping
			}
		}
		if code, body := publish(t, ts.adminURL, testKey, batch(200)); code != http.StatusAccepted {
			// Later batches may already meet the backpressure.
			if code != http.StatusServiceUnavailable {
				t.Fatalf("publish: %d %s", code, body)
			}
		}
	}
	waitFor(t, 5*time.Second, "saturated", func() bool { return ts.hub.saturated() })
	before := ts.Stats().EventsPublished
	start := time.Now()
	code, body := publish(t, ts.adminURL, testKey, `{"eventType":1,"username":"u"}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "saturated") {
		t.Fatalf("publish while saturated: %d %s, want 503", code, body)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("refused after %v, want a wait of about PublishWait", d)
	}
	if ts.Stats().EventsPublished != before {
		t.Fatal("a refused request published events")
	}
	for _, r := range stalled {
		_ = r.c.Close()
	}
	waitFor(t, 5*time.Second, "stalled clients gone", func() bool { return ts.Stats().Connections == 0 })
	reader := dial(t, ts.wsURL, testOrigin)
	if code, body := publish(t, ts.adminURL, testKey, `{"eventType":1,"username":"u"}`); code != http.StatusAccepted {
		t.Fatalf("publish after catch-up: %d %s", code, body)
	}
	if got := read(t, reader); got != `{"eventType":1,"username":"u"}` {
		t.Fatal(got)
	}
	if st := ts.Stats(); st.PublishWaits == 0 || st.PublishRefused == 0 {
		t.Fatalf("not counted: %+v", st)
	}
}

// An upgrade request with 200 KiB of headers is dropped, not buffered.
func TestOversizedHandshakeDropped(t *testing.T) {
	ts := startServer(t, nil)
	c, err := net.Dial("tcp", ts.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := "GET / HTTP/1.1\r\nHost: x\r\nOrigin: " + testOrigin + "\r\n"
	for i := 0; i < 200; i++ {
		big += fmt.Sprintf("X-Pad-%d: %s\r\n", i, strings.Repeat("a", 1024))
	}
	go func() { _, _ = c.Write([]byte(big)) }()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("oversized handshake still open after 5s")
		}
		break
	}
}

// Shutdown must wait for a batch the worker has taken but not finished
// writing, not only for an empty queue.
func TestDrainWaitsForBatchInFlight(t *testing.T) {
	inPass, release := slowPass(t)
	ts := startServer(t, func(c *Config) { c.Shards = 1 })
	c := dial(t, ts.wsURL, testOrigin)
	if code, _ := publish(t, ts.adminURL, testKey, `{"eventType":1,"username":"last"}`); code != 202 {
		t.Fatal(code)
	}
	<-inPass // the worker is inside its pass, the event taken, not written
	done := make(chan error, 1)
	go func() { done <- ts.Shutdown(t.Context()) }()
	waitFor(t, 2*time.Second, "draining", func() bool { return ts.draining.Load() })
	release()
	if got := read(t, c); got != `{"eventType":1,"username":"last"}` {
		t.Fatalf("got %s before the close", got)
	}
	if code := expectClose(t, c); code != closeGoingAway {
		t.Fatalf("close %d", code)
	}
	_ = c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Upgrade requests pipelined on one socket upgrade it once; the extra
// handler runs must not add phantom connections to the table.
func TestPipelinedUpgradesAddOneConnection(t *testing.T) {
	ts := startServer(t, nil)
	c, err := net.Dial("tcp", ts.Addr())
	if err != nil {
		t.Fatal(err)
	}
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: " + testOrigin + "\r\n\r\n"
	if _, err := c.Write([]byte(strings.Repeat(req, 4))); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	got, _ := io.ReadAll(c) // until the deadline
	if n := strings.Count(string(got), "101 Switching Protocols"); n != 1 {
		t.Fatalf("%d upgrades answered, want 1", n)
	}
	if n := ts.Stats().Connections; n != 1 {
		t.Fatalf("%d connections in the table, want 1", n)
	}
	_ = c.Close()
	waitFor(t, 5*time.Second, "table empty", func() bool { return ts.Stats().Connections == 0 })
}

// A failed start (admin address taken) releases the public listener too.
func TestStartFailureReleasesListeners(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	pub, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pubAddr := pub.Addr().String()
	_ = pub.Close()
	s, err := New(Config{ListenAddr: pubAddr, AdminAddr: busy.Addr().String(), ApprovedOrigins: []string{"x"}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil || !strings.Contains(err.Error(), "admin") {
		t.Fatalf("Start: %v, want an admin listen error", err)
	}
	again, err := net.Listen("tcp", pubAddr)
	if err != nil {
		t.Fatalf("public address still held after the failed start: %v", err)
	}
	_ = again.Close()
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// While draining, an event a backend sends is refused with an error event
// rather than accepted and then dropped.
func TestBackendEventRefusedWhileDraining(t *testing.T) {
	// The pass that writes the accepted event is held, so the drain
	// cannot end before the backend's event comes in, and the error reply
	// (written by the backend's reader, not by a pass) comes out first.
	inPass, release := slowPass(t)
	ts := startServer(t, func(c *Config) { c.Shards = 1 })
	be := dialBackend(t, ts.wsURL, testKey)
	if code, _ := publish(t, ts.adminURL, testKey, `{"eventType":1,"username":"a"}`); code != 202 {
		t.Fatal(code)
	}
	<-inPass // the worker is inside its pass, the event not yet written
	go func() { _ = ts.Shutdown(t.Context()) }()
	waitFor(t, 2*time.Second, "draining", func() bool { return ts.draining.Load() })
	send(t, be, `{"eventType":2,"username":"b"}`)
	if got := read(t, be); !strings.Contains(got, `"eventType":2`) || !strings.Contains(got, "shutting down") {
		t.Fatalf("got %s, want a shutting-down error", got)
	}
	release()
	if got := read(t, be); got != `{"eventType":1,"username":"a"}` {
		t.Fatalf("accepted event not delivered: %s", got)
	}
}

// slowPass holds the first fan-out pass that has events to write until
// release is called (or the test ends): inPass is closed once a worker is
// inside it. Later passes run freely.
func slowPass(t *testing.T) (inPass <-chan struct{}, release func()) {
	entered := make(chan struct{})
	free := make(chan struct{})
	var enter, free1 sync.Once
	hook := func() {
		first := false
		enter.Do(func() { first = true; close(entered) })
		if first {
			<-free
		}
	}
	testHookWrite.Store(&hook)
	release = func() { free1.Do(func() { close(free) }) }
	t.Cleanup(func() { release(); testHookWrite.Store(nil) })
	return entered, release
}
