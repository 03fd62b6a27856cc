package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// lockedBuffer collects log lines written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the logged JSON objects whose message contains msg.
func (l *lockedBuffer) lines(t testing.TB, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if s, _ := m["message"].(string); strings.Contains(s, msg) {
			out = append(out, m)
		}
	}
	return out
}

// startLoggedServer is startServer with the broker's log kept in buf and
// its warning sampler set to burst lines per period.
func startLoggedServer(t *testing.T, buf *lockedBuffer, burst uint32, period time.Duration) *testServer {
	t.Helper()
	s, err := New(Config{
		ListenAddr:      "127.0.0.1:0",
		AdminAddr:       "127.0.0.1:0",
		ApprovedOrigins: []string{"localhost"},
		APIKey:          testKey,
	}, zerolog.New(buf).Level(zerolog.WarnLevel))
	if err != nil {
		t.Fatal(err)
	}
	s.warn = newWarnLoggers(s.log, burst, period)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return &testServer{Server: s, wsURL: "ws://" + s.Addr() + "/", adminURL: "http://" + s.AdminAddr()}
}

// stepClock stands in for zerolog's clock (the one its BurstSampler reads)
// until the test ends: time stands still unless the test moves it, so a
// sampler period passes when the test says, not when a sleep ends.
func stepClock(t *testing.T) (advance func(time.Duration)) {
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	old := zerolog.TimestampFunc
	zerolog.TimestampFunc = func() time.Time { return time.Unix(0, now.Load()) }
	t.Cleanup(func() { zerolog.TimestampFunc = old })
	return func(d time.Duration) { now.Add(int64(d)) }
}

// TestRefusedOriginFloodLogsBounded: 300 refused upgrades log warnBurst
// lines, not 300; and once the period has passed, the next line says how
// many it stands for.
func TestRefusedOriginFloodLogsBounded(t *testing.T) {
	const flood = 300
	var buf lockedBuffer
	// Before the server, so that its cleanup (Shutdown) runs first and no
	// goroutine of it reads the clock when the real one is put back.
	advance := stepClock(t)
	ts := startLoggedServer(t, &buf, warnBurst, time.Second)
	for i := 0; i < flood; i++ {
		if _, code := rawHandshake(t, ts.Addr(), map[string]string{"Origin": "http://evil.example"}); code != http.StatusForbidden {
			t.Fatalf("status %d, want 403", code)
		}
	}
	// A wrong backend key is another kind: the origin flood does not mute it.
	if _, code := rawHandshake(t, ts.Addr(), map[string]string{backendKeyHeader: "wrong"}); code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", code)
	}
	lines := buf.lines(t, "origin not approved")
	if len(lines) != warnBurst {
		t.Fatalf("%d refused-origin lines for %d refusals in one period, want %d", len(lines), flood, warnBurst)
	}
	if n := len(buf.lines(t, "wrong users-api-key")); n != 1 {
		t.Fatalf("%d wrong-key lines, want 1", n)
	}

	// After the period, the next refusal is logged with the count of
	// those dropped since the last line.
	advance(time.Second)
	rawHandshake(t, ts.Addr(), map[string]string{"Origin": "http://evil.example"})
	lines = buf.lines(t, "origin not approved")
	total := 0.0
	for _, m := range lines {
		total++
		if n, ok := m["similarSuppressed"].(float64); ok {
			total += n
		}
	}
	if total != flood+1 {
		t.Fatalf("lines plus similarSuppressed account for %v refusals, want %d", total, flood+1)
	}
	if _, ok := lines[len(lines)-1]["similarSuppressed"]; !ok {
		t.Fatalf("last line has no similarSuppressed: %v", lines[len(lines)-1])
	}
}

func TestCountingSampler(t *testing.T) {
	var buf lockedBuffer
	l := sampled(zerolog.New(&buf), 2, time.Hour)
	for i := 0; i < 10; i++ {
		l.Warn().Int("i", i).Msg("x")
	}
	if got := buf.lines(t, "x"); len(got) != 2 || got[0]["similarSuppressed"] != nil {
		t.Fatalf("lines %v", got)
	}
	// Levels below the logger's are not counted as dropped.
	quiet := sampled(zerolog.New(&buf).Level(zerolog.ErrorLevel), 1, time.Hour)
	quiet.Warn().Msg("y")
	quiet.Error().Msg("y")
	if got := buf.lines(t, "y"); len(got) != 1 || got[0]["similarSuppressed"] != nil {
		t.Fatalf("lines %v", got)
	}
}
