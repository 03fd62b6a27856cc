package broker

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// backendServe answers every MetaRequest it reads with fn's reply, adding
// the clientId it was given, until the connection closes.
func backendServe(t *testing.T, be *websocket.Conn, fn func(req map[string]any) map[string]any) {
	go func() {
		for {
			_, b, err := be.ReadMessage()
			if err != nil {
				return
			}
			var req map[string]any
			if json.Unmarshal(b, &req) != nil || req["eventType"] != float64(9) || req["clientId"] == nil {
				continue // a broadcast event, not a request
			}
			rep := fn(req)
			rep["eventType"] = 9
			rep["clientId"] = req["clientId"]
			out, _ := json.Marshal(rep)
			if be.WriteMessage(websocket.TextMessage, out) != nil {
				return
			}
		}
	}()
}

// A toy user store standing in for the users server.
func metaStore() func(map[string]any) map[string]any {
	store := map[string]any{}
	return func(req map[string]any) map[string]any {
		prop, _ := req["property"].(string)
		if v, ok := req["val"]; ok {
			store[prop] = v
		}
		return map[string]any{"username": req["username"], "property": prop, "val": store[prop]}
	}
}

func TestMetaRequestRoundTrip(t *testing.T) {
	ts := startServer(t, nil)
	be := dialBackend(t, ts.wsURL, testKey)
	seenCh := make(chan map[string]any, 10)
	store := metaStore()
	backendServe(t, be, func(req map[string]any) map[string]any {
		seenCh <- req
		return store(req)
	})
	c := dial(t, ts.wsURL, testOrigin)
	other := dial(t, ts.wsURL, testOrigin)

	send(t, c, `{"eventType":9,"username":"bob","property":"age","val":42}`)
	if got := read(t, c); got != `{"eventType":9,"property":"age","username":"bob","val":42}` {
		t.Fatalf("set reply %s", got)
	}
	send(t, c, `{"eventType":9,"username":"bob","property":"age"}`)
	got := read(t, c)
	if strings.Contains(got, "clientId") || !strings.Contains(got, `"val":42`) {
		t.Fatalf("get reply %s", got)
	}
	// The reply went to the asker only.
	expectNothing(t, other, 200*time.Millisecond)
	seen := []map[string]any{<-seenCh, <-seenCh}
	if len(seen) != 2 || seen[0]["clientId"] == seen[1]["clientId"] || seen[0]["username"] != "bob" {
		t.Fatalf("backend saw %v", seen)
	}
}

func TestMetaRequestClientIDReserved(t *testing.T) {
	ts := startServer(t, nil)
	dialBackend(t, ts.wsURL, testKey)
	c := dial(t, ts.wsURL, testOrigin)
	send(t, c, `{"eventType":9,"clientId":"1","property":"x"}`)
	if got := read(t, c); !strings.Contains(got, `"eventType":9`) || !strings.Contains(got, "set by the broker") {
		t.Fatalf("got %s", got)
	}
	send(t, c, `{"eventType":9,"auth\u0055ser":"alice","property":"x"}`)
	if got := read(t, c); !strings.Contains(got, "set by the broker") {
		t.Fatalf("claimed identity: got %s", got)
	}
}

func TestMetaRequestTimeout(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.BackendTimeout = 200 * time.Millisecond })
	be := dialBackend(t, ts.wsURL, testKey)
	c := dial(t, ts.wsURL, testOrigin)
	send(t, c, `{"eventType":9,"property":"x"}`)
	// The backend receives the request but never answers in time.
	var req map[string]any
	_ = json.Unmarshal([]byte(read(t, be)), &req)
	start := time.Now()
	if got := read(t, c); got != `{"eventType":9,"error":"backend did not answer in time"}` {
		t.Fatalf("got %s", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("timeout after %v", d)
	}
	// A late answer is dropped, not delivered to anyone.
	late, _ := json.Marshal(map[string]any{"eventType": 9, "clientId": req["clientId"], "val": "late"})
	send(t, be, string(late))
	expectNothing(t, c, 200*time.Millisecond)
	waitFor(t, 2*time.Second, "late reply counted", func() bool { return ts.Stats().MetaLate == 1 })
}

