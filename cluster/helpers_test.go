package cluster

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/webinate/broker/broker"
	"github.com/webinate/broker/internal/testutil"
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

func testLogger(t testing.TB) zerolog.Logger { return testutil.Logger(t, zerolog.InfoLevel) }

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

// The helpers every black-box package shares (internal/testutil).
var (
	waitFor       = testutil.WaitFor
	read          = testutil.Read
	send          = testutil.Send
	expectNothing = testutil.ExpectNothing
)

// dial opens a client with an approved Origin.
func dial(t testing.TB, url string) *websocket.Conn {
	t.Helper()
	return testutil.Dial(t, url, http.Header{"Origin": {testOrigin}})
}

// dialBackend opens a backend connection with the test key.
func dialBackend(t testing.TB, url string) *websocket.Conn {
	t.Helper()
	return testutil.Dial(t, url, http.Header{"users-api-key": {testKey}})
}

// publish POSTs body to a node's publish API.
func publish(t testing.TB, n *node, body string) (int, string) {
	t.Helper()
	return testutil.Publish(t, n.adminURL, testKey, body)
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

// joined waits until a client connection counts on n (the 101 has gone
// out, so its cursor is placed).
func joined(t testing.TB, n *node, conns int64) {
	t.Helper()
	waitFor(t, 5*time.Second, "connections", func() bool { return n.Stats().Connections >= conns })
}
