package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/webinate/broker/bench/baseline"
	"github.com/webinate/broker/bench/peerapi"
	"github.com/webinate/broker/bench/peerapi/peertest"
	"github.com/webinate/broker/bench/rawpeer"
	"github.com/webinate/broker/broker"
	"github.com/webinate/broker/wsframe"
)

// TestMain lets the test binary serve as its own worker process for the
// multi-process test.
func TestMain(m *testing.M) {
	WorkerMain()
	os.Exit(m.Run())
}

// target is everything a scenario needs to reach a server, so the same tests
// can later run against the broker.
type target struct {
	addr, adminAddr, key string
}

const testKey = "bench-key"

// serve starts s and stops it when the test ends.
func serve[S peertest.Server](t testing.TB, s S, err error) target {
	t.Helper()
	peertest.Serve(t, s, err)
	return target{addr: s.Addr(), adminAddr: s.AdminAddr(), key: testKey}
}

// startBaseline runs the baseline server in-process on 127.0.0.1:0.
func startBaseline(t *testing.T) target {
	s, err := baseline.New(baseline.Config{Config: peerapi.Config{
		Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Key: testKey, Origins: []string{"localhost"},
	}})
	return serve(t, s, err)
}

// startRaw runs the one-write peer in-process on 127.0.0.1:0.
func startRaw(t *testing.T) target {
	s, err := rawpeer.New(rawpeer.Config{
		Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Key: testKey, Origins: []string{"localhost"},
	})
	return serve(t, s, err)
}

// startBroker runs the real broker in-process on 127.0.0.1:0, with its
// per-connection rate limits lifted as in scripts/bench.sh.
func startBroker(t testing.TB) target {
	s, err := broker.New(broker.Config{
		ListenAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", APIKey: testKey,
		ApprovedOrigins: []string{"localhost"}, MessageRate: -1, BroadcastRate: -1,
	}, zerolog.Nop())
	return serve(t, s, err)
}

// targets runs fn against the baseline and the broker.
func targets(t *testing.T, fn func(t *testing.T, tg target)) {
	t.Run("baseline", func(t *testing.T) { fn(t, startBaseline(t)) })
	t.Run("broker", func(t *testing.T) { fn(t, startBroker(t)) })
}

func (tg target) config(scenario string, conns int) Config {
	return Config{
		Scenario: scenario, Addr: tg.addr, AdminAddr: tg.adminAddr, Key: tg.key,
		Conns: conns, Duration: 300 * time.Millisecond, Timeout: 15 * time.Second,
		DrainIdle: 2 * time.Second, Sources: 4,
	}
}

func mustRun(t testing.TB, cfg Config) *Result {
	t.Helper()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v (result %+v)", err, res)
	}
	return res
}

func checkLatency(t *testing.T, l Latency) {
	t.Helper()
	if l.Count == 0 || l.P50Ms <= 0 || l.P50Ms > l.P99Ms || l.P99Ms > l.P999Ms || l.P999Ms > l.MaxMs {
		t.Errorf("insane latency summary %+v", l)
	}
}

func checkFanout(t *testing.T, res *Result, subs int) {
	t.Helper()
	f := res.Fanout
	if res.Connect.Connected != subs || res.Connect.Failed != 0 {
		t.Fatalf("connect %+v", res.Connect)
	}
	if f.Published < 50 || f.Expected != f.Published*int64(subs) {
		t.Fatalf("published %d expected %d", f.Published, f.Expected)
	}
	if f.Lost != 0 || f.Received != f.Expected || f.OutOfOrder != 0 || f.Unparsed != 0 {
		t.Errorf("loss: %+v", f)
	}
	if f.DeliveriesPerSec <= 0 {
		t.Errorf("deliveries/s %v", f.DeliveriesPerSec)
	}
	if res.Latency.Count != f.Received {
		t.Errorf("latency count %d, received %d", res.Latency.Count, f.Received)
	}
	checkLatency(t, res.Latency)
	// Every publish request's duration is recorded, whatever the mode.
	if f.PublishRequests == 0 || f.PublishLatency.Count != f.PublishRequests {
		t.Errorf("%d publish requests, %d durations recorded", f.PublishRequests, f.PublishLatency.Count)
	}
	checkLatency(t, f.PublishLatency)
}

func TestFanoutAPI(t *testing.T) { targets(t, testFanoutAPI) }

func testFanoutAPI(t *testing.T, tg target) {
	cfg := tg.config(ScenarioFanout, 200)
	cfg.Rate, cfg.Batch, cfg.Duration = 1000, 50, 500*time.Millisecond
	cfg.PID = os.Getpid()
	res := mustRun(t, cfg)
	checkFanout(t, res, 200)
	if res.Server.RSSAfterBytes <= 0 || res.Server.CPUSeconds < 0 {
		t.Errorf("server stats %+v", res.Server)
	}
	if want := res.Server.CPUSeconds * 1e6 / float64(res.Fanout.Received); res.Fanout.ServerCPUMicrosPerDelivery != want {
		t.Errorf("server µs per delivery %v, want %v", res.Fanout.ServerCPUMicrosPerDelivery, want)
	}
	if res.Harness.CPUSeconds <= 0 || !res.Harness.InProcessServer {
		t.Errorf("harness stats %+v", res.Harness)
	}
}

