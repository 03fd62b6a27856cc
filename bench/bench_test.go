package bench

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/webinate/broker/bench/baseline"
	"github.com/webinate/broker/broker"
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

// server is what both the baseline and the broker offer a test.
type server interface {
	Start() error
	Shutdown(context.Context) error
	Addr() string
	AdminAddr() string
}

// serve starts s and stops it when the test ends.
func serve(t *testing.T, s server, err error) target {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return target{addr: s.Addr(), adminAddr: s.AdminAddr(), key: testKey}
}

// startBaseline runs the baseline server in-process on 127.0.0.1:0.
func startBaseline(t *testing.T) target {
	s, err := baseline.New(baseline.Config{
		Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Key: testKey, Origins: []string{"localhost"},
	})
	return serve(t, s, err)
}

// startBroker runs the real broker in-process on 127.0.0.1:0, with its
// per-connection rate limits lifted as in scripts/bench.sh.
func startBroker(t *testing.T) target {
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

func mustRun(t *testing.T, cfg Config) *Result {
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
	targets(t, func(t *testing.T, tg target) {
		res := mustRun(t, tg.config(ScenarioEcho, 10))
		if res.Echo.Clients != 10 || res.Echo.RoundTrips < 10 || res.Echo.RoundTripsSec <= 0 {
			t.Fatalf("echo %+v", res.Echo)
		}
		checkLatency(t, res.Latency)
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

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens here now
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
