package rawpeer_test

import (
	"bufio"
	"bytes"
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

	"github.com/webinate/broker/bench/peerapi/peertest"
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
	return peertest.Serve(t, s, err)
}

func dial(t *testing.T, s *rawpeer.Server) *websocket.Conn {
	t.Helper()
	return peertest.Dial(t, s.Addr(), "http://localhost")
}

func read(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	return string(peertest.Read(t, c))
}

func post(t *testing.T, s *rawpeer.Server, key, body string) int {
	t.Helper()
	code, _ := peertest.Post(t, s.AdminAddr(), key, body)
	return code
}

func TestPublishAndEcho(t *testing.T) {
	s := startServer(t)
	a, b := dial(t, s), dial(t, s)
	peertest.WaitConns(t, s.Conns, 2)
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
	peertest.Refused(t, s.Addr(), http.Header{"Origin": {"http://evil.test"}}, http.StatusForbidden)
	peertest.Refused(t, s.Addr(), http.Header{}, http.StatusForbidden)
	peertest.Refused(t, s.Addr(), http.Header{"Users-Api-Key": {"nope"}}, http.StatusUnauthorized)
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
	peertest.WaitConns(t, s.Conns, 1)
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
	peertest.WaitConns(t, s.Conns, 0) // the dropped client has left
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}