func TestFanoutEchoBroadcast(t *testing.T) {
	targets(t, func(t *testing.T, tg target) {
		cfg := tg.config(ScenarioFanout, 50)
		cfg.Mode, cfg.Rate = ModeEcho, 500
		checkFanout(t, mustRun(t, cfg), 50)
	})
}

func TestFanoutMultiProcess(t *testing.T) {
	tg := startBaseline(t)
	cfg := tg.config(ScenarioFanout, 100)
	cfg.Procs, cfg.Rate, cfg.Batch = 2, 1000, 20
	cfg.WorkerCommand = []string{os.Args[0], WorkerFlag}
	checkFanout(t, mustRun(t, cfg), 100)
}

func TestEchoScenario(t *testing.T) {
	targets(t, testEcho)
}

func testEcho(t *testing.T, tg target) {
	cfg := tg.config(ScenarioEcho, 10)
	cfg.PID = os.Getpid()
	res := mustRun(t, cfg)
	if res.Echo.Clients != 10 || res.Echo.RoundTrips < 10 || res.Echo.RoundTripsSec <= 0 {
		t.Fatalf("echo %+v", res.Echo)
	}
	checkLatency(t, res.Latency)
	if want := res.Server.CPUSeconds * 1e6 / float64(res.Echo.RoundTrips); res.Echo.ServerCPUMicrosPerRoundTrip != want || want <= 0 {
		t.Errorf("server µs per round trip %v, want %v", res.Echo.ServerCPUMicrosPerRoundTrip, want)
	}
}

// testPeer runs the scenarios the everyday comparison and the echo runs
// use against a reference peer; the events must arrive as published (the
// timestamps exact, or the latencies would be nonsense).
func testPeer(t *testing.T, tg target) {
	t.Run("fanout", func(t *testing.T) {
		cfg := tg.config(ScenarioFanout, 100)
		cfg.Rate, cfg.Batch, cfg.Duration = 500, 20, 400*time.Millisecond
		res := mustRun(t, cfg)
		checkFanout(t, res, 100)
		if res.Latency.MaxMs > 10_000 {
			t.Errorf("latency %+v: timestamps mangled", res.Latency)
		}
	})
	t.Run("echo-broadcast", func(t *testing.T) {
		cfg := tg.config(ScenarioFanout, 20)
		cfg.Mode, cfg.Rate = ModeEcho, 300
		checkFanout(t, mustRun(t, cfg), 20)
	})
	t.Run("echo", func(t *testing.T) { testEcho(t, tg) })
}

// The one-write peer (bench/rawpeer) serves every scenario the everyday
// comparison and the echo runs use, and offers no compression.
func TestRawPeer(t *testing.T) {
	tg := startRaw(t)
	testPeer(t, tg)
	t.Run("compression-refused", func(t *testing.T) {
		cfg := tg.config(ScenarioFanout, 20)
		cfg.Rate, cfg.Compression, cfg.Mix = 500, true, true
		res := mustRun(t, cfg)
		checkFanout(t, res, 20)
		if res.Fanout.CompressedReaders != 0 || res.Fanout.Inflations != 0 {
			t.Errorf("raw peer negotiated deflate: %+v", res.Fanout)
		}
	})
}

func TestIdleAndConnect(t *testing.T) {
	tg := startBaseline(t)
	cfg := tg.config(ScenarioIdle, 100)
	cfg.PID = os.Getpid()
	res := mustRun(t, cfg)
	if res.Idle.Held != 100 || res.Idle.Dropped != 0 || res.Server.RSSAfterBytes == 0 {
		t.Fatalf("idle %+v server %+v", res.Idle, res.Server)
	}
	for _, hold := range []bool{true, false} {
		cfg := tg.config(ScenarioConnect, 100)
		cfg.Hold = hold
		res := mustRun(t, cfg)
		if res.Connect.Connected != 100 || res.Connect.PerSec <= 0 || res.Connect.Disconnected != 0 {
			t.Fatalf("hold=%v connect %+v", hold, res.Connect)
		}
	}
}