func TestMetaRequestBackendDisconnects(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.BackendTimeout = 10 * time.Second })
	be := dialBackend(t, ts.wsURL, testKey)
	c := dial(t, ts.wsURL, testOrigin)
	send(t, c, `{"eventType":9,"property":"x"}`)
	read(t, be) // the request arrived
	_ = be.Close()
	start := time.Now()
	if got := read(t, c); got != `{"eventType":9,"error":"backend disconnected before answering"}` {
		t.Fatalf("got %s", got)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("client waited for the timeout instead of the disconnect")
	}
	// With the only backend gone, the next request has nowhere to go.
	send(t, c, `{"eventType":9,"property":"x"}`)
	if got := read(t, c); got != `{"eventType":9,"error":"no backend available"}` {
		t.Fatalf("got %s", got)
	}
}

func TestMetaRequestTwoBackends(t *testing.T) {
	ts := startServer(t, nil)
	counts := make([]int, 2)
	bes := make([]*websocket.Conn, 2)
	served := make(chan int, 100)
	for i := range bes {
		bes[i] = dialBackend(t, ts.wsURL, testKey)
		backendServe(t, bes[i], func(req map[string]any) map[string]any {
			served <- i
			return map[string]any{"val": i}
		})
	}
	c := dial(t, ts.wsURL, testOrigin)
	for i := 0; i < 10; i++ {
		send(t, c, `{"eventType":9,"property":"p"}`)
		read(t, c)
		counts[<-served]++
	}
	if counts[0] != 5 || counts[1] != 5 {
		t.Fatalf("round robin spread %v, want 5/5", counts)
	}
	// Fail over: with one backend gone, every request goes to the other.
	_ = bes[0].Close()
	waitFor(t, 5*time.Second, "backend gone", func() bool { return ts.Stats().Connections == 2 })
	for i := 0; i < 4; i++ {
		send(t, c, `{"eventType":9,"property":"p"}`)
		if got := read(t, c); got != `{"eventType":9,"val":1}` {
			t.Fatalf("after failover: %s", got)
		}
	}
}

// A backend's MetaRequest without a clientId is a server event: published.
func TestBackendMetaEventWithoutClientIDIsPublished(t *testing.T) {
	ts := startServer(t, nil)
	be := dialBackend(t, ts.wsURL, testKey)
	c := dial(t, ts.wsURL, testOrigin)
	send(t, be, `{"eventType":9,"username":"bob","property":"age","val":3}`)
	if got := read(t, c); got != `{"eventType":9,"username":"bob","property":"age","val":3}` {
		t.Fatalf("got %s", got)
	}
}

// Only the backend that holds a request can answer it.
func TestMetaReplyFromOtherBackendDropped(t *testing.T) {
	ts := startServer(t, nil)
	be1 := dialBackend(t, ts.wsURL, testKey)
	be2 := dialBackend(t, ts.wsURL, testKey)
	c := dial(t, ts.wsURL, testOrigin)
	send(t, c, `{"eventType":9,"property":"p"}`)
	// Round robin picked one of them: find which.
	holder, other := be1, be2
	_ = be1.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, b, err := be1.ReadMessage()
	if err != nil {
		holder, other = be2, be1
		b = []byte(read(t, be2))
	}
	var req map[string]any
	if err := json.Unmarshal(b, &req); err != nil || req["clientId"] == nil {
		t.Fatalf("request %s", b)
	}
	forged, _ := json.Marshal(map[string]any{"eventType": 9, "clientId": req["clientId"], "val": "forged"})
	send(t, other, string(forged))
	// The forged reply is dropped (and counted) before the real one is
	// sent: were it delivered, it would arrive first.
	waitFor(t, 5*time.Second, "the forged reply dropped", func() bool { return ts.Stats().MetaLate == 1 })
	real, _ := json.Marshal(map[string]any{"eventType": 9, "clientId": req["clientId"], "val": "real"})
	send(t, holder, string(real))
	if got := read(t, c); got != `{"eventType":9,"val":"real"}` {
		t.Fatalf("got %s", got)
	}
	if ts.Stats().MetaLate != 1 {
		t.Fatalf("forged reply not counted: %+v", ts.Stats())
	}
}

