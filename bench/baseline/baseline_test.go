package baseline_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/webinate/broker/bench/baseline"
	"github.com/webinate/broker/bench/peerapi"
	"github.com/webinate/broker/bench/peerapi/peertest"
)

const testKey = "secret"

// startServer runs a baseline server on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T) *baseline.Server {
	t.Helper()
	s, err := baseline.New(baseline.Config{Config: peerapi.Config{
		Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Key: testKey,
		Origins: []string{"localhost", `^https://app\.example\.com$`},
	}})
	return peertest.Serve(t, s, err)
}

func dial(t *testing.T, s *baseline.Server, origin string) *websocket.Conn {
	t.Helper()
	return peertest.Dial(t, s.Addr(), origin)
}

func read(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	b := peertest.Read(t, c)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("bad frame %q: %v", b, err)
	}
	return m
}

// waitConns polls until the server has n clients, so broadcasts reach all.
func waitConns(t *testing.T, s *baseline.Server, n int) {
	t.Helper()
	peertest.WaitConns(t, s.Conns, n)
}

func TestEchoAndErrors(t *testing.T) {
	s := startServer(t)
	c := dial(t, s, "http://localhost:3000")
	cases := []struct {
		name, send string
		want       map[string]any
	}{
		{"echo", `{"eventType":10,"message":"Hello world?"}`, map[string]any{"eventType": 10.0, "message": "Hello world?"}},
		{"not json", `nope`, map[string]any{"eventType": 0.0, "error": "invalid JSON"}},
		{"array", `[1]`, map[string]any{"eventType": 0.0, "error": "event must be a JSON object"}},
		{"meta", `{"eventType":9,"property":"x"}`, map[string]any{"eventType": 9.0, "error": "no backend available"}},
		{"server type", `{"eventType":5,"file":"f"}`, map[string]any{"eventType": 5.0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.WriteMessage(websocket.TextMessage, []byte(tc.send)); err != nil {
				t.Fatal(err)
			}
			got := read(t, c)
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v (frame %v)", k, got[k], v, got)
				}
			}
		})
	}
}

func TestBroadcastEcho(t *testing.T) {
	s := startServer(t)
	a, b := dial(t, s, "http://localhost"), dial(t, s, "https://app.example.com")
	waitConns(t, s, 2)
	msg := `{"eventType":10,"message":"hi","broadcast":true,"seq":7}`
	if err := a.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*websocket.Conn{a, b} {
		if got := read(t, c); got["seq"] != 7.0 || got["message"] != "hi" {
			t.Errorf("got %v", got)
		}
	}
}

func post(t *testing.T, s *baseline.Server, key, body string) (int, string) {
	t.Helper()
	return peertest.Post(t, s.AdminAddr(), key, body)
}

func TestPublish(t *testing.T) {
	s := startServer(t)
	c := dial(t, s, "http://localhost")
	waitConns(t, s, 1)
	if code, body := post(t, s, "wrong", `{"eventType":1,"username":"u"}`); code != http.StatusUnauthorized {
		t.Fatalf("wrong key: %d %s", code, body)
	}
	// One invalid element rejects the whole batch.
	if code, body := post(t, s, testKey, `[{"eventType":1,"username":"u"},{"eventType":"x"}]`); code != http.StatusBadRequest {
		t.Fatalf("invalid batch: %d %s", code, body)
	}
	if code, body := post(t, s, testKey, `[{"eventType":1,"username":"a"},{"eventType":5,"username":"b","file":"f","x":1}]`); code != http.StatusAccepted || body != `{"accepted":2}` {
		t.Fatalf("batch: %d %s", code, body)
	}
	if got := read(t, c); got["username"] != "a" {
		t.Fatalf("first event %v (the invalid batch must not have been published)", got)
	}
	if got := read(t, c); got["username"] != "b" || got["x"] != 1.0 {
		t.Fatalf("second event %v", got)
	}
	resp, err := http.Get("http://" + s.AdminAddr() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestHandshakeRefusals(t *testing.T) {
	s := startServer(t)
	cases := []struct {
		name   string
		header http.Header
		want   int
	}{
		{"bad origin", http.Header{"Origin": {"http://evil.test"}}, http.StatusForbidden},
		{"anchored pattern", http.Header{"Origin": {"https://app.example.com.evil"}}, http.StatusForbidden},
		{"no origin", http.Header{}, http.StatusForbidden},
		{"wrong key", http.Header{"Users-Api-Key": {"nope"}}, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { peertest.Refused(t, s.Addr(), tc.header, tc.want) })
	}
	// A backend with the right key needs no origin and may publish by frame.
	b, _, err := websocket.DefaultDialer.Dial("ws://"+s.Addr(), http.Header{"Users-Api-Key": {testKey}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := dial(t, s, "http://localhost")
	waitConns(t, s, 2)
	if err := b.WriteMessage(websocket.TextMessage, []byte(`{"eventType":2,"username":"z"}`)); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c); got["username"] != "z" {
		t.Fatalf("got %v", got)
	}
}

func TestLimits(t *testing.T) {
	s := startServer(t)
	c := dial(t, s, "http://localhost")
	if err := c.WriteMessage(websocket.BinaryMessage, []byte{1}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseUnsupportedData) {
		t.Fatalf("binary frame: %v, want close 1003", err)
	}
	c2 := dial(t, s, "http://localhost")
	big := `{"eventType":10,"message":"` + strings.Repeat("x", peerapi.DefaultMaxMessage) + `"}`
	if err := c2.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c2.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("oversized frame: %v, want close 1009", err)
	}
}