// Refused connections must show up in the failure counts, not vanish.
func TestRefusedConnectionsReported(t *testing.T) {
	tg := startBaseline(t)
	cfg := tg.config(ScenarioIdle, 20)
	cfg.Origin = "http://evil.test"
	res := mustRun(t, cfg)
	if res.Connect.Connected != 0 || res.Connect.Failed != 20 || res.Connect.Errors["HTTP 403"] != 20 {
		t.Errorf("wrong origin: %+v", res.Connect)
	}

	// Port 1: nothing listens there (a closed listener's port could be
	// handed to another test's server meanwhile).
	dead := "127.0.0.1:1"
	cfg = tg.config(ScenarioConnect, 5)
	cfg.Addr = dead
	res = mustRun(t, cfg)
	if res.Connect.Failed != 5 || res.Connect.Errors["connection refused"] != 5 {
		t.Errorf("nothing listening: %+v", res.Connect)
	}

	// A failing publisher is an error in the report, not silent loss.
	cfg = tg.config(ScenarioFanout, 5)
	cfg.Key, cfg.Rate = "wrong", 100
	res = mustRun(t, cfg)
	if res.Fanout.Published != 0 || res.Fanout.PublishFailed == 0 || len(res.Errors) == 0 || !strings.Contains(res.Errors[0], "401") {
		t.Errorf("wrong key: fanout %+v errors %v", res.Fanout, res.Errors)
	}
}