// A JWT-identified client's MetaRequest carries its verified username.
func TestMetaRequestCarriesVerifiedUser(t *testing.T) {
	m := jwtModes(t)[0]
	ts := startServer(t, func(c *Config) { c.Auth = m.cfg })
	be := dialBackend(t, ts.wsURL, testKey)
	alice, _ := dialToken(t, ts, m.sign(claims("alice", time.Hour)), "")
	anon := dial(t, ts.wsURL, testOrigin)
	send(t, alice, `{"eventType":9,"username":"bob","property":"age"}`)
	var req map[string]any
	_ = json.Unmarshal([]byte(read(t, be)), &req)
	if req["authUser"] != "alice" || req["username"] != "bob" {
		t.Fatalf("forwarded %v", req)
	}
	send(t, anon, `{"eventType":9,"property":"age"}`)
	req = nil
	_ = json.Unmarshal([]byte(read(t, be)), &req)
	if _, ok := req["authUser"]; ok {
		t.Fatalf("anonymous request carries authUser: %v", req)
	}
}

// Once a backend has its 101, a client's MetaRequest reaches it: the
// backend joins the routing with its 101, not after the handler's later
// steps (a client could otherwise be told "no backend available" by a
// broker whose backend had just connected).
func TestBackendRoutedFromItsHandshake(t *testing.T) {
	ts := startServer(t, nil)
	client := dial(t, ts.wsURL, testOrigin)
	release := make(chan struct{})
	hook := func() { <-release }
	testHookJoined.Store(&hook)
	t.Cleanup(func() { testHookJoined.Store(nil) })
	be := dialBackend(t, ts.wsURL, testKey) // its handler is now held in the hook
	defer close(release)
	send(t, client, `{"eventType":9,"username":"bob","property":"age"}`)
	got := read(t, be)
	if !strings.Contains(got, `"clientId"`) {
		t.Fatalf("backend got %s, want the forwarded MetaRequest", got)
	}
}

// A client that saw a backend's 101 finds the backend even if the
// broker's handler is held right after writing it: the backend joins the
// routing before its 101 goes out (it joined after, and a client's
// MetaRequest in that window was told "no backend available", seen once
// on a loaded machine). The request waits for the held write lock and
// reaches the backend once the handler goes on.
func TestBackendRoutedBeforeIts101(t *testing.T) {
	ts := startServer(t, nil)
	client := dial(t, ts.wsURL, testOrigin)
	release := make(chan struct{})
	var once sync.Once
	hook := func() { once.Do(func() { <-release }) }
	testHookSent101.Store(&hook)
	t.Cleanup(func() { testHookSent101.Store(nil) })
	be := dialBackend(t, ts.wsURL, testKey) // returns with its handler held in the hook
	send(t, client, `{"eventType":9,"username":"bob","property":"age"}`)
	// Nothing may come back while the handler is held: a refusal would
	// be the bug (the request itself waits for the backend's write lock).
	_ = client.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, msg, err := client.ReadMessage(); err == nil {
		close(release)
		t.Fatalf("client got %s while the backend's handshake was held", msg)
	}
	close(release)
	got := read(t, be)
	if !strings.Contains(got, `"clientId"`) {
		t.Fatalf("backend got %s, want the forwarded MetaRequest", got)
	}
}
