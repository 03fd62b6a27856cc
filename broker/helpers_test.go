package broker

import (
	"bufio"
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

	"github.com/webinate/broker/internal/testutil"
	"github.com/webinate/broker/wsframe"
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
	s, err := New(cfg, testutil.Logger(t, zerolog.WarnLevel))
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

// The helpers every black-box package shares (internal/testutil).
var (
	waitFor       = testutil.WaitFor
	read          = testutil.Read
	send          = testutil.Send
	expectNothing = testutil.ExpectNothing
	publish       = testutil.Publish
)

// dial opens a gorilla/websocket client (a real, independent
// implementation) with the given Origin (none if empty).
func dial(t testing.TB, url, origin string) *websocket.Conn {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return testutil.Dial(t, url, h)
}

// dialBackend opens a backend connection with the users-api-key header.
func dialBackend(t testing.TB, url, key string) *websocket.Conn {
	t.Helper()
	return testutil.Dial(t, url, http.Header{"users-api-key": {key}})
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

// rawConn is a hand-rolled client for the framing rules that a
// well-behaved library will not break on purpose: unmasked frames,
// fragments, interleaved control frames.
type rawConn struct {
	t    testing.TB
	c    net.Conn
	br   *bufio.Reader
	resp *http.Response // the handshake's response
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
		want := wsframe.AcceptKey(base64.StdEncoding.EncodeToString(key[:]))
		if got := resp.Header.Get("Sec-WebSocket-Accept"); got != want {
			t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
		}
	}
	return &rawConn{t: t, c: c, br: br, resp: resp}, resp.StatusCode
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

// testMaskKey masks the raw clients' frames.
var testMaskKey = [4]byte{0x12, 0x34, 0x56, 0x78}

// rawFrame builds one client frame, or one that breaks the rules: op may
// carry reserved bits (0x70); masked selects client masking.
func rawFrame(fin bool, op byte, payload []byte, masked bool) []byte {
	h := wsframe.Header{Fin: fin, RSV: op & 0x70, Op: op & 0x0F, Masked: masked, Length: uint64(len(payload))}
	if masked {
		h.Key = testMaskKey
	}
	b := wsframe.AppendHeader(nil, h)
	n := len(b)
	b = append(b, payload...)
	if masked {
		wsframe.MaskBytes(h.Key, 0, b[n:])
	}
	return b
}

// writeFrame sends one frame; masked selects client masking.
func (r *rawConn) writeFrame(fin bool, op byte, payload []byte, masked bool) {
	r.t.Helper()
	if _, err := r.c.Write(rawFrame(fin, op, payload, masked)); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

// readServerFrame reads one whole frame from br, which must be a valid
// server frame (unmasked, no reserved bits).
func readServerFrame(br *bufio.Reader) (wsframe.Header, []byte, error) {
	h, err := wsframe.FromServer.ReadHeader(br)
	if err != nil {
		return h, nil, err
	}
	if h.Length > 1<<30 {
		return h, nil, fmt.Errorf("server frame of %d bytes", h.Length)
	}
	p := make([]byte, h.Length)
	_, err = io.ReadFull(br, p)
	return h, p, err
}

// readFrame reads one server frame or fails the test.
func (r *rawConn) readFrame() (fin bool, op byte, payload []byte) {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, payload, err := readServerFrame(r.br)
	if err != nil {
		r.t.Fatalf("raw read: %v", err)
	}
	return h.Fin, h.Op, payload
}

// expectCloseCode reads frames until a close frame and returns its code.
func (r *rawConn) expectCloseCode() int {
	r.t.Helper()
	code, _ := r.expectCloseReason()
	return code
}

// expectCloseReason reads frames until a close frame and returns its code
// and reason.
func (r *rawConn) expectCloseReason() (int, string) {
	r.t.Helper()
	for {
		_, op, p := r.readFrame()
		if op == opClose {
			if len(p) < 2 {
				return closeNoStatus, ""
			}
			return int(binary.BigEndian.Uint16(p)), string(p[2:])
		}
	}
}

// tryWriteFrame sends one masked frame and reports a write error instead
// of failing the test: for writers that outlive the connection.
func (r *rawConn) tryWriteFrame(op byte, payload []byte) error {
	_ = r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := r.c.Write(wsframe.AppendMaskedFrame(nil, op, testMaskKey, payload))
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
	h, payload, err := readServerFrame(r.br)
	return h.Op, payload, err
}