// Every field of Result appears in its JSON, whatever the scenario.
func TestResultJSONHasEveryField(t *testing.T) {
	tg := startBaseline(t)
	cfg := tg.config(ScenarioConnect, 3)
	b, err := json.Marshal(mustRun(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	checkFields(t, reflect.TypeOf(Result{}), m, "")
}

func checkFields(t *testing.T, typ reflect.Type, m map[string]any, prefix string) {
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		v, ok := m[name]
		if !ok || v == nil {
			t.Errorf("JSON lacks %s%s", prefix, name)
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Time{}) {
			checkFields(t, f.Type, v.(map[string]any), prefix+name+".")
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:80": true, "127.3.2.1:1": true, "[::1]:9": true, "localhost:8080": true,
		"10.0.0.1:80": false, "192.168.1.2:80": false, "8.8.8.8:53": false, "example.com:80": false, "127.0.0.1": false,
	} {
		if err := CheckLoopback(addr); (err == nil) != ok {
			t.Errorf("CheckLoopback(%q) = %v", addr, err)
		}
	}
	cfg := Config{Scenario: ScenarioIdle, Addr: "10.1.2.3:80", Conns: 1}
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("Run with a non-loopback target: %v", err)
	}
}

func TestAppendEvent(t *testing.T) {
	for _, size := range []int{1, 100, 1000} {
		for _, et := range []int{5, 10} {
			b := appendEvent(nil, et, 3, 12345, time.Now().UnixNano(), size, et == 10)
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if size >= 100 && len(b) != size {
				t.Errorf("size %d: got %d bytes", size, len(b))
			}
			if seq, ok := scanInt(b, seqKey); !ok || seq != 12345 {
				t.Errorf("scanInt seq = %d %v", seq, ok)
			}
		}
	}
}

// startBrokerWith runs the broker like startBroker, with cfg changes.
func startBrokerWith(t *testing.T, change func(*broker.Config)) target {
	cfg := broker.Config{
		ListenAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", APIKey: testKey,
		ApprovedOrigins: []string{"localhost"}, MessageRate: -1, BroadcastRate: -1,
	}
	change(&cfg)
	s, err := broker.New(cfg, zerolog.Nop())
	return serve(t, s, err)
}

// pubCounts is what a publish front saw of each publisher: requests and
// the events in them.
type pubCounts struct {
	mu               sync.Mutex
	requests, events map[int64]int64
}

// countingFront relays the publish API at adminAddr and counts, per
// publisher (the "pub" of a request's events), the requests and events.
func countingFront(t *testing.T, adminAddr string) (string, *pubCounts) {
	t.Helper()
	backend, err := url.Parse("http://" + adminAddr)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(backend)
	pc := &pubCounts{requests: map[int64]int64{}, events: map[int64]int64{}}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if pub, ok := scanInt(body, pubKey); ok {
			pc.mu.Lock()
			pc.requests[pub]++
			pc.events[pub] += int64(bytes.Count(body, seqKey))
			pc.mu.Unlock()
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return strings.TrimPrefix(front.URL, "http://"), pc
}

// Several publishers share the load and each keeps its own order. A fixed
// rate is split between them: every publisher publishes, and none sends
// more than its share's schedule allows (event k of a publisher is due
// k/share seconds after its start), which one at the full rate would pass
// four times over. A slow machine only publishes less; how fast the
// publishers go is BenchmarkFanoutPublishers' figure, not this test's.
func TestFanoutPublishers(t *testing.T) {
	targets(t, func(t *testing.T, tg target) {
		cfg := tg.config(ScenarioFanout, 100)
		cfg.Publishers, cfg.Rate, cfg.Duration = 4, 1000, 500*time.Millisecond
		// Long, so that nothing undelivered by then is a count, not a
		// race with a busy machine: the drain ends as soon as everything
		// has arrived, so a good run does not wait it out.
		cfg.LateAfter = 5 * time.Second
		var pc *pubCounts
		cfg.AdminAddr, pc = countingFront(t, tg.adminAddr)
		res := mustRun(t, cfg)
		checkFanout(t, res, 100)
		f := res.Fanout
		if f.Publishers != 4 || res.Params.Publishers != 4 || f.Refused != 0 {
			t.Errorf("publishers %+v", f)
		}
		if f.Readers != 100 || f.StalledSubscribers != 0 {
			t.Errorf("readers %d stalled %d", f.Readers, f.StalledSubscribers)
		}
		share := cfg.Rate / float64(cfg.Publishers)
		most := int64(cfg.Duration.Seconds()*share) + 1
		pc.mu.Lock()
		var events, requests int64
		for pub := range int64(cfg.Publishers) {
			if pc.requests[pub] == 0 || pc.events[pub] > most {
				t.Errorf("publisher %d: %d requests, %d events (its share allows %d)", pub, pc.requests[pub], pc.events[pub], most)
			}
			events += pc.events[pub]
			requests += pc.requests[pub]
		}
		if len(pc.requests) != cfg.Publishers || events != f.Published || requests != f.PublishRequests {
			t.Errorf("front saw %d publishers, %d events in %d requests; harness: %d published in %d requests",
				len(pc.requests), events, requests, f.Published, f.PublishRequests)
		}
		pc.mu.Unlock()
		if u := f.UndeliveredAfter; u.Seconds != 5 || u.Count != 0 || u.Fraction != 0 {
			t.Errorf("undelivered after %+v", u)
		}
		if f.ReceivedAfterStop < 0 || f.ReceivedAfterStop > f.Received || f.ReceivedAfterStopPct > 100 {
			t.Errorf("received after stop %d (%.1f%%)", f.ReceivedAfterStop, f.ReceivedAfterStopPct)
		}
	})
}

// BenchmarkFanoutPublishers reports the speed figures TestFanoutPublishers
// does not assert: the in-process broker, 100 subscribers and 4
// publishers, each iteration one fanout run of 500 ms. "paced" offers
// 1,000 events/s split between the publishers and reports the share of it
// published (offered-fraction: 1 when the publishers keep their
// schedule); "max" publishes as fast as the broker accepts and reports
// events and deliveries per second.
//
//	go test -run '^$' -bench FanoutPublishers -benchtime 3x ./bench
func BenchmarkFanoutPublishers(b *testing.B) {
	for _, bc := range []struct {
		name string
		rate float64
	}{{"paced", 1000}, {"max", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			tg := startBroker(b)
			var runs, rate, deliveries float64 // sums of each run's figures
			for b.Loop() {
				cfg := tg.config(ScenarioFanout, 100)
				cfg.Publishers, cfg.Rate, cfg.Duration = 4, bc.rate, 500*time.Millisecond
				f := mustRun(b, cfg).Fanout
				runs++
				rate += f.PublishRate
				deliveries += f.DeliveriesPerSec
			}
			b.ReportMetric(rate/runs, "events/s")
			b.ReportMetric(deliveries/runs, "deliveries/s")
			if bc.rate > 0 {
				b.ReportMetric(rate/runs/bc.rate, "offered-fraction")
			}
		})
	}
}

// Order is checked per publisher: interleaved publishers are in order,
// a step back within one is not.
func TestOrderPerPublisher(t *testing.T) {
	w := &worker{spec: workerSpec{Scenario: ScenarioFanout, Addrs: []string{"x"}, Publishers: 2}}
	w.nodes = []nodeCounters{{hist: newShardedHist()}}
	s := &sub{lastSeq: make([]atomic.Int64, 2)}
	s.lastSeq[0].Store(-1)
	s.lastSeq[1].Store(-1)
	c := &wsConn{session: s}
	ts := time.Now().UnixNano()
	for _, ev := range []struct{ pub, seq int }{{0, 0}, {1, 0}, {0, 1}, {1, 1}, {1, 2}, {0, 2}} {
		w.onMessage(c, appendEvent(nil, 5, ev.pub, int64(ev.seq), ts, 100, false))
	}
	if n := w.outOfOrder.Load(); n != 0 {
		t.Fatalf("interleaved publishers: %d out of order", n)
	}
	w.onMessage(c, appendEvent(nil, 5, 1, 1, ts, 100, false))
	w.onMessage(c, appendEvent(nil, 5, 7, 1, ts, 100, false)) // no such publisher
	if w.outOfOrder.Load() != 1 || w.unparsed.Load() != 1 || w.received.Load() != 7 {
		t.Errorf("out of order %d unparsed %d received %d", w.outOfOrder.Load(), w.unparsed.Load(), w.received.Load())
	}
}

// A 503 is the server refusing: counted as refused, not as published or as
// an error, and the publisher pauses for Retry-After capped at
// RetryAfterMax: the request after a 503 comes at least RetryAfterMax
// later (no pause would be sooner), and it comes at all although
// Retry-After asks for an hour (uncapped, the publisher would wait out the
// run).
func TestPublishRefused(t *testing.T) {
	tg := startBaseline(t)
	backend, err := url.Parse("http://" + tg.adminAddr)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(backend)
	var reqs atomic.Int64
	type hit struct {
		at      time.Time
		refused bool
	}
	var mu sync.Mutex
	var hits []hit // one publisher: its requests in order
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse := reqs.Add(1)%2 == 0 // every other request: saturated
		mu.Lock()
		hits = append(hits, hit{time.Now(), refuse})
		mu.Unlock()
		if refuse {
			w.Header().Set("Retry-After", "3600")
			http.Error(w, "saturated", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	cfg := tg.config(ScenarioFanout, 20)
	cfg.AdminAddr = strings.TrimPrefix(front.URL, "http://")
	cfg.Batch, cfg.Duration, cfg.RetryAfterMax = 5, 600*time.Millisecond, 50*time.Millisecond
	res := mustRun(t, cfg)
	f := res.Fanout
	// Refused requests have durations too: the slowest publish may be a 503.
	if n := reqs.Load(); f.PublishRequests != n || f.PublishLatency.Count != n {
		t.Errorf("server saw %d requests; harness counted %d, recorded %d durations", n, f.PublishRequests, f.PublishLatency.Count)
	}
	if f.RefusedRequests == 0 || f.Refused != 5*f.RefusedRequests || f.PublishFailed != 0 || len(res.Errors) != 0 {
		t.Fatalf("refused %d in %d requests, failed %d, errors %v", f.Refused, f.RefusedRequests, f.PublishFailed, res.Errors)
	}
	mu.Lock()
	after := 0 // requests that followed a 503
	for i := 1; i < len(hits); i++ {
		if !hits[i-1].refused {
			continue
		}
		after++
		if gap := hits[i].at.Sub(hits[i-1].at); gap < cfg.RetryAfterMax {
			t.Errorf("request %d came %v after a 503: no pause of %v", i, gap, cfg.RetryAfterMax)
		}
	}
	mu.Unlock()
	if after == 0 {
		t.Errorf("no request after a 503 with Retry-After: 3600 capped at %v", cfg.RetryAfterMax)
	}
	if f.Published == 0 || f.Expected != f.Published*20 || f.Lost != 0 {
		t.Errorf("accepted events lost or miscounted: %+v", f)
	}
}

// Stalled subscribers never read; the broker closes them (1008) once
// their lag passes MaxLag, and the readers lose nothing.
func TestFanoutStalled(t *testing.T) {
	// MaxLag leaves room for a reader of a busy race-enabled run to fall
	// behind for a moment without being cut (700 ms cut readers in about
	// one run in five with a flood beside the tests); publishing lasts
	// past it, so the stalled are cut during the run.
	const maxLag = 1500 * time.Millisecond
	tg := startBrokerWith(t, func(c *broker.Config) { c.MaxLag = maxLag })
	cfg := tg.config(ScenarioFanout, 100)
	cfg.StalledFraction, cfg.Rate, cfg.Size, cfg.Duration = 0.25, 1000, 500, maxLag+1500*time.Millisecond
	// LateAfter is long for the reason given in TestFanoutPublishers.
	cfg.LagBound, cfg.LateAfter, cfg.StalledReadTimeout = maxLag+1500*time.Millisecond, 5*time.Second, time.Second
	res := mustRun(t, cfg)
	f := res.Fanout
	if f.Subscribers != 100 || f.Readers != 75 || f.StalledSubscribers != 25 || f.Stalled.Count != 25 {
		t.Fatalf("subscribers %d readers %d stalled %d", f.Subscribers, f.Readers, f.StalledSubscribers)
	}
	if f.Expected != f.Published*75 || f.Lost != 0 || f.OutOfOrder != 0 || f.UndeliveredAfter.Count != 0 {
		t.Errorf("readers lost events: %+v", f)
	}
	st := f.Stalled
	t.Logf("stalled: %+v", st)
	if st.Closed != 25 || st.Closed1008 != 25 || st.CloseCodes["1008"] != 25 || st.Open != 0 {
		t.Errorf("stalled not closed with 1008: %+v", st)
	}
	if st.ClosedDuringRun != 25 || st.ClosedWithinBound != 25 || st.CloseSecondsMax <= maxLag.Seconds() || st.CloseSecondsMax > cfg.LagBound.Seconds() {
		t.Errorf("stalled close times: %+v", st)
	}
	if st.BoundEligible != 25 || st.Connections != 25 || st.Reconnects != 0 || st.ClosedBeforeReconnect != 0 || st.Unconnected != 0 {
		t.Errorf("stalled without reconnects: %+v", st)
	}
	if res.Connect.Disconnected != 0 {
		t.Errorf("readers disconnected: %d", res.Connect.Disconnected)
	}
}

// Stalled subscribers are spread evenly over the indexes (and so over
// nodes and worker processes).
func TestIsStalled(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		n, k int
	}{{0, 100, 0}, {0.25, 100, 25}, {0.25, 10, 2}, {1, 7, 7}, {0.5, 3, 1}} {
		k, run := 0, 0
		for i := range tc.n {
			if isStalled(i, tc.f) {
				k++
				run = 0
			} else if run++; tc.f > 0 && run > int(1/tc.f)+1 {
				t.Errorf("f=%v: gap of %d at %d", tc.f, run, i)
			}
		}
		if k != tc.k {
			t.Errorf("f=%v n=%d: %d stalled, want %d", tc.f, tc.n, k, tc.k)
		}
	}
}

// The scanner finds the close code behind data frames of every length
// form, whatever the read boundaries.
func TestFrameScanner(t *testing.T) {
	frame := func(op byte, n int) []byte { return wsframe.AppendFrame(nil, op, make([]byte, n)) }
	stream := append(append(append(frame(1, 10), frame(1, 300)...), frame(1, 70000)...), frame(9, 17)...)
	stream = append(stream, 0x88, 4, 0x03, 0xF0, 'x', 'y') // close 1008 "xy"
	for _, chunk := range []int{1, 3, 4096, len(stream)} {
		var fs frameScanner
		done := false
		for i := 0; i < len(stream) && !done; i += chunk {
			done = fs.feed(stream[i:min(i+chunk, len(stream))])
		}
		if !done || fs.code != 1008 {
			t.Errorf("chunk %d: done %v code %d", chunk, done, fs.code)
		}
	}
	var fs frameScanner
	if !fs.feed([]byte{0x88, 0}) || fs.code != 1005 {
		t.Errorf("empty close: code %d", fs.code)
	}
}

// After a header that breaks RFC 6455 the scanner cannot know where the
// next frame starts, so it reads nothing more as frames.
func TestFrameScannerStopsAtFaultyHeader(t *testing.T) {
	var fs frameScanner
	if fs.feed(append([]byte{0x83, 0}, wsframe.AppendClose(nil, wsframe.CloseNormal, "")...)) {
		t.Fatalf("close %d found after a reserved opcode", fs.code)
	}
	if fs.feed(wsframe.AppendClose(nil, wsframe.CloseNormal, "")) {
		t.Fatal("scanning resumed after a faulty header")
	}
}

// forward relays every connection to ln to dst, so one server looks like
// a second node.
func forward(t *testing.T, dst string) string {
	addr, _ := forwardCounting(t, dst)
	return addr
}

// forwardCounting is forward that also counts the connections accepted.
func forwardCounting(t *testing.T, dst string) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				d, err := net.Dial("tcp", dst)
				if err != nil {
					return
				}
				defer d.Close()
				go func() { _, _ = io.Copy(d, c); d.Close() }()
				_, _ = io.Copy(c, d)
			}()
		}
	}()
	return ln.Addr().String(), &accepted
}

