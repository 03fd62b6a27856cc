package broker

import (
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape GETs /metrics with the key and parses the text exposition.
func scrape(t testing.TB, ts *testServer) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := adminGet(t, ts.adminURL, "/metrics", testKey)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return mf
}

// metricValue is the value of the sample of family name whose labels
// include every pair in labels (name=value, ...); -1 if there is none.
func metricValue(mf map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f, ok := mf[name]
	if !ok {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	return -1
}

func TestMetrics(t *testing.T) {
	// Two brokers in one process: each has its own registry.
	ts := startServer(t, func(c *Config) { c.Shards = 2 })
	other := startServer(t, nil)
	scrape(t, other)

	before := scrape(t, ts)
	for _, name := range []string{"go_goroutines", "process_open_fds", "broker_events_published_total", "broker_handshakes_refused_total"} {
		if _, ok := before[name]; !ok {
			t.Errorf("no %s in /metrics", name)
		}
	}
	if v := metricValue(before, "broker_connections", "kind", "client"); v != 0 {
		t.Fatalf("clients before: %v", v)
	}
	if f := before["broker_events_published_total"]; f.GetType() != dto.MetricType_COUNTER {
		t.Fatalf("broker_events_published_total is %v, want a counter", f.GetType())
	}

	c := dial(t, ts.wsURL, testOrigin)
	dialBackend(t, ts.wsURL, testKey)
	rawHandshake(t, ts.Addr(), map[string]string{"Origin": "http://evil.example"})
	if code, body := publish(t, ts.adminURL, testKey, `[{"eventType":1,"username":"a"},{"eventType":2,"username":"a"}]`); code != 202 {
		t.Fatalf("publish: %d %s", code, body)
	}
	read(t, c)
	read(t, c)
	_ = c.Close()
	waitFor(t, 5*time.Second, "client close counted", func() bool { return len(ts.Stats().Closed) > 0 })
	// The backend's events are written by its shard's pass, which on a
	// busy run may end after the client has read its own.
	waitFor(t, 5*time.Second, "the backend's deliveries counted", func() bool { return ts.Stats().Deliveries == 4 })

	after := scrape(t, ts)
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"broker_events_published_total", nil, 2},
		{"broker_deliveries_total", nil, 4}, // two events, to the client and the backend
		{"broker_connections_accepted_total", nil, 2},
		{"broker_connections", []string{"kind", "client"}, 0},
		{"broker_connections", []string{"kind", "backend"}, 1},
		{"broker_handshakes_refused_total", []string{"reason", "origin"}, 1},
		{"broker_handshakes_refused_total", []string{"reason", "api_key"}, 0},
		{"broker_closes_total", []string{"reason", "peer_gone"}, 1}, // closed without a close frame
		{"broker_slow_consumers_total", nil, 0},
		{"broker_draining", nil, 0},
	}
	for _, ck := range checks {
		if got := metricValue(after, ck.name, ck.labels...); got != ck.want {
			t.Errorf("%s%v = %v, want %v", ck.name, ck.labels, got, ck.want)
		}
	}
	shards := 0.0
	for _, m := range after["broker_shard_connections"].GetMetric() {
		shards += m.GetGauge().GetValue()
	}
	if n := len(after["broker_shard_connections"].GetMetric()); n != 2 || shards != 1 {
		t.Errorf("broker_shard_connections: %d shards holding %v connections, want 2 holding 1", n, shards)
	}
	// The other broker saw none of it.
	if v := metricValue(scrape(t, other), "broker_events_published_total"); v != 0 {
		t.Errorf("other broker's events published: %v", v)
	}
}
