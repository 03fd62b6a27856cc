package broker

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// adminGet GETs path on the admin listener with the given bearer key ("" for
// none) and returns the response (body read) and its body.
func adminGet(t testing.TB, adminURL, path, key string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, adminURL+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestAdminRoutesNeedKey: every admin route but /healthz (and /api/events,
// which has always checked the key itself) needs the bearer key; pprof's
// cmdline, which shows -jwt-secret, above all.
func TestAdminRoutesNeedKey(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.Pprof = true })
	cases := []struct {
		path   string
		wantOK int // status with the right key
		body   string
	}{
		{"/stats", 200, `"connections"`},
		{"/metrics", 200, "broker_connections"},
		{"/debug/pprof/cmdline", 200, ""},
		{"/debug/pprof/", 200, "goroutine"},
		{"/debug/pprof/symbol", 200, ""},
		{"/no-such-route", 404, ""},
	}
	for _, tc := range cases {
		t.Run(strings.Trim(tc.path, "/"), func(t *testing.T) {
			for _, key := range []string{"", "wrong"} {
				resp, body := adminGet(t, ts.adminURL, tc.path, key)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("key %q: status %d (%.80s), want 401", key, resp.StatusCode, body)
				}
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Fatalf("key %q: 401 without WWW-Authenticate", key)
				}
				if !strings.Contains(body, "missing or invalid bearer key") {
					t.Fatalf("key %q: body %q", key, body)
				}
			}
			resp, body := adminGet(t, ts.adminURL, tc.path, testKey)
			if resp.StatusCode != tc.wantOK || !strings.Contains(body, tc.body) {
				t.Fatalf("with key: status %d, body %.200q; want %d containing %q", resp.StatusCode, body, tc.wantOK, tc.body)
			}
		})
	}
	resp, body := adminGet(t, ts.adminURL, "/healthz", "")
	if resp.StatusCode != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("healthz without key: %d %s", resp.StatusCode, body)
	}
}

func TestAdminWithoutConfiguredKey(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.APIKey = ""; c.Pprof = true })
	for _, path := range []string{"/stats", "/metrics", "/debug/pprof/cmdline"} {
		resp, body := adminGet(t, ts.adminURL, path, "anything")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "no socketApiKey is configured") {
			t.Fatalf("%s: %d %s, want 403", path, resp.StatusCode, body)
		}
	}
	if resp, _ := adminGet(t, ts.adminURL, "/healthz", ""); resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	// The publish API keeps its own wording.
	code, body := publish(t, ts.adminURL, "anything", `{"eventType":1}`)
	if code != http.StatusForbidden || !strings.Contains(body, "publishing is disabled") {
		t.Fatalf("publish: %d %s", code, body)
	}
}

func TestPprofLoopbackOnly(t *testing.T) {
	h := loopbackOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	cases := []struct {
		remote string
		want   int
	}{
		{"127.0.0.1:5000", http.StatusTeapot},
		{"127.8.9.10:5000", http.StatusTeapot},
		{"[::1]:5000", http.StatusTeapot},
		{"[::ffff:127.0.0.1]:5000", http.StatusTeapot},
		{"10.1.2.3:5000", http.StatusForbidden},
		{"[2001:db8::1]:5000", http.StatusForbidden},
		{"[::ffff:192.0.2.1]:5000", http.StatusForbidden},
		{"garbage", http.StatusForbidden},
		{"", http.StatusForbidden},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(http.MethodGet, "/debug/pprof/cmdline", nil)
		r.RemoteAddr = tc.remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("remote %q: %d, want %d", tc.remote, w.Code, tc.want)
		}
	}
}