// Subscribers spread round robin over the nodes, reported per node.
func TestFanoutNodes(t *testing.T) {
	tg := startBroker(t)
	second := forward(t, tg.addr)
	cfg := tg.config(ScenarioFanout, 60)
	cfg.Addr = tg.addr + "," + second
	cfg.Rate, cfg.StalledFraction, cfg.StalledReadTimeout = 500, 0.1, 200*time.Millisecond
	var lines []string
	var mu sync.Mutex
	cfg.Progress = func(l string) { mu.Lock(); lines = append(lines, l); mu.Unlock() }
	cfg.Duration = 1200 * time.Millisecond
	res := mustRun(t, cfg)
	if len(res.Nodes) != 2 || len(res.Target.Addrs) != 2 || res.Target.Addr != cfg.Addr {
		t.Fatalf("nodes %+v target %+v", res.Nodes, res.Target)
	}
	var sum int64
	for i, n := range res.Nodes {
		if n.Connected != 30 || n.Stalled != 3 || n.Readers != 27 || n.Failed != 0 {
			t.Errorf("node %d: %+v", i, n)
		}
		if n.Expected != res.Fanout.Published*27 || n.Received != n.Expected || n.Lost != 0 || n.UndeliveredAfter != 0 {
			t.Errorf("node %d deliveries: %+v", i, n)
		}
		if n.Latency.Count != n.Received {
			t.Errorf("node %d latency count %d", i, n.Latency.Count)
		}
		sum += n.Received
	}
	if sum != res.Fanout.Received || res.Fanout.Lost != 0 {
		t.Errorf("per-node received %d, total %d", sum, res.Fanout.Received)
	}
	mu.Lock()
	all := strings.Join(lines, "\n")
	mu.Unlock()
	for _, phase := range []string{"publishing", "draining"} {
		if !strings.Contains(all, phase) {
			t.Errorf("no %q progress line in %q", phase, all)
		}
	}

	bad := tg.config(ScenarioFanout, 2)
	bad.Addr = tg.addr + ",10.0.0.1:80"
	if _, err := Run(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("non-loopback node accepted: %v", err)
	}
	bad = tg.config(ScenarioFanout, 2)
	bad.AdminAddr = tg.adminAddr + ",192.168.0.1:80"
	if _, err := Run(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("non-loopback admin accepted: %v", err)
	}
}

