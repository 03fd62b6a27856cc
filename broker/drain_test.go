package broker

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// On shutdown the clients' 1001 closes are spread over the drain period,
// each at its own moment and with its own reconnect hint, so that their
// reconnects reach the other nodes as a ramp and not a wall.
func TestDrainSpreadsCloses(t *testing.T) {
	const clients = 20
	const period = time.Second
	ts := startServer(t, func(c *Config) { c.DrainPeriod = period })
	var conns []*websocket.Conn
	for i := 0; i < clients; i++ {
		conns = append(conns, dial(t, ts.wsURL, testOrigin))
	}
	waitFor(t, 5*time.Second, "registered", func() bool { return ts.Stats().Connections == clients })
	// Each connection's turn, as the hub will compute it for this period.
	ts.hub.drainPeriod = int64(period)
	var first, last int64 = int64(period), 0
	ts.hub.each(func(c *conn) {
		o := ts.hub.drainOffset(c.id)
		first, last = min(first, o), max(last, o)
	})
	ts.hub.drainPeriod = 0
	if time.Duration(last-first) < period/2 {
		t.Fatalf("offsets %v..%v: not spread over the period", time.Duration(first), time.Duration(last))
	}

	hint := regexp.MustCompile(`^server shutting down; reconnect after (\d+)ms$`)
	var mu sync.Mutex
	var latest time.Duration
	hints := map[int]bool{}
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _, err := c.ReadMessage()
			at := time.Since(start)
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != closeGoingAway {
				t.Errorf("client: %v, want a 1001 close", err)
				return
			}
			m := hint.FindStringSubmatch(ce.Text)
			if m == nil {
				t.Errorf("close reason %q: no reconnect hint", ce.Text)
				return
			}
			ms, _ := strconv.Atoi(m[1])
			mu.Lock()
			defer mu.Unlock()
			if time.Duration(ms)*time.Millisecond >= period {
				t.Errorf("hint %d ms beyond the drain period", ms)
			}
			hints[ms] = true
			latest = max(latest, at)
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	wg.Wait()
	// A lower bound only, so a slow machine cannot fail it: the last close
	// came no sooner than the last turn.
	if latest < time.Duration(last) {
		t.Fatalf("last close %v after shutdown began, before the last turn %v: not spread", latest, time.Duration(last))
	}
	if len(hints) < clients/2 {
		t.Fatalf("only %d distinct reconnect hints for %d clients", len(hints), clients)
	}
}
