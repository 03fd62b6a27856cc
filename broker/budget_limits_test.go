package broker

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
)

// readBackendRequest reads the next forwarded MetaRequest and returns it
// decoded.
func readBackendRequest(t *testing.T, be *websocket.Conn) map[string]any {
	t.Helper()
	var req map[string]any
	if err := json.Unmarshal([]byte(read(t, be)), &req); err != nil || req["clientId"] == nil {
		t.Fatalf("backend got %v (%v), want a forwarded request", req, err)
	}
	return req
}

// answer replies to a forwarded request with val.
func answer(t *testing.T, be *websocket.Conn, req map[string]any, val string) {
	t.Helper()
	out, _ := json.Marshal(map[string]any{"eventType": 9, "clientId": req["clientId"], "property": req["property"], "val": val})
	send(t, be, string(out))
}

// A client at its in-flight budget is held; a request that arrives while
// it is still over budget when the hold ends is refused with an error
// event, and once an answer comes back the client may ask again.
func TestMetaInflightRefusedAfterHold(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.MetaInflight = 2
		c.BackendTimeout = 30 * time.Second
		c.MaxLag = 400 * time.Millisecond // holds end after 200 ms
	})
	be := dialBackend(t, ts.wsURL, testKey)
	c := dial(t, ts.wsURL, testOrigin)
	for i := 0; i < 3; i++ {
		send(t, c, fmt.Sprintf(`{"eventType":9,"property":"p%d"}`, i))
	}
	first := readBackendRequest(t, be)
	if second := readBackendRequest(t, be); first["property"] != "p0" || second["property"] != "p1" {
		t.Fatalf("backend got %v then %v", first, second)
	}
	if got := read(t, c); got != `{"eventType":9,"error":"too many MetaRequests in flight"}` {
		t.Fatalf("third request: got %s", got)
	}
	answer(t, be, first, "a0")
	if got := read(t, c); got != `{"eventType":9,"property":"p0","val":"a0"}` {
		t.Fatalf("answer: got %s", got)
	}
	send(t, c, `{"eventType":9,"property":"p3"}`)
	if req := readBackendRequest(t, be); req["property"] != "p3" {
		t.Fatalf("after an answer: backend got %v", req)
	}
	st := ts.Stats()
	if st.MetaPaced == 0 || st.MetaRefusedInflight != 1 {
		t.Fatalf("metaPaced %d, metaRefusedInflight %d", st.MetaPaced, st.MetaRefusedInflight)
	}
	if v := metricValue(scrape(t, ts), "broker_meta_requests_refused_total", "reason", "inflight"); v != 1 {
		t.Fatalf("broker_meta_requests_refused_total{inflight} = %v", v)
	}
}

// Past the node's cap on waiting MetaRequests, whoever asks is refused at
// once; an answer makes room again.
func TestMetaNodeCapRefuses(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.MetaMaxPending = 2
		c.BackendTimeout = 30 * time.Second
	})
	be := dialBackend(t, ts.wsURL, testKey)
	a, b, x := dial(t, ts.wsURL, testOrigin), dial(t, ts.wsURL, testOrigin), dial(t, ts.wsURL, testOrigin)
	send(t, a, `{"eventType":9,"property":"a"}`)
	reqA := readBackendRequest(t, be)
	send(t, b, `{"eventType":9,"property":"b"}`)
	readBackendRequest(t, be)
	send(t, x, `{"eventType":9,"property":"x"}`)
	if got := read(t, x); got != `{"eventType":9,"error":"too many MetaRequests pending on this server"}` {
		t.Fatalf("over the node's cap: got %s", got)
	}
	answer(t, be, reqA, "ok")
	if got := read(t, a); got != `{"eventType":9,"property":"a","val":"ok"}` {
		t.Fatalf("a got %s", got)
	}
	send(t, x, `{"eventType":9,"property":"x"}`)
	if req := readBackendRequest(t, be); req["property"] != "x" {
		t.Fatalf("backend got %v", req)
	}
	if n := ts.Stats().MetaRefusedPending; n != 1 {
		t.Fatalf("metaRefusedPending %d", n)
	}
}

