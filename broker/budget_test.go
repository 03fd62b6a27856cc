package broker

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// statsJSON reads /stats as the admin API serves it. A counter this build
// does not have reads as zero, so these tests also run (and fail) against
// a broker without the budgets.
func statsJSON(t testing.TB, ts *testServer) map[string]any {
	t.Helper()
	resp, body := adminGet(t, ts.adminURL, "/stats", testKey)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/stats: %d %s", resp.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("/stats: %v", err)
	}
	return m
}

// num is a top-level /stats counter, zero when absent.
func num(m map[string]any, key string) int64 {
	f, _ := m[key].(float64)
	return int64(f)
}

// One client floods a backend that does not read yet with 1,000 large
// MetaRequests. The client is paced (at most its in-flight budget reaches
// the backend), the backend is never cut as a slow consumer for it, and
// another client's request is answered normally. Without the budget the
// flood went straight into the backend's output until it passed
// max-pending, the backend was closed with 1008, and the innocent client
// got "no backend available".
func TestMetaFloodPacedBackendStays(t *testing.T) {
	ts := startServer(t, nil)
	be := dialBackend(t, ts.wsURL, testKey)
	gate := make(chan struct{})
	beDone := make(chan error, 1)
	go func() {
		<-gate // a backend slow to read: nothing until the flood is in
		for {
			_, b, err := be.ReadMessage()
			if err != nil {
				beDone <- err
				return
			}
			var req map[string]any
			if json.Unmarshal(b, &req) != nil || req["clientId"] == nil {
				continue
			}
			out, _ := json.Marshal(map[string]any{"eventType": 9, "clientId": req["clientId"], "property": req["property"], "val": "ok"})
			if err := be.WriteMessage(websocket.TextMessage, out); err != nil {
				beDone <- err
				return
			}
		}
	}()

	const flood = 1000
	pad := strings.Repeat("x", 8<<10)
	flooder := dial(t, ts.wsURL, testOrigin)
	var answered, failed atomic.Int64
	var firstErr atomic.Value
	go func() {
		for i := 0; i < flood; i++ {
			msg := fmt.Sprintf(`{"eventType":9,"property":"f%d","val":"%s"}`, i, pad)
			if flooder.WriteMessage(websocket.TextMessage, []byte(msg)) != nil {
				return
			}
		}
	}()
	flooderDone := make(chan struct{})
	go func() {
		defer close(flooderDone)
		_ = flooder.SetReadDeadline(time.Now().Add(60 * time.Second))
		for answered.Load()+failed.Load() < flood {
			_, b, err := flooder.ReadMessage()
			if err != nil {
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			if strings.Contains(string(b), `"error"`) {
				firstErr.CompareAndSwap(nil, string(b))
				failed.Add(1)
			} else {
				answered.Add(1)
			}
		}
	}()

	// Until the flood has been paced (or, without a budget, has cut the
	// backend or been forwarded whole).
	waitFor(t, 20*time.Second, "flood paced", func() bool {
		m := statsJSON(t, ts)
		return num(m, "metaPaced") > 0 || num(m, "slowConsumers") > 0 || num(m, "metaForwarded") >= flood
	})
	close(gate)

	innocent := dial(t, ts.wsURL, testOrigin)
	send(t, innocent, `{"eventType":9,"property":"innocent"}`)
	if got := read(t, innocent); got != `{"eventType":9,"property":"innocent","val":"ok"}` {
		t.Fatalf("innocent client got %s", got)
	}
	<-flooderDone
	if answered.Load() != flood {
		t.Fatalf("flooder: %d answered, %d errors (first: %v); want every request answered, later rather than refused",
			answered.Load(), failed.Load(), firstErr.Load())
	}
	st := ts.Stats()
	if st.SlowConsumers != 0 || st.Closed["slow_consumer"] != 0 {
		t.Fatalf("slow consumers %d, closed %v", st.SlowConsumers, st.Closed)
	}
	select {
	case err := <-beDone:
		t.Fatalf("backend connection ended: %v", err)
	default:
	}
	if m := statsJSON(t, ts); num(m, "metaPaced") == 0 {
		t.Fatalf("flood was not paced: %v", m)
	}
}

// Eight anonymous clients broadcast 60 KiB echo messages as fast as they
// may while a backend publishes small events through the publish API.
// Every publish is accepted: broadcasts wait for publishers (and for their
// byte budgets), never the other way round. Without the byte budgets and
// the check before appending, the broadcasts kept the broker saturated and
// the publishes waited out publish-wait and got 503.
func TestBroadcastsDoNotStarvePublisher(t *testing.T) {
	// Fan-out that has work to do is slow, as on a broker with many
	// subscribers: what broadcasts take from it, publishers lack. The
	// sleep is that cost, not a wait for anything.
	hook := func() { time.Sleep(100 * time.Millisecond) }
	testHookWrite.Store(&hook)
	t.Cleanup(func() { testHookWrite.Store(nil) })
	ts := startServer(t, func(c *Config) {
		// Past its burst, each broadcast is paced by the count limit
		// alone: with no burst to spend first, the test starts there.
		c.BroadcastBurst = 1
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var conns []*websocket.Conn
	defer func() {
		close(stop)
		for _, c := range conns {
			_ = c.Close() // unblocks a writer the broker is pacing
		}
		wg.Wait()
	}()
	for i := 0; i < 8; i++ { // the publisher's audience, reading
		c := dial(t, ts.wsURL, testOrigin)
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	big := fmt.Sprintf(`{"eventType":10,"broadcast":true,"message":"%s"}`, strings.Repeat("b", 60<<10))
	for i := 0; i < 8; i++ {
		c := dial(t, ts.wsURL, testOrigin)
		conns = append(conns, c)
		wg.Add(2)
		go func() { // read everything: these clients keep up
			defer wg.Done()
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if c.WriteMessage(websocket.TextMessage, []byte(big)) != nil {
					return
				}
			}
		}()
	}
	waitFor(t, 10*time.Second, "broadcasts flowing", func() bool { return ts.Stats().EventsPublished >= 8 })

	const publishes = 20
	for i := 0; i < publishes; i++ {
		code, body := publish(t, ts.adminURL, testKey, fmt.Sprintf(`{"eventType":1,"username":"u%d"}`, i))
		if code != http.StatusAccepted {
			t.Fatalf("publish %d: %d %s (publishRefused %d)", i, code, body, ts.Stats().PublishRefused)
		}
	}
	m := statsJSON(t, ts)
	if num(m, "broadcastPaced")+num(m, "broadcastNodePaced") == 0 {
		t.Fatalf("broadcasts were not paced: %v", m)
	}
}
