// Package peertest is what the reference peers' black-box tests share: a
// server on 127.0.0.1:0 for the length of a test, a gorilla client,
// publishing through the admin API, and waiting for the client count.
package peertest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/webinate/broker/internal/testutil"
)

// Server is what a peer (or the broker) offers a test.
type Server interface {
	Start() error
	Shutdown(context.Context) error
	Addr() string
	AdminAddr() string
}

// Serve starts s, which a New returned with err, and shuts it down when
// the test ends.
func Serve[S Server](t testing.TB, s S, err error) S {
	t.Helper()
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

// Dial opens a WebSocket to addr with the given Origin, closed when the
// test ends.
func Dial(t testing.TB, addr, origin string) *websocket.Conn {
	t.Helper()
	return testutil.Dial(t, "ws://"+addr+"/any/path", http.Header{"Origin": {origin}})
}

// Read returns the next text message, waiting 5 s at most.
func Read(t testing.TB, c *websocket.Conn) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	mt, b, err := c.ReadMessage()
	if err != nil || mt != websocket.TextMessage {
		t.Fatalf("read: %v (message type %d)", err, mt)
	}
	return b
}

// WaitConns polls conns until it reports n (5 s at most), so that a
// publish reaches every client.
func WaitConns(t testing.TB, conns func() int, n int) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, fmt.Sprintf("%d conns", n), func() bool { return conns() == n })
}

// Post sends body to adminAddr's POST /api/events with key and returns
// the status and the trimmed response body.
func Post(t testing.TB, adminAddr, key, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+adminAddr+"/api/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// Refused checks that an upgrade to addr with header is refused with
// status want.
func Refused(t testing.TB, addr string, header http.Header, want int) {
	t.Helper()
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+addr, header)
	if err == nil || resp == nil || resp.StatusCode != want {
		t.Errorf("upgrade with %v: err %v resp %v, want status %d", header, err, resp, want)
	}
}
