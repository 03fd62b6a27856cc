package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/webinate/broker/broker"
)

// The forged pongs alternate the tagged 25-byte shape and the older
// 17-byte one, marker 'b', positions inside the window (never 0), a
// cursor no server has reached; the frame is a masked pong that unmasks
// to the payload.
func TestForgePayload(t *testing.T) {
	const window = 4096
	seen := map[uint64]bool{}
	for k := range uint64(2 * window) {
		p := forgePayload(nil, k, window)
		want := 25
		if k%2 == 1 {
			want = 17
		}
		if len(p) != want || p[0] != 'b' {
			t.Fatalf("pong %d: %d bytes, marker %q", k, len(p), p[0])
		}
		pos := binary.BigEndian.Uint64(p[1:9])
		if pos < 1 || pos > window || binary.BigEndian.Uint64(p[9:17]) != forgeCursor {
			t.Fatalf("pong %d: position %d cursor %d", k, pos, binary.BigEndian.Uint64(p[9:17]))
		}
		seen[pos] = true
	}
	if len(seen) != window {
		t.Errorf("positions visited %d of %d", len(seen), window)
	}
	p := forgePayload(nil, 0, window)
	f := appendMaskedFrame(nil, 0xA, p)
	if len(f) != 2+4+len(p) || f[0] != 0x8A || f[1] != 0x80|byte(len(p)) {
		t.Fatalf("frame header % x", f[:2])
	}
	for i := range p {
		if f[6+i]^f[2+i%4] != p[i] {
			t.Fatalf("byte %d does not unmask to the payload", i)
		}
	}
}

// Never-reading sockets that spray credit-shaped pongs get no credit from
// the broker: it counts their pongs as forged and closes every one of
// them with 1008 once its lag passes MaxLag, like any stalled subscriber,
// and the readers lose nothing. The run also reports the server's RSS
// after connecting and its peak after that.
func TestStalledForgePongs(t *testing.T) {
	tg := startBrokerWith(t, func(c *broker.Config) { c.MaxLag = 500 * time.Millisecond })
	cfg := tg.config(ScenarioFanout, 40)
	cfg.StalledFraction, cfg.StalledForgeInterval = 0.5, 5*time.Millisecond
	cfg.Rate, cfg.Size, cfg.Duration = 500, 1024, 2*time.Second
	cfg.LateAfter, cfg.StalledReadTimeout, cfg.LagBound = 300*time.Millisecond, 2*time.Second, time.Minute
	cfg.PID = os.Getpid() // the broker runs in this process
	res := mustRun(t, cfg)
	f, st := res.Fanout, res.Fanout.Stalled
	t.Logf("stalled: %+v", st)
	if f.Readers != 20 || f.StalledSubscribers != 20 || st.Count != 20 {
		t.Fatalf("readers %d stalled %d", f.Readers, f.StalledSubscribers)
	}
	if st.ForgedPongs < st.Count || st.ForgeIntervalSeconds != 0.005 || res.Params.StalledForgeIntervalSeconds != 0.005 ||
		res.Params.StalledForgeWindow != DefaultStalledForgeWindow {
		t.Errorf("forged pongs: %+v, params %+v", st, res.Params)
	}
	if st.Closed1008 != st.Count || st.CloseCodes["1008"] != st.Count || st.Open != 0 || st.ClosedWithinBound != st.Count {
		t.Errorf("forging sockets not all closed with 1008 during the run: %+v", st)
	}
	if f.Expected != f.Published*20 || f.Lost != 0 || f.OutOfOrder != 0 || res.Connect.Disconnected != 0 {
		t.Errorf("readers disturbed: %+v, %d disconnected", f, res.Connect.Disconnected)
	}
	// The broker saw tagged pongs whose tag did not match.
	if n := brokerStat(t, tg, "forgedPongs"); n <= 0 {
		t.Errorf("broker counted %v forged pongs", n)
	}
	s := res.Server
	if s.RSSConnectedBytes <= 0 || s.RSSRunPeakBytes < s.RSSConnectedBytes || s.RSSRunPeakFrom != "hwm" ||
		s.RSSGrowthBytes != s.RSSRunPeakBytes-s.RSSConnectedBytes || s.RSSPeakBytes < s.RSSRunPeakBytes {
		t.Errorf("server RSS: %+v", s)
	}
}

// brokerStat reads one number from the broker's /stats.
func brokerStat(t *testing.T, tg target, name string) float64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+tg.adminAddr+"/stats", nil)
	req.Header.Set("Authorization", "Bearer "+tg.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	v, _ := m[name].(float64)
	return v
}

// A bad forge interval or window is refused with a message naming it.
func TestStalledForgeValidation(t *testing.T) {
	for _, tc := range []struct {
		fraction float64
		interval time.Duration
		window   int
		want     string
	}{
		{0.5, 500 * time.Microsecond, 0, "500µs"},
		{0.5, -time.Second, 0, "-1s"},
		{0, 5 * time.Millisecond, 0, "needs stalled"},
		{0.5, 5 * time.Millisecond, -3, "window -3"},
	} {
		cfg := Config{Scenario: ScenarioFanout, Addr: "127.0.0.1:1", AdminAddr: "127.0.0.1:2", Key: "k", Conns: 2,
			StalledFraction: tc.fraction, StalledForgeInterval: tc.interval, StalledForgeWindow: tc.window}
		if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("fraction %v interval %v window %d: %v, want %q", tc.fraction, tc.interval, tc.window, err, tc.want)
		}
	}
}
