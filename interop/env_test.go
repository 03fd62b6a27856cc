package interop

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/webinate/broker/broker"
)

const (
	testKey = "interop-key"
	// approvedOrigin is one that the test configs approve, as in
	// config.example.json (localhostPattern).
	approvedOrigin = "http://localhost"
	// localhostPattern is config.example.json's localhost entry: http or
	// https, host localhost exactly, any port.
	localhostPattern = "^https?://localhost(:[0-9]+)?$"
)

// missing skips the test because a tool it needs is absent, or fails it
// under CI=true, where scripts/test.sh has installed everything and a skip
// would hide a broken install.
func missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s, and CI=true: interop tests must not skip (scripts/test.sh installs it)", what)
	}
	t.Skipf("skipped: %s (scripts/test.sh installs it)", what)
}

// testBroker is a real broker on 127.0.0.1:0.
type testBroker struct {
	*broker.Server
	wsURL    string // ws://127.0.0.1:PORT/
	adminURL string // http://127.0.0.1:PORT
}

// startBroker starts a broker approving localhost origins only, as
// config.example.json does (localhostPattern: http://localhost:PORT is
// approved; http://127.0.0.1:PORT and http://localhost.evil.example are not),
// adjusted by mut, and shuts it down when the test ends.
func startBroker(t *testing.T, mut func(*broker.Config)) *testBroker {
	t.Helper()
	cfg := broker.Config{
		ListenAddr:      "127.0.0.1:0",
		AdminAddr:       "127.0.0.1:0",
		ApprovedOrigins: []string{localhostPattern},
		APIKey:          testKey,
	}
	if mut != nil {
		mut(&cfg)
	}
	log := zerolog.Nop()
	if testing.Verbose() {
		log = zerolog.New(zerolog.ConsoleWriter{Out: testWriter{t}, NoColor: true}).Level(zerolog.WarnLevel)
	}
	s, err := broker.New(cfg, log)
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return &testBroker{Server: s, wsURL: "ws://" + s.Addr() + "/", adminURL: "http://" + s.AdminAddr()}
}

// dial opens a gorilla/websocket client with the given Origin.
func dial(t *testing.T, url, origin string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {origin}})
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("dial %s (origin %q): %v (status %d)", url, origin, err, code)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// read returns the next text message on c or fails the test.
func read(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

// publish POSTs body to the admin publish API with the Bearer key and
// requires 202.
func publish(t *testing.T, tb *testBroker, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, tb.adminURL+"/api/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("publish %s: %d %s", body, resp.StatusCode, b)
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lookPath returns the first of names found on PATH, or "".
func lookPath(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// send writes a text message on c or fails the test.
func send(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
}