// Stalled subscribers also work in worker processes.
func TestFanoutStalledMultiProcess(t *testing.T) {
	tg := startBaseline(t)
	cfg := tg.config(ScenarioFanout, 40)
	cfg.Procs, cfg.Rate, cfg.StalledFraction = 2, 500, 0.25
	cfg.StalledReadTimeout = 200 * time.Millisecond
	cfg.WorkerCommand = []string{os.Args[0], WorkerFlag}
	res := mustRun(t, cfg)
	f := res.Fanout
	if f.StalledSubscribers != 10 || f.Readers != 30 || f.Lost != 0 || f.Expected != f.Published*30 {
		t.Errorf("multi-process stalled: %+v", f)
	}
}

// A publish request's recorded duration covers the whole time the server
// held it: a front that holds some requests before passing them to the
// real server shows that hold in the harness's slowest publish.
func TestPublishLatencyCoversServerHold(t *testing.T) {
	tg := startBaseline(t)
	backend, err := url.Parse("http://" + tg.adminAddr)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(backend)
	var reqs atomic.Int64
	var mu sync.Mutex
	var longest time.Duration // the front's own longest handling
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if reqs.Add(1)%3 == 0 {
			time.Sleep(20 * time.Millisecond) // the hold being measured, not synchronisation
		}
		proxy.ServeHTTP(w, r)
		mu.Lock()
		longest = max(longest, time.Since(start))
		mu.Unlock()
	}))
	defer front.Close()
	cfg := tg.config(ScenarioFanout, 10)
	cfg.AdminAddr = strings.TrimPrefix(front.URL, "http://")
	cfg.Rate = 100
	res := mustRun(t, cfg)
	f := res.Fanout
	if n := reqs.Load(); n == 0 || f.PublishRequests != n || f.PublishLatency.Count != n {
		t.Fatalf("front saw %d requests; harness counted %d, recorded %d", n, f.PublishRequests, f.PublishLatency.Count)
	}
	mu.Lock()
	want := float64(longest.Microseconds()) / 1000
	mu.Unlock()
	// The client's span contains the handler's; the histogram's max is at
	// least the value recorded.
	if f.PublishLatency.MaxMs < want {
		t.Errorf("slowest publish %.3f ms, but the front held one %.3f ms", f.PublishLatency.MaxMs, want)
	}
	checkLatency(t, f.PublishLatency)
}

