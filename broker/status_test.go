package broker

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestStatusPage(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	resp, err := http.Get(ts.adminURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(string(body), "/status/events") {
		t.Fatal("page does not read /status/events")
	}
	// "/" is the page only, not a catch-all: other paths are the keyed
	// admin API's (401 without the key, 404 with it).
	for _, path := range []string{"/nope", "/status/"} {
		for key, want := range map[string]int{"": http.StatusUnauthorized, testKey: http.StatusNotFound} {
			req, _ := http.NewRequest(http.MethodGet, ts.adminURL+path, nil)
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("GET %s (key %q): %d, want %d", path, key, resp.StatusCode, want)
			}
		}
	}
}

func TestStatusEventsKey(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	for _, tc := range []struct {
		name, query, bearer string
		want                int
	}{
		{"no key", "", "", http.StatusUnauthorized},
		{"wrong query key", "?key=nope", "", http.StatusUnauthorized},
		{"wrong bearer", "", "nope", http.StatusUnauthorized},
		{"prefix of the key", "?key=" + testKey[:3], "", http.StatusUnauthorized},
		{"query key", "?key=" + testKey, "", http.StatusOK},
		{"bearer", "", testKey, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, ts.adminURL+"/status/events"+tc.query, nil)
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	// No key configured: the stream is closed to everyone, as publishing is.
	open := startServer(t, func(c *Config) { c.APIKey = "" })
	resp, err := http.Get(open.adminURL + "/status/events?key=")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no configured key: status %d, want 401", resp.StatusCode)
	}
}

// statusStream opens /status/events and returns a function that reads the
// next snapshot.
func statusStream(t *testing.T, ts *testServer) (next func() statusSnapshot, body io.Closer) {
	t.Helper()
	resp, err := http.Get(ts.adminURL + "/status/events?key=" + testKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	return func() statusSnapshot {
		t.Helper()
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var snap statusSnapshot
			if err := json.Unmarshal([]byte(data), &snap); err != nil {
				t.Fatalf("snapshot %q: %v", data, err)
			}
			return snap
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return statusSnapshot{}
	}, resp.Body
}

func TestStatusEventsSnapshots(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *Config) { c.Shards = 3 })
	next, _ := statusStream(t, ts)
	first := next()
	if len(first.Shards) != 3 || first.Connections != 0 || first.Time == 0 {
		t.Fatalf("first snapshot %+v", first)
	}
	for range 7 {
		dial(t, ts.wsURL, testOrigin)
	}
	waitFor(t, 5*time.Second, "7 connections", func() bool { return ts.Stats().Connections == 7 })
	start := time.Now()
	snap := next()
	for snap.Connections != 7 {
		snap = next()
	}
	if d := time.Since(start); d > 3*StatusInterval {
		t.Fatalf("snapshot took %v", d)
	}
	sum := 0
	for _, n := range snap.Shards {
		sum += n
	}
	if sum != 7 || snap.Time <= first.Time {
		t.Fatalf("shards %v (sum %d), time %d after %d", snap.Shards, sum, snap.Time, first.Time)
	}
}

func TestShardCounts(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *Config) { c.Shards = 4 })
	for range 9 {
		dial(t, ts.wsURL, testOrigin)
	}
	waitFor(t, 5*time.Second, "9 connections", func() bool { return ts.Stats().Connections == 9 })
	counts := ts.hub.shardCounts()
	sum := 0
	for _, n := range counts {
		sum += n
	}
	if len(counts) != 4 || sum != 9 {
		t.Fatalf("shardCounts %v", counts)
	}
}

// An open stream never ends by itself; it must not hold up a graceful
// shutdown (http.Server.Shutdown waits for active requests).
func TestStatusEventsShutdown(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	next, _ := statusStream(t, ts)
	next()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown took %v with a status stream open", d)
	}
}
