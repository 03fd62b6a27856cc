package broker

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// publishRead publishes one event of size bytes and waits until reader has
// it: a closed loop, so the run's pace is the broker's, not a sleep's.
func publishRead(t *testing.T, ts *testServer, reader interface{ ReadMessage() (int, []byte, error) }, i, size int) {
	t.Helper()
	body := fmt.Sprintf(`{"eventType":1,"i":%d,"pad":"%s"}`, i, strings.Repeat("x", size))
	if code, resp := publish(t, ts.adminURL, testKey, body); code != http.StatusAccepted {
		t.Fatalf("publish %d: %d %s (publish waits so far: %d)", i, code, resp, ts.Stats().PublishWaits)
	}
	_, msg, err := reader.ReadMessage()
	if err != nil {
		t.Fatalf("reader, event %d: %v", i, err)
	}
	if want := fmt.Sprintf(`"i":%d,`, i); !strings.Contains(string(msg), want) {
		t.Fatalf("reader got %.60s, want event %d", msg, i)
	}
}

// Sockets that upgrade and never read are most of the connections: they
// must not hold a single publisher (on the vote of "most connections are
// behind" they froze every publisher until max-lag cut them, and an
// attacker reconnecting every few seconds kept them frozen). They are still
// cut at max-lag.
func TestStalledMajorityHoldsNoPublisher(t *testing.T) {
	const stalled = 50
	ts := startServer(t, func(c *Config) {
		c.MaxLag = 3 * time.Second
		// The default: a busy race-enabled run's reader may answer a ping
		// tens of milliseconds late without the broker counting it behind.
		c.PublishLag = 100 * time.Millisecond
		c.PublishWait = 300 * time.Millisecond // a held publisher gets 503 soon
	})
	reader := dial(t, ts.wsURL, testOrigin)
	for i := 0; i < stalled; i++ {
		dialRaw(t, ts.Addr()) // never read
	}
	waitFor(t, 5*time.Second, "registered", func() bool { return ts.Stats().Connections == stalled+1 })

	// Well past publishLag, so the stalled sockets' unread events are old
	// enough to count as behind, had they a vote.
	// Within the log's retention (4 MiB of its 8 at most), so that on a
	// fast run the stalled sockets are not cut for falling off the log
	// before max-lag; the stalled count is read during the run for the
	// same reason.
	start := time.Now()
	i, sawStalled := 0, int64(0)
	for ; i < 100 || (time.Since(start) < 10*ts.cfg.PublishLag && i < 20000); i++ {
		publishRead(t, ts, reader, i, 200)
		if i%100 == 99 {
			sawStalled = max(sawStalled, ts.Stats().Stalled)
		}
	}
	st := ts.Stats()
	if st.PublishWaits != 0 {
		t.Fatalf("%d of %d publish requests were held for %d stalled sockets", st.PublishWaits, i, stalled)
	}
	if sawStalled == 0 {
		t.Errorf("stats never showed a stalled connection: %+v", st)
	}
	waitFor(t, ts.cfg.MaxLag+5*time.Second, "the stalled sockets cut at max-lag", func() bool {
		return ts.Stats().Closed[reasonSlow.label] >= stalled
	})
}

// A socket that reads nothing but sends pongs shaped like credit pings
// (the marker, guessed positions, a huge cursor) must get no credit: it
// stays at one window, is stalled and is cut at max-lag. Before credit pings
// carried a tag, any position not beyond what was written was taken, the
// forger looked caught up forever, and its backlog grew in the broker's
// memory without bound.
func TestForgedPongsBuyNoCredit(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.MaxLag = 2 * time.Second // room for the reader on a busy run
		c.PublishLag = -1          // no backpressure: the readers' pace is the test's
	})
	reader := dial(t, ts.wsURL, testOrigin)
	forger := dialRaw(t, ts.Addr())
	waitFor(t, 5*time.Second, "registered", func() bool { return ts.Stats().Connections == 2 })

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var old [17]byte // the untagged shape
		var tagged [pingPayloadLen]byte
		// Positions cycle through the first window: whatever the broker
		// has written, some of them fall between acked and sent.
		for k := uint64(1); ; k++ {
			pos := 64 * (1 + k%uint64(ts.cfg.WriteWindow/64))
			select {
			case <-stop:
				return
			default:
			}
			for _, p := range [][]byte{old[:], tagged[:]} {
				p[0] = pingMarker
				binary.BigEndian.PutUint64(p[1:9], pos)
				binary.BigEndian.PutUint64(p[9:17], 1<<62)
				if len(p) > 17 {
					binary.BigEndian.PutUint64(p[17:], pos*0x9e3779b97f4a7c15)
				}
				if err := forger.tryWriteFrame(opPong, p); err != nil {
					return // closed by the broker
				}
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	deadline := time.Now().Add(ts.cfg.MaxLag + 5*time.Second)
	window := int64(ts.cfg.WriteWindow)
	for i := 0; ts.Stats().Closed[reasonSlow.label] == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("forger not cut after %d events; forged pongs seen %d", i, ts.Stats().ForgedPongs)
		}
		publishRead(t, ts, reader, i, 1000)
		ts.hub.each(func(c *conn) {
			if p := c.pending(); p > 2*window+int64(2*ts.cfg.MaxMessageSize) {
				t.Errorf("conn %d holds %d bytes in nbio, over twice the window", c.id, p)
			}
		})
	}
	if ts.Stats().ForgedPongs == 0 {
		t.Error("no forged pong counted")
	}
}

// The wall clock can step (NTP, a VM resumed): lag is measured on the
// monotonic clock, so a client that has read everything is not cut when
// the wall clock jumps ten seconds ahead.
func TestLagIgnoresWallClockStep(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxLag = 2 * time.Second })
	reader := dial(t, ts.wsURL, testOrigin)
	for i := 0; i < 20; i++ {
		publishRead(t, ts, reader, i, 1000)
	}
	wallStep.Store(int64(10 * time.Second))
	defer wallStep.Store(0)
	start := time.Now()
	for i := 20; time.Since(start) < 2*ts.cfg.MaxLag; i++ {
		publishRead(t, ts, reader, i, 1000)
	}
	if n := ts.Stats().SlowConsumers; n != 0 {
		t.Fatalf("%d slow consumers after a wall-clock step", n)
	}
}