// Stalled subscribers with StalledReconnect close their socket and dial
// again, every one at least once per period, and the readers are not
// disturbed. The server sees each reconnect as a new connection.
func TestStalledReconnect(t *testing.T) {
	targets(t, func(t *testing.T, tg target) {
		relay, accepted := forwardCounting(t, tg.addr)
		cfg := tg.config(ScenarioFanout, 20)
		cfg.Addr = relay
		cfg.StalledFraction, cfg.StalledReconnect = 0.25, MinStalledReconnect
		cfg.Rate, cfg.Size, cfg.Duration = 200, 200, 600*time.Millisecond
		cfg.LateAfter, cfg.StalledReadTimeout, cfg.LagBound = 200*time.Millisecond, 300*time.Millisecond, time.Minute
		res := mustRun(t, cfg)
		f := res.Fanout
		st := f.Stalled
		t.Logf("stalled: %+v", st)
		if f.Readers != 15 || f.StalledSubscribers != 5 || st.Count != 5 {
			t.Fatalf("readers %d stalled %d", f.Readers, f.StalledSubscribers)
		}
		// The first wave is due a period after connecting, well before
		// the settle and the publishing are over, and the final read waits
		// for re-dials under way.
		if st.Reconnects < st.Count || st.ReconnectFailed != 0 || st.Unconnected != 0 || len(st.ReconnectErrors) != 0 {
			t.Errorf("reconnects: %+v", st)
		}
		if st.Connections != st.Count+st.Reconnects || st.ReconnectSeconds != 0.1 || res.Params.StalledReconnectSeconds != 0.1 {
			t.Errorf("connections %d for %d sockets and %d reconnects", st.Connections, st.Count, st.Reconnects)
		}
		if n := accepted.Load(); n != int64(cfg.Conns)+st.Reconnects {
			t.Errorf("server side saw %d connections, want %d subscribers + %d reconnects", n, cfg.Conns, st.Reconnects)
		}
		// Each socket's last connection is still there for the final read
		// (nothing cuts at a minute's bound), and no connection lived long
		// enough to be due a cut.
		if st.Closed+st.Open != st.Count || st.BoundEligible != 0 || st.ClosedWithinBound != 0 {
			t.Errorf("final read / bound: %+v", st)
		}
		if f.Expected != f.Published*15 || f.Lost != 0 || f.OutOfOrder != 0 || res.Connect.Disconnected != 0 {
			t.Errorf("readers disturbed: %+v, %d disconnected", f, res.Connect.Disconnected)
		}
	})
}

