package cluster

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/webinate/broker/broker"
)

const (
	testKey    = "test-key"
	testOrigin = "http://localhost:3000"
)

// natsd is an embedded nats-server with JetStream that a test can stop
// and start again on the same port and store directory.
type natsd struct {
	t    testing.TB
	dir  string
	port int
	ns   *server.Server
}

func startNATS(t testing.TB) *natsd {
	t.Helper()
	d := &natsd{t: t, dir: t.TempDir(), port: -1}
	d.start()
	d.port = d.ns.Addr().(*net.TCPAddr).Port
	t.Cleanup(d.stop)
	return d
}

func (d *natsd) start() {
	d.t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: d.port, NoSigs: true, NoLog: true, JetStream: true, StoreDir: d.dir})
	if err != nil {
		d.t.Fatalf("nats-server: %v", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		d.t.Fatal("nats-server not ready")
	}
	d.ns = ns
}

func (d *natsd) stop() {
	if d.ns != nil {
		d.ns.Shutdown()
		d.ns.WaitForShutdown()
		d.ns = nil
	}
}

func (d *natsd) url() string { return "nats://127.0.0.1:" + strconv.Itoa(d.port) }

// node is one broker of a test cluster.
type node struct {
	*broker.Server
	bus      *Bridge
	wsURL    string
	adminURL string
}

func testLogger(t testing.TB) zerolog.Logger {
	if testing.Verbose() {
		return zerolog.New(zerolog.ConsoleWriter{Out: testWriter{t}}).Level(zerolog.InfoLevel)
	}
	return zerolog.Nop()
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startNode starts a broker joined to the cluster at d, with the broker
// and bridge configs adjusted by the mut functions (either may be nil).
func startNode(t testing.TB, d *natsd, mutB func(*broker.Config), mutC func(*Config)) *node {
	t.Helper()
	ccfg := Config{URLs: []string{d.url()}, Subject: "test"}
	if mutC != nil {
		mutC(&ccfg)
	}
	log := testLogger(t)
	bus, err := New(ccfg, log)
	if err != nil {
		t.Fatalf("cluster.New: %v", err)
	}
	cfg := broker.Config{
		ListenAddr:      "127.0.0.1:0",
		AdminAddr:       "127.0.0.1:0",
		ApprovedOrigins: []string{"localhost"},
		APIKey:          testKey,
		Bus:             bus,
		DrainPeriod:     -1, // shut down with clients: at once
	}
	if mutB != nil {
		mutB(&cfg)
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
	return &node{Server: s, bus: bus, wsURL: "ws://" + s.Addr() + "/", adminURL: "http://" + s.AdminAddr()}
}

func dial(t testing.TB, url string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {testOrigin}})
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, code)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func dialBackend(t testing.TB, url string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, http.Header{"users-api-key": {testKey}})
	if err != nil {
		t.Fatalf("dial backend: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// read returns the next text message or fails the test.
func read(t testing.TB, c *websocket.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func expectNothing(t testing.TB, c *websocket.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, b, err := c.ReadMessage()
	if err == nil {
		t.Fatalf("unexpected message %s", b)
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("unexpected error %v", err)
	}
}

func send(t testing.TB, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// publish POSTs body to a node's publish API.
func publish(t testing.TB, n *node, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.adminURL+"/api/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// health returns /healthz's status code and decoded body.
func health(t testing.TB, n *node) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(n.adminURL + "/healthz")
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// joined waits until a client connection counts on n (the 101 has gone
// out, so its cursor is placed).
func joined(t testing.TB, n *node, conns int64) {
	t.Helper()
	waitFor(t, 5*time.Second, "connections", func() bool { return n.Stats().Connections >= conns })
}
