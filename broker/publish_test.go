package broker

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestPublishSingle(t *testing.T) {
	ts := startServer(t, nil)
	a := dial(t, ts.wsURL, testOrigin)
	b := dial(t, ts.wsURL, testOrigin)
	ev := `{"eventType":1,"username":"bob"}`
	code, body := publish(t, ts.adminURL, testKey, ev)
	if code != http.StatusAccepted || body != `{"accepted":1}` {
		t.Fatalf("publish: %d %s", code, body)
	}
	for _, c := range []*websocket.Conn{a, b} {
		if got := read(t, c); got != ev {
			t.Fatalf("got %s, want %s", got, ev)
		}
	}
}

func TestPublishArrayInOrderAndByteForByte(t *testing.T) {
	ts := startServer(t, nil)
	c := dial(t, ts.wsURL, testOrigin)
	events := []string{
		`{"eventType":5,"username":"bob","file":{"name":"a.png","size":12},"extra":"kept"}`,
		`{ "eventType" : 6 , "file" : "x" ,"error":null,  "n": 1.50e3 }`,
		`{"eventType":7,"username":"é\u00e9","bucket":"b","nested":{"eventType":99}}`,
	}
	code, body := publish(t, ts.adminURL, testKey, "[\n"+strings.Join(events, ",\n")+"\n]")
	if code != http.StatusAccepted || body != `{"accepted":3}` {
		t.Fatalf("publish: %d %s", code, body)
	}
	for i, want := range events {
		if got := read(t, c); got != want {
			t.Fatalf("event %d: got %s, want %s", i, got, want)
		}
	}
}

func TestPublishRejects(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxPublishBytes = 256 })
	c := dial(t, ts.wsURL, testOrigin)
	cases := []struct {
		name string
		key  string
		body string
		want int
	}{
		{"wrong key", "nope", `{"eventType":1}`, 401},
		{"no key", "", `{"eventType":1}`, 401},
		{"one bad element publishes nothing", testKey, `[{"eventType":1,"username":"a"},{"eventType":42}]`, 400},
		{"client-only type", testKey, `{"eventType":10,"message":"x"}`, 400},
		{"not JSON", testKey, `nope`, 400},
		{"empty array", testKey, `[]`, 400},
		{"scalar", testKey, `1`, 400},
		{"error not a string", testKey, `{"eventType":1,"error":5}`, 400},
		{"too large", testKey, `[` + strings.Repeat(`{"eventType":1},`, 30) + `{"eventType":1}]`, 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := publish(t, ts.adminURL, tc.key, tc.body)
			if code != tc.want {
				t.Fatalf("status %d (%s), want %d", code, body, tc.want)
			}
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
				t.Fatalf("body %q is not {\"error\":...}", body)
			}
		})
	}
	expectNothing(t, c, 200*time.Millisecond)
	if n := ts.Stats().EventsPublished; n != 0 {
		t.Fatalf("%d events published by rejected requests", n)
	}
}

func TestPublishMethodAndContentType(t *testing.T) {
	ts := startServer(t, nil)
	resp, err := http.Get(ts.adminURL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, ts.adminURL+"/api/events", strings.NewReader(`{"eventType":1}`))
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("form content type: %d, want 415", resp.StatusCode)
	}
}

func TestHealthz(t *testing.T) {
	ts := startServer(t, nil)
	dial(t, ts.wsURL, testOrigin)
	resp, err := http.Get(ts.adminURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Status      string
		Connections int
	}
	_ = json.NewDecoder(resp.Body).Decode(&h)
	if resp.StatusCode != 200 || h.Status != "ok" || h.Connections != 1 {
		t.Fatalf("healthz %d %+v", resp.StatusCode, h)
	}
}

func TestBackendSocketPublishes(t *testing.T) {
	ts := startServer(t, nil)
	c := dial(t, ts.wsURL, testOrigin)
	be := dialBackend(t, ts.wsURL, testKey)
	ev := `{"eventType":3,"username":"carol","extra":[1,2,3]}`
	send(t, be, ev)
	if got := read(t, c); got != ev {
		t.Fatalf("client got %s", got)
	}
	if got := read(t, be); got != ev {
		t.Fatalf("backend got %s (backends receive every event)", got)
	}
	// A bad event from a backend is answered on the backend only.
	send(t, be, `{"eventType":42}`)
	if got := read(t, be); !strings.Contains(got, `"eventType":42`) || !strings.Contains(got, `"error"`) {
		t.Fatalf("backend error reply %s", got)
	}
	expectNothing(t, c, 200*time.Millisecond)
}

// Clients may not publish server events over their socket.
func TestClientCannotPublish(t *testing.T) {
	ts := startServer(t, nil)
	a := dial(t, ts.wsURL, testOrigin)
	b := dial(t, ts.wsURL, testOrigin)
	send(t, a, `{"eventType":1,"username":"mallory"}`)
	if got := read(t, a); !strings.Contains(got, `"error"`) {
		t.Fatalf("got %s", got)
	}
	expectNothing(t, b, 200*time.Millisecond)
}

func TestManyClientsOrdered(t *testing.T) {
	const clients, events = 20, 200
	ts := startServer(t, nil)
	conns := make([]*websocket.Conn, clients)
	for i := range conns {
		conns[i] = dial(t, ts.wsURL, testOrigin)
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			for want := 0; want < events; want++ {
				_, b, err := c.ReadMessage()
				if err != nil {
					errs <- fmt.Errorf("client %d event %d: %v", i, want, err)
					return
				}
				var e struct{ Seq int }
				if err := json.Unmarshal(b, &e); err != nil || e.Seq != want {
					errs <- fmt.Errorf("client %d: got %s, want seq %d", i, b, want)
					return
				}
			}
		}()
	}
	// Mix single publishes and batches: order must hold across both.
	for seq := 0; seq < events; {
		n := 1 + seq%5
		if seq+n > events {
			n = events - seq
		}
		parts := make([]string, n)
		for j := range parts {
			parts[j] = fmt.Sprintf(`{"eventType":5,"username":"u","file":"f","seq":%d}`, seq+j)
		}
		body := parts[0]
		if n > 1 {
			body = "[" + strings.Join(parts, ",") + "]"
		}
		if code, b := publish(t, ts.adminURL, testKey, body); code != 202 {
			t.Fatalf("publish: %d %s", code, b)
		}
		seq += n
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// The reactor holds connections without a goroutine each.
func TestNoGoroutinePerConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 sockets")
	}
	const n = 2000
	ts := startServer(t, nil)
	// Warm up: one connection starts nbio's lazily created helpers.
	warm := dialRaw(t, ts.Addr())
	_ = warm
	runtime.GC()
	before := runtime.NumGoroutine()
	conns := make([]*rawConn, 0, n)
	for i := 0; i < n; i++ {
		conns = append(conns, dialRaw(t, ts.Addr()))
	}
	waitFor(t, 10*time.Second, "all registered", func() bool { return ts.Stats().Connections == n+1 })
	// Handshake helpers on nbio's pool finish and exit: wait for them.
	waitFor(t, 5*time.Second, fmt.Sprintf("goroutines within 100 of the %d before %d connections", before, n),
		func() bool { return runtime.NumGoroutine()-before < 100 })
	// And they all still work.
	code, _ := publish(t, ts.adminURL, testKey, `{"eventType":1,"username":"x"}`)
	if code != 202 {
		t.Fatal(code)
	}
	for i, r := range conns {
		if _, op, p := r.readFrame(); op != opText || string(p) != `{"eventType":1,"username":"x"}` {
			t.Fatalf("conn %d: op %d %q", i, op, p)
		}
	}
}