// A bad reconnect period is refused with a message naming it.
func TestStalledReconnectValidation(t *testing.T) {
	for _, tc := range []struct {
		fraction float64
		period   time.Duration
		want     string
	}{{0.5, 50 * time.Millisecond, "50ms"}, {0.5, -time.Second, "-1s"}, {0, time.Second, "needs stalled"}} {
		cfg := Config{Scenario: ScenarioFanout, Addr: "127.0.0.1:1", AdminAddr: "127.0.0.1:2", Key: "k", Conns: 2,
			StalledFraction: tc.fraction, StalledReconnect: tc.period}
		if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("fraction %v period %v: %v, want %q", tc.fraction, tc.period, err, tc.want)
		}
	}
}

// A re-dialled stalled socket never reads either: the broker, cutting
// slow consumers at MaxLag well inside the reconnect period, cuts more
// connections (1008) than there are stalled sockets, so connections made
// by reconnects were cut too. Retired connections' close codes are found.
func TestStalledReconnectStaysStalled(t *testing.T) {
	tg := startBrokerWith(t, func(c *broker.Config) { c.MaxLag = 300 * time.Millisecond })
	cfg := tg.config(ScenarioFanout, 40)
	cfg.StalledFraction, cfg.StalledReconnect = 0.25, time.Second
	cfg.Rate, cfg.Size, cfg.Duration = 1000, 500, 2*time.Second
	cfg.LateAfter, cfg.StalledReadTimeout = 300*time.Millisecond, time.Second
	res := mustRun(t, cfg)
	st := res.Fanout.Stalled
	t.Logf("stalled: %+v", st)
	if st.Count != 10 || st.Reconnects < st.Count || st.ReconnectFailed != 0 {
		t.Fatalf("reconnects: %+v", st)
	}
	if cut := st.ClosedBeforeReconnect1008 + st.Closed1008; cut <= st.Count {
		t.Errorf("%d connections cut with 1008 for %d stalled sockets: re-dialled ones were not", cut, st.Count)
	}
	if st.ClosedBeforeReconnect1008 > st.ClosedBeforeReconnect || st.ClosedBeforeReconnect > st.Reconnects {
		t.Errorf("closed before reconnect: %+v", st)
	}
}

// -compression: every subscriber negotiates permessage-deflate with the
// broker and inflates what it receives; with -mix the events compress, so
// fewer bytes come over the wire than are handled, and nothing is lost.
func TestFanoutCompression(t *testing.T) {
	tg := startBroker(t)
	cfg := tg.config(ScenarioFanout, 50)
	cfg.Rate, cfg.Batch, cfg.Duration = 500, 20, 400*time.Millisecond
	cfg.Compression, cfg.Mix = true, true
	res := mustRun(t, cfg)
	checkFanout(t, res, 50)
	f := res.Fanout
	if f.CompressedReaders != 50 || !res.Params.Compression || !res.Params.Mix {
		t.Fatalf("%d compressed readers of 50 (params %+v)", f.CompressedReaders, res.Params)
	}
	if f.PlainBytes == 0 || f.WireBytes*2 > f.PlainBytes {
		t.Fatalf("%d wire bytes for %d inflated: want at least 2:1", f.WireBytes, f.PlainBytes)
	}
	// The subscribers share the inflate cache: a compressed event is
	// inflated once, then found.
	if !res.Params.InflateCache || f.Inflations == 0 || f.Inflations > f.Published || f.InflateCacheHits < 10*f.Inflations {
		t.Errorf("inflate cache: %d inflations, %d hits for %d events", f.Inflations, f.InflateCacheHits, f.Published)
	}
	cfg.NoInflateCache = true
	res = mustRun(t, cfg)
	checkFanout(t, res, 50)
	f = res.Fanout
	if res.Params.InflateCache || f.InflateCacheHits != 0 || f.Inflations < 10*f.Published {
		t.Errorf("no inflate cache: %d inflations, %d hits for %d events", f.Inflations, f.InflateCacheHits, f.Published)
	}
}

// Mix events are the sizes they are meant to be, valid JSON, and carry
// the numbers the subscribers look for.
func TestAppendMixEvent(t *testing.T) {
	for seq := int64(0); seq < int64(len(mixSizes)); seq++ {
		ev := appendMixEvent(nil, 3, seq, 1_700_000_000_000_000_000)
		want := mixSizes[seq]
		if len(ev) < want-2 || len(ev) > want+80 {
			t.Errorf("seq %d: %d bytes, want about %d", seq, len(ev), want)
		}
		var m map[string]any
		if err := json.Unmarshal(ev, &m); err != nil {
			t.Fatalf("seq %d: %v: %s", seq, err, ev)
		}
		if n, ok := scanInt(ev, seqKey); !ok || n != seq {
			t.Errorf("seq %d: scanned %d %v", seq, n, ok)
		}
		if n, _ := scanInt(ev, pubKey); n != 3 {
			t.Errorf("pub %d", n)
		}
	}
}
