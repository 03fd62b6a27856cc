package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
)

const (
	testKey    = "test-key"
	testOrigin = "http://localhost:3000"
)

// testServer is a real broker on 127.0.0.1:0.
type testServer struct {
	*Server
	wsURL    string
	adminURL string
}

// startServer starts a broker with test defaults, adjusted by mut, and
// shuts it down when the test ends.
func startServer(t testing.TB, mut func(*Config)) *testServer {
	t.Helper()
	cfg := Config{
		ListenAddr:      "127.0.0.1:0",
		AdminAddr:       "127.0.0.1:0",
		ApprovedOrigins: []string{"localhost", "^https://app\\.example\\.com$"},
		APIKey:          testKey,
		DrainPeriod:     -1, // tests that shut down with clients: at once
	}
	if mut != nil {
		mut(&cfg)
	}
	var log zerolog.Logger
	if testing.Verbose() {
		log = zerolog.New(zerolog.ConsoleWriter{Out: testWriter{t}}).Level(zerolog.WarnLevel)
	} else {
		log = zerolog.Nop()
	}
	s, err := New(cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return &testServer{Server: s, wsURL: "ws://" + s.Addr() + "/", adminURL: "http://" + s.AdminAddr()}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// dial opens a gorilla/websocket client (a real, independent
// implementation) with the given Origin.
func dial(t testing.TB, url, origin string) *websocket.Conn {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	c, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("dial %s (origin %q): %v (status %d)", url, origin, err, code)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// dialBackend opens a backend connection with the users-api-key header.
func dialBackend(t testing.TB, url, key string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, http.Header{"users-api-key": {key}})
	if err != nil {
		t.Fatalf("dial backend: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// read returns the next text message or fails the test.
func read(t testing.TB, c *websocket.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.TextMessage {
		t.Fatalf("read: message type %d, want text", typ)
	}
	return string(b)
}

// expectNothing asserts that no message arrives within d.
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

// expectClose reads until the connection closes and returns the close code.
func expectClose(t testing.TB, c *websocket.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if e, ok := err.(*websocket.CloseError); ok {
			ce = e
			return ce.Code
		}
		t.Fatalf("connection ended without a close frame: %v", err)
	}
}

func send(t testing.TB, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// publish POSTs body to the publish API and returns status and body.
func publish(t testing.TB, adminURL, key, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, adminURL+"/api/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond until it holds or the deadline passes.
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

// rawConn is a hand-rolled client for the framing rules that a
// well-behaved library will not break on purpose: unmasked frames,
// fragments, interleaved control frames.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

// rawHandshake sends an upgrade request with the given extra headers and
// returns the connection and the response status.
func rawHandshake(t testing.TB, addr string, headers map[string]string) (*rawConn, int) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	var key [16]byte
	_, _ = rand.Read(key[:])
	var b strings.Builder
	fmt.Fprintf(&b, "GET /any/path?x=1 HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n",
		addr, base64.StdEncoding.EncodeToString(key[:]))
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("handshake response: %v", err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		want := acceptKey(base64.StdEncoding.EncodeToString(key[:]))
		if got := resp.Header.Get("Sec-WebSocket-Accept"); got != want {
			t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
		}
	}
	return &rawConn{t: t, c: c, br: br}, resp.StatusCode
}

// dialRaw completes a handshake with an approved origin.
func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	rc, code := rawHandshake(t, addr, map[string]string{"Origin": testOrigin})
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("handshake status %d", code)
	}
	return rc
}

// writeFrame sends one frame; masked selects client masking.
func (r *rawConn) writeFrame(fin bool, op byte, payload []byte, masked bool) {
	r.t.Helper()
	var b []byte
	b0 := op
	if fin {
		b0 |= 0x80
	}
	mbit := byte(0)
	if masked {
		mbit = 0x80
	}
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, b0, mbit|byte(n))
	case n <= 0xFFFF:
		b = append(b, b0, mbit|126, byte(n>>8), byte(n))
	default:
		b = append(b, b0, mbit|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	p := bytes.Clone(payload)
	if masked {
		key := [4]byte{0x12, 0x34, 0x56, 0x78}
		b = append(b, key[:]...)
		maskBytes(key, 0, p)
	}
	b = append(b, p...)
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

// readFrame reads one server frame; server frames must be unmasked.
func (r *rawConn) readFrame() (fin bool, op byte, payload []byte) {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		r.t.Fatalf("raw read header: %v", err)
	}
	if h[1]&0x80 != 0 {
		r.t.Fatal("server frame is masked")
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var e [2]byte
		_, _ = io.ReadFull(r.br, e[:])
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		_, _ = io.ReadFull(r.br, e[:])
		n = binary.BigEndian.Uint64(e[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r.br, payload); err != nil {
		r.t.Fatalf("raw read payload: %v", err)
	}
	return h[0]&0x80 != 0, h[0] & 0x0F, payload
}

// expectCloseCode reads frames until a close frame and returns its code.
func (r *rawConn) expectCloseCode() int {
	r.t.Helper()
	for {
		_, op, p := r.readFrame()
		if op == opClose {
			if len(p) < 2 {
				return closeNoStatus
			}
			return int(binary.BigEndian.Uint16(p))
		}
	}
}

// tryWriteFrame sends one masked frame and reports a write error instead
// of failing the test: for writers that outlive the connection.
func (r *rawConn) tryWriteFrame(op byte, payload []byte) error {
	b := []byte{0x80 | op, 0x80 | byte(len(payload)), 0x12, 0x34, 0x56, 0x78}
	p := append([]byte(nil), payload...)
	maskBytes([4]byte{0x12, 0x34, 0x56, 0x78}, 0, p)
	_ = r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := r.c.Write(append(b, p...))
	return err
}

// answerCreditPings makes r a reader that gives up: it reads what the
// broker sends and answers its first n credit pings, as any client does,
// then stops reading for good. Until stallAfter passes it is a reader that
// has fallen behind (it has a vote in backpressure); after that, stalled.
// done is closed when it stops.
func (r *rawConn) answerCreditPings(n int) (done <-chan struct{}) {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for n > 0 {
			op, p, err := r.tryReadFrame()
			if err != nil {
				return
			}
			if op == opPing && len(p) == pingPayloadLen && p[0] == pingMarker {
				if r.tryWriteFrame(opPong, p) != nil {
					return
				}
				n--
			}
		}
	}()
	return ch
}

// tryReadFrame reads one server frame, reporting errors instead of
// failing the test: for readers on their own goroutine.
func (r *rawConn) tryReadFrame() (op byte, payload []byte, err error) {
	_ = r.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(r.br, e[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(r.br, e[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r.br, payload); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0F, payload, nil
}
