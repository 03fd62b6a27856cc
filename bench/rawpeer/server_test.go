package rawpeer_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/webinate/broker/bench/rawpeer"
	"github.com/webinate/broker/wsframe"
)

const testKey = "secret"

func startServer(t *testing.T) *rawpeer.Server {
	t.Helper()
	s, err := rawpeer.New(rawpeer.Config{
		Addr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Key: testKey,
		Origins: []string{"localhost"}, MaxMessage: 1024,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

func dial(t *testing.T, s *rawpeer.Server) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial("ws://"+s.Addr()+"/x", http.Header{"Origin": {"http://localhost"}})
	if err != nil {
		t.Fatalf("dial: %v (resp %v)", err, resp)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func read(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	mt, b, err := c.ReadMessage()
	if err != nil || mt != websocket.TextMessage {
		t.Fatalf("read: %v (type %d)", err, mt)
	}
	return string(b)
}

// waitConns polls until the server holds n clients, so a publish reaches all.
func waitConns(t *testing.T, s *rawpeer.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.Conns() != n {
		if time.Now().After(deadline) {
			t.Fatalf("have %d conns, want %d", s.Conns(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func post(t *testing.T, s *rawpeer.Server, key, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.AdminAddr()+"/api/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestPublishAndEcho(t *testing.T) {
	s := startServer(t)
	a, b := dial(t, s), dial(t, s)
	waitConns(t, s, 2)
	if code := post(t, s, "wrong", `{"eventType":5}`); code != http.StatusUnauthorized {
		t.Fatalf("wrong key: %d", code)
	}
	if code := post(t, s, testKey, `[{"eventType":5,"n":1},{"eventType":5,"n":2}]`); code != http.StatusAccepted {
		t.Fatalf("publish: %d", code)
	}
	for _, c := range []*websocket.Conn{a, b} {
		if got := read(t, c) + read(t, c); got != `{"eventType":5,"n":1}{"eventType":5,"n":2}` {
			t.Fatalf("got %s", got)
		}
	}
	// Echo to the sender only, then a broadcast echo to both.
	if err := a.WriteMessage(websocket.TextMessage, []byte(`{"eventType":10,"m":"x"}`)); err != nil {
		t.Fatal(err)
	}
	if got := read(t, a); got != `{"eventType":10,"m":"x"}` {
		t.Fatalf("echo %s", got)
	}
	bc := `{"eventType":10,"broadcast":true}`
	if err := a.WriteMessage(websocket.TextMessage, []byte(bc)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*websocket.Conn{a, b} {
		if got := read(t, c); got != bc {
			t.Fatalf("broadcast echo %s", got)
		}
	}
	// A ping is answered with its payload.
	pong := make(chan string, 1)
	a.SetPongHandler(func(p string) error { pong <- p; return nil })
	if err := a.WriteControl(websocket.PingMessage, []byte("hi"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = a.WriteMessage(websocket.TextMessage, []byte(`{"eventType":10}`))
	read(t, a) // runs the pong handler on the way
	if p := <-pong; p != "hi" {
		t.Fatalf("pong %q", p)
	}
	resp, err := http.Get("http://" + s.AdminAddr() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestRefusalsAndCloses(t *testing.T) {
	s := startServer(t)
	for _, tc := range []struct {
		header http.Header
		want   int
	}{
		{http.Header{"Origin": {"http://evil.test"}}, http.StatusForbidden},
		{http.Header{}, http.StatusForbidden},
		{http.Header{"Users-Api-Key": {"nope"}}, http.StatusUnauthorized},
	} {
		_, resp, err := websocket.DefaultDialer.Dial("ws://"+s.Addr(), tc.header)
		if err == nil || resp == nil || resp.StatusCode != tc.want {
			t.Errorf("%v: err %v resp %v, want %d", tc.header, err, resp, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		mt   int
		msg  []byte
		want int
	}{
		{"binary", websocket.BinaryMessage, []byte{1}, websocket.CloseUnsupportedData},
		{"too big", websocket.TextMessage, bytes.Repeat([]byte("x"), 2000), websocket.CloseMessageTooBig},
	} {
		c := dial(t, s)
		if err := c.WriteMessage(tc.mt, tc.msg); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, tc.want) {
			t.Errorf("%s: %v, want close %d", tc.name, err, tc.want)
		}
	}
}

// TestSlowClientDroppedNotTorn fills a client that never reads until the
// server drops it, then reads what reached it: whole frames, each an event
// as published, then at most one cut-off frame and the end of the stream.
// No byte of a later frame may follow a torn one.
func TestSlowClientDroppedNotTorn(t *testing.T) {
	s := startServer(t)
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	conn, err := d.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://localhost\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	waitConns(t, s, 1)
	pad := strings.Repeat("y", 8000)
	event := func(i int) string { return `{"eventType":5,"i":` + strconv.Itoa(i) + `,"pad":"` + pad + `"}` }
	sent := 0
	for req := 0; s.Dropped() == 0; req++ {
		if req == 500 { // 400 MB offered: the buffers are far smaller
			t.Fatalf("not dropped after %d events", sent)
		}
		var batch []string
		for range 100 {
			batch = append(batch, event(sent))
			sent++
		}
		if code := post(t, s, testKey, "["+strings.Join(batch, ",")+"]"); code != http.StatusAccepted {
			t.Fatalf("publish: %d", code)
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	stream, err := io.ReadAll(br)
	if err != nil && !isReset(err) {
		t.Fatalf("reading the stream: %v", err)
	}
	whole := 0
	for len(stream) > 0 {
		h, n, err := wsframe.FromServer.ParseHeader(stream)
		if err == wsframe.ErrShort || err == nil && uint64(len(stream)-n) < h.Length {
			break // the torn frame: nothing may follow it
		}
		if err != nil || h.Op != wsframe.OpText || !h.Fin {
			t.Fatalf("frame %d: header %+v, %v", whole, h, err)
		}
		p := stream[n : n+int(h.Length)]
		if string(p) != event(whole) {
			t.Fatalf("frame %d is not event %d: %.60q", whole, whole, p)
		}
		var v map[string]any
		if json.Unmarshal(p, &v) != nil {
			t.Fatalf("frame %d not JSON", whole)
		}
		stream = stream[n+int(h.Length):]
		whole++
	}
	if whole == 0 || whole >= sent {
		t.Fatalf("%d whole frames of %d sent: the client was not cut", whole, sent)
	}
	if s.Conns() != 0 {
		waitConns(t, s, 0)
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}
