package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/webinate/broker/broker"
	"github.com/webinate/broker/cluster"
)

// startClusterNode starts a broker joined through a real embedded NATS
// server at url, adjusted by mut.
func startClusterNode(t *testing.T, url string, mut func(*broker.Config)) *broker.Server {
	t.Helper()
	bus, err := cluster.New(cluster.Config{URLs: []string{url}, Subject: "budget"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	cfg := broker.Config{
		ListenAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		ApprovedOrigins: []string{"localhost"}, APIKey: "k", Bus: bus,
	}
	mut(&cfg)
	s, err := broker.New(cfg, zerolog.Nop())
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
	return s
}

// A client on a node without a backend, whose MetaRequests go to another
// node's backend through the cluster, has the same in-flight budget as a
// local one: at 16 requests waiting it is held, and the 17th, still over
// budget when the hold ends, is refused. Before, the Bus path had no
// budget: every request was forwarded.
func TestMetaInflightAcrossNodes(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	a := startClusterNode(t, ns.ClientURL(), func(c *broker.Config) {
		c.BackendTimeout = 30 * time.Second
		c.MaxLag = 400 * time.Millisecond // holds end after 200 ms
	})
	b := startClusterNode(t, ns.ClientURL(), func(c *broker.Config) { c.BackendTimeout = 30 * time.Second })

	be, _, err := websocket.DefaultDialer.Dial("ws://"+b.Addr()+"/", http.Header{"users-api-key": {"k"}})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	asked := make(chan map[string]any, 100)
	go func() { // answers probes only; hands every other request to the test
		for {
			_, msg, err := be.ReadMessage()
			if err != nil {
				return
			}
			var req map[string]any
			if json.Unmarshal(msg, &req) != nil || req["clientId"] == nil {
				continue
			}
			if req["property"] == "probe" {
				out, _ := json.Marshal(map[string]any{"eventType": 9, "clientId": req["clientId"], "property": "probe"})
				_ = be.WriteMessage(websocket.TextMessage, out)
				continue
			}
			asked <- req
		}
	}()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+a.Addr()+"/", http.Header{"Origin": {"http://localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read := func() string {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, msg, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("client read: %v", err)
		}
		return string(msg)
	}
	write := func(msg string) {
		t.Helper()
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	// Until A reaches B's backend through the cluster.
	deadline := time.Now().Add(10 * time.Second)
	for {
		write(`{"eventType":9,"property":"probe"}`)
		got := read()
		if got == `{"eventType":9,"property":"probe"}` {
			break
		}
		if got != `{"eventType":9,"error":"no backend available"}` || time.Now().After(deadline) {
			t.Fatalf("probe: %s", got)
		}
	}

	const budget = broker.DefaultMetaInflight
	for i := 0; i <= budget; i++ {
		write(fmt.Sprintf(`{"eventType":9,"property":"p%d"}`, i))
	}
	var first map[string]any
	for i := 0; i < budget; i++ {
		select {
		case req := <-asked:
			if i == 0 {
				first = req
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("backend got %d requests, want %d", i, budget)
		}
	}
	if got := read(); got != `{"eventType":9,"error":"too many MetaRequests in flight"}` {
		t.Fatalf("request %d: got %s", budget+1, got)
	}
	select {
	case req := <-asked:
		t.Fatalf("request over the budget reached the backend: %v", req)
	default:
	}
	out, _ := json.Marshal(map[string]any{"eventType": 9, "clientId": first["clientId"], "property": first["property"], "val": 1})
	if err := be.WriteMessage(websocket.TextMessage, out); err != nil {
		t.Fatal(err)
	}
	// Requests may cross the cluster out of order: the answer is to
	// whichever one the backend got first.
	if got, want := read(), fmt.Sprintf(`{"eventType":9,"property":"%s","val":1}`, first["property"]); got != want {
		t.Fatalf("answer: got %s, want %s", got, want)
	}
	write(`{"eventType":9,"property":"again"}`)
	select {
	case req := <-asked:
		if req["property"] != "again" {
			t.Fatalf("backend got %v", req)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("request after an answer never reached the backend")
	}
}