// With the client budgets off, a backend that does not read fills up; the
// requests that would take it past half of max-pending are refused with
// "backend busy", and the backend is not cut: once it reads again, it is
// asked and answers as before. Before, the flood closed it with 1008 as a
// slow consumer and every client lost it.
func TestMetaBackendBusyNotCut(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.MaxPublishBytes = 64 << 10
		c.MaxPendingBytes = 256 << 10
		c.MetaInflight, c.MetaInflightBytes = -1, -1
		c.BackendTimeout = 30 * time.Second
	})
	be := dialBackend(t, ts.wsURL, testKey)
	c := dial(t, ts.wsURL, testOrigin)
	stop := make(chan struct{})
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		pad := strings.Repeat("x", 8<<10)
		for i := 0; i < 5000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if c.WriteMessage(websocket.TextMessage, []byte(`{"eventType":9,"property":"f","val":"`+pad+`"}`)) != nil {
				return
			}
		}
	}()
	got := read(t, c) // the first answer is the first refusal: the backend reads nothing
	close(stop)
	<-wrote
	if got != `{"eventType":9,"error":"backend busy"}` {
		t.Fatalf("got %s, want backend busy", got)
	}
	st := ts.Stats()
	if st.SlowConsumers != 0 || ts.meta.backendCount() != 1 || st.MetaRefusedBusy == 0 {
		t.Fatalf("slow consumers %d, backends %d, metaRefusedBusy %d", st.SlowConsumers, ts.meta.backendCount(), st.MetaRefusedBusy)
	}
	// The backend reads (and answers) again: a new request gets through.
	go func() {
		for {
			_, b, err := be.ReadMessage()
			if err != nil {
				return
			}
			var req map[string]any
			if json.Unmarshal(b, &req) == nil && req["property"] == "late" {
				out, _ := json.Marshal(map[string]any{"eventType": 9, "clientId": req["clientId"], "val": "ok"})
				_ = be.WriteMessage(websocket.TextMessage, out)
			}
		}
	}()
	other := dial(t, ts.wsURL, testOrigin)
	waitFor(t, 10*time.Second, "the backend's output drained", func() bool {
		send(t, other, `{"eventType":9,"property":"late"}`)
		return read(t, other) == `{"eventType":9,"val":"ok"}`
	})
}

// Past the node's broadcast budget, a broadcast waits; still waiting when
// a publisher would have given up, it is refused with an error event and
// not sent. Within it, broadcasts go out as before.
func TestBroadcastNodeBudgetRefuses(t *testing.T) {
	ts := startServer(t, func(c *Config) {
		c.BroadcastNodeBytes = 1024 // the bucket still holds one largest message
		c.BroadcastBytes = -1
		c.MaxLag = 400 * time.Millisecond // the wait ends after 200 ms
	})
	a := dial(t, ts.wsURL, testOrigin)
	other := dial(t, ts.wsURL, testOrigin)
	msg := func(tag string) string {
		return fmt.Sprintf(`{"eventType":10,"broadcast":true,"message":"%s%s"}`, tag, strings.Repeat("m", 40<<10))
	}
	send(t, a, msg("one"))
	send(t, a, msg("two"))
	send(t, a, `{"eventType":10,"message":"after"}`)
	if got := read(t, other); got != msg("one") {
		t.Fatalf("other got %.60s", got)
	}
	if got := read(t, a); got != msg("one") {
		t.Fatalf("sender got %.60s", got)
	}
	if got := read(t, a); got != `{"eventType":10,"error":"broker is busy: broadcast not sent, retry later"}` {
		t.Fatalf("sender got %.60s, want the refusal", got)
	}
	if got := read(t, a); got != `{"eventType":10,"message":"after"}` {
		t.Fatalf("sender got %.60s, want its echo", got)
	}
	st := ts.Stats()
	if st.BroadcastNodePaced == 0 || st.BroadcastRefused != 1 || st.EventsPublished != 1 {
		t.Fatalf("broadcastNodePaced %d, broadcastRefused %d, eventsPublished %d", st.BroadcastNodePaced, st.BroadcastRefused, st.EventsPublished)
	}
}

