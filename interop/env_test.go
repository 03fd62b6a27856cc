package interop

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/webinate/broker/broker"
	"github.com/webinate/broker/internal/testutil"
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
	s, err := broker.New(cfg, testutil.Logger(t, zerolog.WarnLevel))
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

// The helpers every black-box package shares (internal/testutil).
var (
	waitFor = testutil.WaitFor
	read    = testutil.Read
	send    = testutil.Send
)

// dial opens a gorilla/websocket client with the given Origin.
func dial(t *testing.T, url, origin string) *websocket.Conn {
	t.Helper()
	return testutil.Dial(t, url, http.Header{"Origin": {origin}})
}

// publish POSTs body to the admin publish API with the Bearer key and
// requires 202.
func publish(t *testing.T, tb *testBroker, body string) {
	t.Helper()
	if code, b := testutil.Publish(t, tb.adminURL, testKey, body); code != http.StatusAccepted {
		t.Fatalf("publish %s: %d %s", body, code, b)
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
