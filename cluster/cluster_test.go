package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"

	"github.com/webinate/broker/auth"
	"github.com/webinate/broker/broker"
)

// Events published on A (the API, single and batched), by a backend
// socket on B and as an echo broadcast on C reach every client on every
// node, byte for byte, in one order, exactly once; the local logs number
// them with the stream's sequence numbers, so every node agrees.
func TestEveryEventReachesEveryNodeInOneOrder(t *testing.T) {
	d := startNATS(t)
	a := startNode(t, d, nil, nil)
	b := startNode(t, d, nil, nil)
	c := startNode(t, d, nil, nil)
	clients := []*websocket.Conn{dial(t, a.wsURL), dial(t, b.wsURL), dial(t, b.wsURL), dial(t, c.wsURL)}
	backend := dialBackend(t, b.wsURL)
	joined(t, a, 1)
	joined(t, b, 3)
	joined(t, c, 1)

	var want []string
	for i := 0; i < 30; i++ {
		if i%3 == 0 {
			batch := []string{
				fmt.Sprintf(`{"eventType":5,"username":"bob","file":"f%d" }`, i),
				fmt.Sprintf(`{ "eventType":6,"file":"f%d"}`, i),
			}
			if code, body := publish(t, a, "["+strings.Join(batch, ",")+"]"); code != http.StatusAccepted || body != `{"accepted":2}` {
				t.Fatalf("publish: %d %s", code, body)
			}
			want = append(want, batch...)
			continue
		}
		ev := fmt.Sprintf(`{"eventType":1,"username":"u%d"}`, i)
		if code, body := publish(t, a, ev); code != http.StatusAccepted {
			t.Fatalf("publish: %d %s", code, body)
		}
		want = append(want, ev)
	}
	// The backend sees what it sees today: every event, then its own.
	for _, w := range want {
		if got := read(t, backend); got != w {
			t.Fatalf("backend: got %s, want %s", got, w)
		}
	}
	fromBackend := `{"eventType":3,"username":"carol"}`
	send(t, backend, fromBackend)
	if got := read(t, backend); got != fromBackend {
		t.Fatalf("backend's own event: %s", got)
	}
	want = append(want, fromBackend)
	echo := `{"eventType":10,"message":"hi all","broadcast":true}`
	send(t, clients[3], echo)
	want = append(want, echo)

	for i, cl := range clients {
		for j, w := range want {
			if got := read(t, cl); got != w {
				t.Fatalf("client %d event %d: got %s, want %s", i, j, got, w)
			}
		}
		expectNothing(t, cl, 100*time.Millisecond)
	}
	// One numbering: the stream's. Every node's head is the stream's
	// last sequence number.
	var head uint64
	waitFor(t, 5*time.Second, "nodes to agree", func() bool {
		head = a.Stats().HeadSeq
		return head > 0 && b.Stats().HeadSeq == head && c.Stats().HeadSeq == head
	})
	// 32 stream messages: 30 requests, the backend's event, the echo.
	if last := a.bus.Status().LastSeq; last != 32 || head != LogSeq(32, 0) {
		t.Fatalf("stream at %d, log head %d, want 32 and %d", last, head, LogSeq(32, 0))
	}
	created := a.bus.Status().StreamCreated
	if a.Stats().Epoch != c.Stats().Epoch || a.Stats().Epoch != fmt.Sprintf("nats:TEST:%d", created.UnixNano()) {
		t.Fatalf("epochs %q %q: one numbering, one name", a.Stats().Epoch, c.Stats().Epoch)
	}
	st := a.Stats()
	if st.Cluster == nil || st.Cluster.State != "connected" || st.Cluster.Published != int64(len(want)-2) {
		t.Fatalf("node A cluster stats: %+v", st.Cluster)
	}
	if code, m := health(t, b); code != 200 || m["nats"] != "connected" {
		t.Fatalf("healthz: %d %v", code, m)
	}
	req, _ := http.NewRequest(http.MethodGet, a.adminURL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, m := range []string{"broker_cluster_connected 1", fmt.Sprintf("broker_cluster_published_total %d", len(want)-2),
		"broker_cluster_backpressure 0", "broker_cluster_peer_holds_total 0", "broker_cluster_pending 0",
		"broker_cluster_stream_missing 0", "broker_cluster_stream_resets_total 0", "broker_cluster_lost_total 0"} {
		if !strings.Contains(string(body), m+"\n") {
			t.Fatalf("/metrics lacks %q", m)
		}
	}
}

// A node that joins late delivers everything stored after it joined, with
// the same numbers as the others.
func TestLateJoinerGetsEverythingAfterJoining(t *testing.T) {
	d := startNATS(t)
	a := startNode(t, d, nil, nil)
	for i := 0; i < 5; i++ {
		publish(t, a, fmt.Sprintf(`{"eventType":1,"username":"early%d"}`, i))
	}
	c := startNode(t, d, nil, nil)
	cl := dial(t, c.wsURL)
	joined(t, c, 1)
	for i := 0; i < 5; i++ {
		if code, _ := publish(t, a, fmt.Sprintf(`{"eventType":1,"username":"late%d"}`, i)); code != 202 {
			t.Fatalf("publish %d", code)
		}
	}
	for i := 0; i < 5; i++ {
		if got, want := read(t, cl), fmt.Sprintf(`{"eventType":1,"username":"late%d"}`, i); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	expectNothing(t, cl, 100*time.Millisecond)
	waitFor(t, 5*time.Second, "same head", func() bool {
		return c.Stats().HeadSeq == LogSeq(10, 0) && a.Stats().HeadSeq == LogSeq(10, 0)
	})
}

// In targeting mode an event with a username reaches that user's sockets
// on every node (and backends everywhere), nobody else.
func TestTargetedEventsAcrossNodes(t *testing.T) {
	d := startNATS(t)
	mut := func(c *broker.Config) {
		c.Targeting = broker.TargetUser
		c.Auth = auth.Config{HS256Secret: "s3cret"}
	}
	a := startNode(t, d, mut, nil)
	b := startNode(t, d, mut, nil)
	c := startNode(t, d, mut, nil)
	token := func(sub string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte("s3cret"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	bobB := dial(t, b.wsURL+"?token="+token("bob"))
	bobC := dial(t, c.wsURL+"?token="+token("bob"))
	alice := dial(t, c.wsURL+"?token="+token("alice"))
	backend := dialBackend(t, a.wsURL)
	joined(t, b, 1)
	joined(t, c, 2)
	joined(t, a, 1)

	toBob := `{"eventType":5,"username":"bob","file":"x"}`
	everyone := `{"eventType":6,"file":"y"}`
	if code, _ := publish(t, a, "["+toBob+","+everyone+"]"); code != 202 {
		t.Fatal(code)
	}
	for _, cl := range []*websocket.Conn{bobB, bobC, backend} {
		if got := read(t, cl); got != toBob {
			t.Fatalf("got %s, want %s", got, toBob)
		}
		if got := read(t, cl); got != everyone {
			t.Fatalf("got %s, want %s", got, everyone)
		}
	}
	if got := read(t, alice); got != everyone {
		t.Fatalf("alice got %s, want only %s", got, everyone)
	}
	expectNothing(t, alice, 100*time.Millisecond)
}

// A client's MetaRequest on a node without backends is answered by a
// backend on another node, and the answer reaches only that client.
func TestMetaRequestAcrossNodes(t *testing.T) {
	d := startNATS(t)
	a := startNode(t, d, func(c *broker.Config) { c.Auth = auth.Config{HS256Secret: "s3cret"} }, nil)
	b := startNode(t, d, func(c *broker.Config) { c.BackendTimeout = 300 * time.Millisecond }, nil)
	client := dial(t, a.wsURL)
	other := dial(t, a.wsURL)

	// No backend anywhere yet.
	send(t, client, `{"eventType":9,"username":"bob","property":"age"}`)
	if got := read(t, client); got != `{"eventType":9,"error":"no backend available"}` {
		t.Fatalf("no backend: %s", got)
	}

	backend := dialBackend(t, b.wsURL)
	waitFor(t, 5*time.Second, "backend on B", func() bool {
		b.bus.metaMu.Lock()
		defer b.bus.metaMu.Unlock()
		return b.bus.metaSub != nil
	})
	// The queue subscription has reached the server once a round trip
	// on B's connection, sent after it, comes back.
	if err := b.bus.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	send(t, client, `{"eventType":9,"username":"bob","property":"age"}`)
	fwd := read(t, backend)
	if !strings.HasPrefix(fwd, `{"clientId":"`) || !strings.HasSuffix(fwd, `,"eventType":9,"username":"bob","property":"age"}`) {
		t.Fatalf("backend got %s", fwd)
	}
	id := fwd[len(`{"clientId":"`):strings.Index(fwd, `",`)]
	send(t, backend, `{"eventType":9,"clientId":"`+id+`","username":"bob","property":"age","val":42}`)
	if got := read(t, client); got != `{"eventType":9,"username":"bob","property":"age","val":42}` {
		t.Fatalf("client got %s", got)
	}
	expectNothing(t, other, 100*time.Millisecond)

	// The backend does not answer: the client hears of it.
	send(t, client, `{"eventType":9,"username":"bob","property":"x"}`)
	read(t, backend)
	if got := read(t, client); got != `{"eventType":9,"error":"backend did not answer in time"}` {
		t.Fatalf("timeout: %s", got)
	}

	// Its backend gone, B stops serving: no backend available again.
	_ = backend.Close()
	waitFor(t, 5*time.Second, "backend gone", func() bool { return b.Stats().Connections == 0 })
	waitFor(t, 5*time.Second, "no backend answer", func() bool {
		send(t, client, `{"eventType":9,"property":"y"}`)
		return read(t, client) == `{"eventType":9,"error":"no backend available"}`
	})
}

// NATS restarts (same port, same store) while a publisher keeps
// publishing on A: every event answered 202 reaches the clients of both
// nodes, in order, once; while NATS is down, health says so, local echo
// keeps working and publishes are refused with 503 once their wait ends.
func TestNATSRestartLosesNothingConfirmed(t *testing.T) {
	d := startNATS(t)
	mutC := func(c *Config) {
		c.PublishTimeout = 3 * time.Second
		c.UnhealthyAfter = 300 * time.Millisecond
	}
	a := startNode(t, d, nil, mutC)
	b := startNode(t, d, nil, mutC)
	ca, cb := dial(t, a.wsURL), dial(t, b.wsURL)
	joined(t, a, 1)
	joined(t, b, 1)

	// Readers run all along, as real clients do (a client that stops
	// reading for max-lag is cut as a slow consumer).
	type got struct {
		mu   sync.Mutex
		ns   []int
		echo int
		err  error
	}
	collect := func(cl *websocket.Conn) *got {
		g := &got{}
		go func() {
			for {
				_ = cl.SetReadDeadline(time.Now().Add(20 * time.Second))
				_, msg, err := cl.ReadMessage()
				g.mu.Lock()
				if err != nil {
					g.err = err
					g.mu.Unlock()
					return
				}
				var n int
				if string(msg) == `{"eventType":10,"message":"still here"}` {
					g.echo++
				} else if _, err := fmt.Sscanf(string(msg), `{"eventType":1,"n":%d}`, &n); err != nil {
					g.err = fmt.Errorf("unexpected %s", msg)
				} else {
					g.ns = append(g.ns, n)
				}
				g.mu.Unlock()
			}
		}()
		return g
	}
	ga, gb := collect(ca), collect(cb)

	const total = 300
	var mu sync.Mutex
	ok := map[int]bool{}
	refused := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < total; i++ {
			code, _ := publish(t, a, fmt.Sprintf(`{"eventType":1,"n":%d}`, i))
			mu.Lock()
			if code == http.StatusAccepted {
				ok[i] = true
			} else if code == http.StatusServiceUnavailable {
				refused++
			} else {
				t.Errorf("publish %d: status %d", i, code)
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond) // a steady publisher, through the outage
		}
	}()
	waitFor(t, 10*time.Second, "some published", func() bool { mu.Lock(); defer mu.Unlock(); return len(ok) > 50 })
	d.stop()
	waitFor(t, 10*time.Second, "unhealthy", func() bool {
		code, m := health(t, a)
		return code == http.StatusServiceUnavailable && m["nats"] == "reconnecting"
	})
	// Local echo still works on a node cut off from NATS.
	send(t, cb, `{"eventType":10,"message":"still here"}`)
	waitFor(t, 5*time.Second, "local echo during the outage", func() bool { gb.mu.Lock(); defer gb.mu.Unlock(); return gb.echo == 1 })
	// The outage goes on a while longer, with the publisher still at it:
	// its length is what is tested, so it is slept.
	time.Sleep(200 * time.Millisecond)
	d.start()
	<-done
	waitFor(t, 10*time.Second, "healthy again", func() bool { code, _ := health(t, a); return code == 200 })

	mu.Lock()
	confirmed := len(ok)
	mu.Unlock()
	if confirmed < total/2 {
		t.Fatalf("only %d of %d confirmed", confirmed, total)
	}
	for name, g := range map[string]*got{"A": ga, "B": gb} {
		waitFor(t, 10*time.Second, "node "+name+" to deliver every confirmed event", func() bool {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.err != nil {
				t.Fatalf("node %s: after %d events: %v", name, len(g.ns), g.err)
			}
			seen := 0
			for _, n := range g.ns {
				if ok[n] {
					seen++
				}
			}
			return seen == confirmed
		})
		g.mu.Lock()
		for i := 1; i < len(g.ns); i++ {
			if g.ns[i] <= g.ns[i-1] {
				t.Fatalf("node %s: event %d after %d (duplicate or out of order)", name, g.ns[i], g.ns[i-1])
			}
		}
		g.mu.Unlock()
	}
	st := a.Stats().Cluster
	if st.Disconnects < 1 || st.Reconnects < 1 {
		t.Fatalf("disconnects %d reconnects %d", st.Disconnects, st.Reconnects)
	}
	t.Logf("confirmed %d, refused %d, stats %+v", confirmed, refused, *st)
}

// While NATS is away longer than PublishTimeout, a publish is refused
// with 503 (never a silent loss), and a request larger than one atomic
// batch gets 413.
func TestOutageRefusesAndBatchBound(t *testing.T) {
	d := startNATS(t)
	a := startNode(t, d, nil, func(c *Config) { c.PublishTimeout = 300 * time.Millisecond; c.MaxBatch = 3; c.MaxQueued = 2 })
	if code, body := publish(t, a, `[{"eventType":1},{"eventType":1},{"eventType":1},{"eventType":1}]`); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("4 events over a batch of 3: %d %s", code, body)
	}
	backend := dialBackend(t, a.wsURL)
	echoer := dial(t, a.wsURL)
	d.stop()
	waitFor(t, 5*time.Second, "disconnected", func() bool { return a.Stats().Cluster.State != "connected" })
	// A backend's event and an echo broadcast the cluster did not take are
	// answered to their sender; a plain echo is served locally.
	send(t, backend, `{"eventType":2,"username":"x"}`)
	if got := read(t, backend); got != `{"eventType":2,"error":"cluster unavailable: event not published"}` {
		t.Fatalf("backend during outage: %s", got)
	}
	send(t, echoer, `{"eventType":10,"message":"all","broadcast":true}`)
	if got := read(t, echoer); got != `{"eventType":10,"error":"cluster unavailable: event not published"}` {
		t.Fatalf("echo broadcast during outage: %s", got)
	}
	send(t, echoer, `{"eventType":10,"message":"me"}`)
	if got := read(t, echoer); got != `{"eventType":10,"message":"me"}` {
		t.Fatalf("local echo during outage: %s", got)
	}
	code, body := publish(t, a, `{"eventType":1}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not confirmed") {
		t.Fatalf("during outage: %d %s", code, body)
	}
	if st := a.Stats().Cluster; st.Failed < 1 {
		t.Fatalf("failed not counted: %+v", st)
	}
	// The queue's bound: two events wait for NATS, a third is refused at
	// once; the two are refused when their wait ends. Nothing hangs.
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		a.bus.Publish([][]byte{[]byte(`{"eventType":1}`)}, false, func(err error) { errs <- err })
	}
	if err := <-errs; err != ErrQueueFull {
		t.Fatalf("third event: %v, want ErrQueueFull", err)
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != ErrTimeout {
			t.Fatalf("queued event: %v, want ErrTimeout", err)
		}
	}
}

// fakeNode records deliveries, for tests of the bridge alone.
type fakeNode struct {
	mu   sync.Mutex
	seqs []uint64
	evs  []string
}

func (f *fakeNode) Deliver(seq uint64, evs []broker.BusEvent) {
	f.mu.Lock()
	for i, e := range evs {
		f.seqs = append(f.seqs, seq+uint64(i))
		f.evs = append(f.evs, string(e.Raw))
	}
	f.mu.Unlock()
}

func (f *fakeNode) ServeMeta(msg []byte, respond func([]byte)) { respond(nil) }
func (f *fakeNode) Answer(string, []byte) []byte               { return nil }
func (f *fakeNode) Saturated() bool                            { return false }
func (f *fakeNode) Reset(_ string, seq uint64) uint64          { return seq }
func (f *fakeNode) Retention() (int, time.Duration)            { return 1 << 20, 0 }

func (f *fakeNode) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.seqs) }

// A resend after a lost acknowledgement carries the same Nats-Msg-Id: the
// stream's duplicate window keeps one copy and the resend still counts as
// confirmed. Event i of stream message S is numbered LogSeq(S, i).
func TestResentMessageIsStoredOnce(t *testing.T) {
	d := startNATS(t)
	b, err := New(Config{URLs: []string{d.url()}, Subject: "dup"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeNode{}
	if err := b.Start(f); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	msg := func(id string, evs ...string) *nats.Msg {
		m := nats.NewMsg(b.subjEvents)
		for _, e := range evs {
			m.Data = appendEvent(m.Data, []byte(e), false)
		}
		m.Header.Set(hdrMsgID, id)
		return m
	}
	three := msg("x-1", `{"eventType":1,"n":1}`, `{"eventType":1,"n":2}`, `{"eventType":1,"n":3}`)
	one := msg("x-2", `{"eventType":1,"n":4}`)
	// A last message is the fence: the stream delivers in order, so once
	// it is delivered any stored copy of a resend would have been too.
	fence := msg("x-3", `{"eventType":1,"n":5}`)
	for i, m := range []*nats.Msg{three, three, one, one, fence} {
		seq, err := b.sendOnce(m, 2*time.Second)
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		if want := uint64(1 + i/2); seq != want {
			t.Fatalf("send %d: stream seq %d, want %d", i, seq, want)
		}
	}
	waitFor(t, 5*time.Second, "the fence delivered", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.evs) > 0 && f.evs[len(f.evs)-1] == `{"eventType":1,"n":5}`
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	want := []uint64{LogSeq(1, 0), LogSeq(1, 1), LogSeq(1, 2), LogSeq(2, 0), LogSeq(3, 0)}
	if fmt.Sprint(f.seqs) != fmt.Sprint(want) || f.evs[3] != `{"eventType":1,"n":4}` {
		t.Fatalf("deliveries %v %q, want %v", f.seqs, f.evs, want)
	}
}

// On shutdown a node first waits for every event it confirmed to come
// back from the stream, then writes them and closes with 1001.
func TestShutdownDeliversWhatWasConfirmed(t *testing.T) {
	d := startNATS(t)
	a := startNode(t, d, nil, nil)
	cl := dial(t, a.wsURL)
	joined(t, a, 1)
	const n = 50
	for i := 0; i < n; i++ {
		if code, _ := publish(t, a, fmt.Sprintf(`{"eventType":1,"n":%d}`, i)); code != 202 {
			t.Fatalf("publish %d: %d", i, code)
		}
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	}()
	for i := 0; i < n; i++ {
		if got, want := read(t, cl), fmt.Sprintf(`{"eventType":1,"n":%d}`, i); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	_ = cl.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := cl.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("after the events: %v, want close 1001", err)
	}
}