// Over its byte budget a sender is paced like over its count: every
// broadcast goes out, in order, and its later input waits.
func TestBroadcastBytesPaced(t *testing.T) {
	ts := startServer(t, nil) // 64 KiB/s, bucket of one max-message
	a := dial(t, ts.wsURL, testOrigin)
	other := dial(t, ts.wsURL, testOrigin)
	big := func(i int) string {
		return fmt.Sprintf(`{"eventType":10,"broadcast":true,"message":"%d%s"}`, i, strings.Repeat("m", 40<<10))
	}
	for i := 0; i < 3; i++ {
		send(t, a, big(i))
	}
	for i := 0; i < 3; i++ {
		if got := read(t, other); got != big(i) {
			t.Fatalf("broadcast %d: got %.60s", i, got)
		}
	}
	if st := ts.Stats(); st.BroadcastPaced == 0 || st.ErrorsOut != 0 {
		t.Fatalf("broadcastPaced %d, errorsOut %d", st.BroadcastPaced, st.ErrorsOut)
	}
}

// The budgets change live: the node's bucket at once, an open
// connection's byte bucket at its next message, the MetaRequest budgets
// at the next request; a bad value is refused and named.
func TestReloadBudgets(t *testing.T) {
	ts := startServer(t, nil)
	c := dial(t, ts.wsURL, testOrigin)
	send(t, c, `{"eventType":10,"broadcast":true,"message":"a"}`)
	read(t, c) // the byte bucket now exists

	cfg := ts.Config()
	cfg.BroadcastBytes, cfg.BroadcastBytesBurst, cfg.BroadcastNodeBytes = 128<<10, 96<<10, 2<<20
	cfg.MetaInflight, cfg.MetaInflightBytes, cfg.MetaMaxPending = 4, 8<<10, 100
	applied, ignored, err := ts.Reload(cfg)
	if err != nil || len(ignored) != 0 {
		t.Fatalf("reload: %v, ignored %v", err, ignored)
	}
	for _, k := range []string{"broadcastBytes", "broadcastBytesBurst", "broadcastNodeBytes", "metaInflight", "metaInflightBytes", "metaMaxPending"} {
		if !strings.Contains(strings.Join(applied, " "), k) {
			t.Fatalf("applied %v, want %q", applied, k)
		}
	}
	if l := ts.limits.Load(); l.metaInflight != 4 || l.metaInflightBytes != 8<<10 || l.metaMaxPending != 100 {
		t.Fatalf("limits %+v", l)
	}
	if ts.bcastNode.Limit() != 2<<20 || ts.bcastNode.Burst() != 2<<20 {
		t.Fatalf("node bucket %v/s, burst %d", ts.bcastNode.Limit(), ts.bcastNode.Burst())
	}
	send(t, c, `{"eventType":10,"broadcast":true,"message":"b"}`)
	read(t, c)
	var limit float64
	var burst int
	ts.hub.each(func(cn *conn) {
		cn.rmu.Lock()
		limit, burst = float64(cn.bcastBytes.Limit()), cn.bcastBytes.Burst()
		cn.rmu.Unlock()
	})
	if limit != 128<<10 || burst != 96<<10 {
		t.Fatalf("open connection's byte bucket: %v/s burst %d", limit, burst)
	}

	cfg.BroadcastBytesBurst = 1000
	if _, _, err := ts.Reload(cfg); err == nil || !strings.Contains(err.Error(), "broadcast bytes burst 1000") {
		t.Fatalf("bad burst: %v", err)
	}
}

// Every bad budget is named at start.
func TestBudgetValidation(t *testing.T) {
	cases := []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.BroadcastBytes = 10 }, "broadcast bytes 10"},
		{func(c *Config) { c.BroadcastBytesBurst = 1000 }, "broadcast bytes burst 1000: must be at least max message 65536"},
		{func(c *Config) { c.BroadcastNodeBytes = 5 }, "broadcast node bytes 5"},
		{func(c *Config) { c.MetaInflightBytes = 7 }, "meta inflight bytes 7"},
		{func(c *Config) { c.MetaInflight = 1 << 21 }, "meta inflight 2097152"},
		{func(c *Config) { c.MetaMaxPending = 1 << 25 }, "meta max pending 33554432"},
	}
	for _, tc := range cases {
		cfg := Config{ApprovedOrigins: []string{"x"}}
		tc.mut(&cfg)
		if _, err := New(cfg, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want it to name %q", err, tc.want)
		}
	}
	// Off is not a bad value.
	cfg := Config{ApprovedOrigins: []string{"x"}, BroadcastBytes: -1, BroadcastBytesBurst: 1, BroadcastNodeBytes: -1,
		MetaInflight: -1, MetaInflightBytes: -1, MetaMaxPending: -1}
	if _, err := New(cfg, zerolog.Nop()); err != nil {
		t.Fatalf("budgets off: %v", err)
	}
}
