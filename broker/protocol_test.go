package broker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/webinate/broker/wsframe"
)

func TestHandshake(t *testing.T) {
	ts := startServer(t, nil)
	cases := []struct {
		name    string
		headers map[string]string
		want    int
	}{
		{"approved origin, unanchored pattern", map[string]string{"Origin": "http://localhost:3000"}, 101},
		{"approved origin, anchored pattern", map[string]string{"Origin": "https://app.example.com"}, 101},
		{"anchored pattern refuses a suffix", map[string]string{"Origin": "https://app.example.com.evil"}, 403},
		{"unapproved origin", map[string]string{"Origin": "http://evil.com"}, 403},
		{"missing origin", map[string]string{}, 403},
		{"backend key, no origin needed", map[string]string{"users-api-key": testKey}, 101},
		{"backend key with an unapproved origin", map[string]string{"users-api-key": testKey, "Origin": "http://evil.com"}, 101},
		{"wrong backend key", map[string]string{"users-api-key": "nope"}, 401},
		{"empty backend key", map[string]string{"users-api-key": ""}, 401},
		{"wrong backend key with approved origin", map[string]string{"users-api-key": "nope", "Origin": testOrigin}, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, code := rawHandshake(t, ts.Addr(), tc.headers)
			if code != tc.want {
				t.Fatalf("status %d, want %d", code, tc.want)
			}
		})
	}
	st := ts.Stats()
	if st.RefusedOrigin != 3 || st.RefusedKey != 3 {
		t.Fatalf("refused counters origin=%d key=%d, want 3 and 3", st.RefusedOrigin, st.RefusedKey)
	}
}

func TestHandshakeNoAPIKeyRefusesBackends(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.APIKey = "" })
	if _, code := rawHandshake(t, ts.Addr(), map[string]string{"users-api-key": ""}); code != 401 {
		t.Fatalf("status %d, want 401", code)
	}
	if code, _ := publish(t, ts.adminURL, "", `{"eventType":1}`); code != http.StatusForbidden {
		t.Fatalf("publish without configured key: %d, want 403", code)
	}
}

func TestNotAnUpgrade(t *testing.T) {
	ts := startServer(t, nil)
	resp, err := http.Get("http://" + ts.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET: %d, want 426", resp.StatusCode)
	}
}

func TestAnyPathUpgrades(t *testing.T) {
	ts := startServer(t, nil)
	for _, p := range []string{"", "deep/path", "?q=1"} {
		c := dial(t, ts.wsURL+p, testOrigin)
		send(t, c, `{"eventType":10,"message":"hi"}`)
		if got := read(t, c); got != `{"eventType":10,"message":"hi"}` {
			t.Fatalf("path %q: echo %s", p, got)
		}
	}
}

func TestEchoSenderOnly(t *testing.T) {
	ts := startServer(t, nil)
	a := dial(t, ts.wsURL, testOrigin)
	b := dial(t, ts.wsURL, testOrigin)
	msg := `{"eventType":10,"message":"Hello world?","extra":{"kept":[1,2]}}`
	send(t, a, msg)
	if got := read(t, a); got != msg {
		t.Fatalf("echo %s, want %s", got, msg)
	}
	expectNothing(t, b, 200*time.Millisecond)
}

func TestEchoBroadcast(t *testing.T) {
	ts := startServer(t, nil)
	conns := []*websocket.Conn{dial(t, ts.wsURL, testOrigin), dial(t, ts.wsURL, testOrigin), dial(t, ts.wsURL, testOrigin)}
	backend := dialBackend(t, ts.wsURL, testKey)
	msg := `{"eventType":10,"message":"to all","broadcast":true}`
	send(t, conns[0], msg)
	for i, c := range append(conns, backend) {
		if got := read(t, c); got != msg {
			t.Fatalf("conn %d got %s", i, got)
		}
	}
}

// The original client snippet from PROTOCOL.md, in Go.
func TestOriginalClientSnippet(t *testing.T) {
	ts := startServer(t, nil)
	c := dial(t, ts.wsURL, "http://localhost")
	send(t, c, `{"eventType":10,"message":"Hello world?"}`)
	var e struct {
		EventType int    `json:"eventType"`
		Message   string `json:"message"`
	}
	if err := json.Unmarshal([]byte(read(t, c)), &e); err != nil || e.EventType != 10 || e.Message != "Hello world?" {
		t.Fatalf("got %+v, %v", e, err)
	}
}

func TestBadInputKeepsConnection(t *testing.T) {
	ts := startServer(t, nil)
	cases := []struct {
		name     string
		msg      string
		wantType int
	}{
		{"not JSON", `hello`, 0},
		{"truncated JSON", `{"eventType":10,`, 0},
		{"JSON array", `[{"eventType":10}]`, 0},
		{"JSON string", `"eventType"`, 0},
		{"no eventType", `{"message":"x"}`, 0},
		{"string eventType", `{"eventType":"10","message":"x"}`, 0},
		{"fractional eventType", `{"eventType":10.5,"message":"x"}`, 0},
		{"server-only type", `{"eventType":1,"username":"bob"}`, 1},
		{"server-only type 8", `{"eventType":8,"bucket":"b"}`, 8},
		{"unknown type", `{"eventType":42}`, 42},
		{"echo without message", `{"eventType":10}`, 10},
		{"echo with non-string message", `{"eventType":10,"message":5}`, 10},
		{"echo with non-bool broadcast", `{"eventType":10,"message":"x","broadcast":"yes"}`, 10},
		{"empty message", ``, 0},
	}
	c := dial(t, ts.wsURL, testOrigin)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			send(t, c, tc.msg)
			var e struct {
				EventType *int    `json:"eventType"`
				Error     *string `json:"error"`
			}
			got := read(t, c)
			if err := json.Unmarshal([]byte(got), &e); err != nil {
				t.Fatalf("reply %s is not JSON: %v", got, err)
			}
			if e.EventType == nil || *e.EventType != tc.wantType || e.Error == nil || *e.Error == "" {
				t.Fatalf("reply %s, want eventType %d and an error", got, tc.wantType)
			}
			// Still usable.
			send(t, c, `{"eventType":10,"message":"still here"}`)
			if got := read(t, c); got != `{"eventType":10,"message":"still here"}` {
				t.Fatalf("after bad input: %s", got)
			}
		})
	}
}

func TestMetaRequestWithoutBackend(t *testing.T) {
	ts := startServer(t, nil)
	c := dial(t, ts.wsURL, testOrigin)
	send(t, c, `{"eventType":9,"username":"bob","property":"age"}`)
	if got := read(t, c); got != `{"eventType":9,"error":"no backend available"}` {
		t.Fatalf("got %s", got)
	}
}

func TestBinaryCloses1003(t *testing.T) {
	ts := startServer(t, nil)
	c := dial(t, ts.wsURL, testOrigin)
	if err := c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if code := expectClose(t, c); code != 1003 {
		t.Fatalf("close %d, want 1003", code)
	}
}

func TestOversizeCloses1009(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxMessageSize = 1024 })
	c := dial(t, ts.wsURL, testOrigin)
	// Exactly the limit is fine.
	msg := `{"eventType":10,"message":"` + strings.Repeat("a", 1024-30) + `"}`
	msg += strings.Repeat(" ", 1024-len(msg))
	send(t, c, msg)
	if got := read(t, c); got != msg {
		t.Fatal("message at the limit not echoed")
	}
	send(t, c, msg+" ")
	if code := expectClose(t, c); code != 1009 {
		t.Fatalf("close %d, want 1009", code)
	}
}

func TestOversizeFragmentedCloses1009(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxMessageSize = 1024 })
	r := dialRaw(t, ts.Addr())
	r.writeFrame(false, opText, []byte(strings.Repeat("a", 600)), true)
	r.writeFrame(true, opContinuation, []byte(strings.Repeat("a", 600)), true)
	if code := r.expectCloseCode(); code != 1009 {
		t.Fatalf("close %d, want 1009", code)
	}
}

func TestInvalidUTF8Closes1007(t *testing.T) {
	ts := startServer(t, nil)
	r := dialRaw(t, ts.Addr())
	r.writeFrame(true, opText, []byte("{\"eventType\":10,\"message\":\"\xff\xfe\"}"), true)
	if code := r.expectCloseCode(); code != 1007 {
		t.Fatalf("close %d, want 1007", code)
	}
}

func TestInvalidUTF8SplitAcrossFragments(t *testing.T) {
	ts := startServer(t, nil)
	r := dialRaw(t, ts.Addr())
	// "é" is C3 A9: split across fragments it is valid once reassembled.
	r.writeFrame(false, opText, []byte("{\"eventType\":10,\"message\":\"\xc3"), true)
	r.writeFrame(true, opContinuation, []byte("\xa9\"}"), true)
	_, op, p := r.readFrame()
	if op != opText || string(p) != "{\"eventType\":10,\"message\":\"é\"}" {
		t.Fatalf("got op %d %q", op, p)
	}
}

func TestUnmaskedFrameIsProtocolError(t *testing.T) {
	ts := startServer(t, nil)
	r := dialRaw(t, ts.Addr())
	r.writeFrame(true, opText, []byte(`{"eventType":10,"message":"x"}`), false)
	if code := r.expectCloseCode(); code != 1002 {
		t.Fatalf("close %d, want 1002", code)
	}
}

func TestFramingProtocolErrors(t *testing.T) {
	ts := startServer(t, nil)
	cases := []struct {
		name  string
		write func(r *rawConn)
	}{
		{"reserved bit", func(r *rawConn) { r.writeFrame(true, opText|0x40, []byte("{}"), true) }},
		{"reserved opcode", func(r *rawConn) { r.writeFrame(true, 0x3, []byte("{}"), true) }},
		{"reserved control opcode", func(r *rawConn) { r.writeFrame(true, 0xB, nil, true) }},
		{"continuation without start", func(r *rawConn) { r.writeFrame(true, opContinuation, []byte("x"), true) }},
		{"text inside fragmented message", func(r *rawConn) {
			r.writeFrame(false, opText, []byte("a"), true)
			r.writeFrame(true, opText, []byte("b"), true)
		}},
		{"fragmented ping", func(r *rawConn) { r.writeFrame(false, opPing, []byte("x"), true) }},
		{"long ping", func(r *rawConn) { r.writeFrame(true, opPing, make([]byte, 126), true) }},
		{"bad close code", func(r *rawConn) { r.writeFrame(true, opClose, []byte{0x03, 0xED}, true) }}, // 1005
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, ts.Addr())
			tc.write(r)
			if code := r.expectCloseCode(); code != 1002 {
				t.Fatalf("close %d, want 1002", code)
			}
		})
	}
}

// Each framing fault is refused with its close code and reason, and a
// header with several faults gets the first in its byte order.
func TestFramingCloseReasons(t *testing.T) {
	ts := startServer(t, nil)
	tooBig := fmt.Sprintf("message exceeds %d bytes", DefaultMaxMessageSize)
	header := func(h wsframe.Header) []byte { return wsframe.AppendHeader(nil, h) }
	cases := []struct {
		name   string
		frames []byte
		code   int
		reason string
	}{
		{"reserved bit", rawFrame(true, opText|0x40, []byte("{}"), true), 1002, "reserved bits set without a negotiated extension"},
		{"unmasked", rawFrame(true, opText, []byte("{}"), false), 1002, "client frames must be masked"},
		{"reserved opcode", rawFrame(true, 0x3, []byte("{}"), true), 1002, "reserved opcode 0x3"},
		{"reserved control opcode", rawFrame(true, 0xB, nil, true), 1002, "reserved opcode 0xb"},
		{"continuation without start", rawFrame(true, opContinuation, []byte("x"), true), 1002, "continuation frame without a message to continue"},
		{"text inside fragmented message", append(rawFrame(false, opText, []byte("a"), true), rawFrame(true, opText, []byte("b"), true)...),
			1002, "new message while a fragmented message is incomplete"},
		{"fragmented ping", rawFrame(false, opPing, []byte("x"), true), 1002, "fragmented control frame"},
		{"long ping", rawFrame(true, opPing, make([]byte, 126), true), 1002, "control frame payload over 125 bytes"},
		{"close code 1005", rawFrame(true, opClose, []byte{0x03, 0xED}, true), 1002, "invalid close code 1005"},
		{"1-byte close", rawFrame(true, opClose, []byte{0x03}, true), 1002, "close frame with a 1-byte payload"},
		{"close reason not UTF-8", rawFrame(true, opClose, []byte{0x03, 0xE8, 0xff}, true), 1007, "close reason is not valid UTF-8"},
		{"binary", rawFrame(true, opBinary, []byte{1}, true), 1003, "binary messages are not supported"},
		{"text not UTF-8", rawFrame(true, opText, []byte("\xff"), true), 1007, "text message is not valid UTF-8"},
		{"huge length", header(wsframe.Header{Fin: true, Op: opText, Masked: true, Length: 1 << 40}), 1009, tooBig},
		{"length's top bit set", []byte{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, 1009, tooBig},
		{"reserved bit before the mask", rawFrame(true, 0x3|0x40, nil, false), 1002, "reserved bits set without a negotiated extension"},
		{"mask before the opcode", rawFrame(true, 0x3, nil, false), 1002, "client frames must be masked"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, ts.Addr())
			if _, err := r.c.Write(tc.frames); err != nil {
				t.Fatal(err)
			}
			if code, reason := r.expectCloseReason(); code != tc.code || reason != tc.reason {
				t.Fatalf("close %d %q, want %d %q", code, reason, tc.code, tc.reason)
			}
		})
	}
}

// RFC 6455 section 5.2 wants the shortest length encoding; a longer one is
// refused like any other framing fault. The broker accepted it before it
// used wsframe.
func TestNonMinimalLengthIsProtocolError(t *testing.T) {
	ts := startServer(t, nil)
	msg := []byte(`{"eventType":10,"message":"x"}`)
	for name, h := range map[string][]byte{
		"16-bit length for 30 bytes":  {0x81, 0x80 | 126, 0, byte(len(msg))},
		"64-bit length for 30 bytes":  {0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, byte(len(msg))},
		"64-bit length for 200 bytes": {0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 200},
	} {
		t.Run(name, func(t *testing.T) {
			r := dialRaw(t, ts.Addr())
			key := [4]byte{1, 2, 3, 4}
			p := bytes.Clone(msg)
			wsframe.MaskBytes(key, 0, p)
			if _, err := r.c.Write(append(append(h, key[:]...), p...)); err != nil {
				t.Fatal(err)
			}
			if code, reason := r.expectCloseReason(); code != 1002 || reason != "payload length not in its shortest form" {
				t.Fatalf("close %d %q, want 1002", code, reason)
			}
		})
	}
}

func TestFragmentedMessageWithInterleavedControl(t *testing.T) {
	ts := startServer(t, nil)
	r := dialRaw(t, ts.Addr())
	r.writeFrame(false, opText, []byte(`{"eventType":10,`), true)
	r.writeFrame(true, opPing, []byte("mid"), true)
	r.writeFrame(false, opContinuation, []byte(`"message":`), true)
	r.writeFrame(true, opPong, []byte("unsolicited"), true)
	r.writeFrame(true, opContinuation, []byte(`"joined"}`), true)
	_, op, p := r.readFrame()
	if op != opPong || string(p) != "mid" {
		t.Fatalf("want pong 'mid', got op %d %q", op, p)
	}
	_, op, p = r.readFrame()
	if op != opText || string(p) != `{"eventType":10,"message":"joined"}` {
		t.Fatalf("want reassembled echo, got op %d %q", op, p)
	}
}

func TestFramesSplitAcrossWrites(t *testing.T) {
	ts := startServer(t, nil)
	r := dialRaw(t, ts.Addr())
	// Build two masked frames and dribble them byte by byte.
	var buf []byte
	for i := 0; i < 2; i++ {
		p := []byte(fmt.Sprintf(`{"eventType":10,"message":"%d%s"}`, i, strings.Repeat("x", 200)))
		buf = wsframe.AppendMaskedFrame(buf, opText, [4]byte{1, 2, 3, 4}, p)
	}
	for _, b := range buf {
		if _, err := r.c.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		_, op, p := r.readFrame()
		if op != opText || !strings.HasPrefix(string(p), fmt.Sprintf(`{"eventType":10,"message":"%d`, i)) {
			t.Fatalf("frame %d: op %d %q", i, op, p)
		}
	}
}

func TestPingPong(t *testing.T) {
	ts := startServer(t, nil)
	c := dial(t, ts.wsURL, testOrigin)
	got := make(chan string, 1)
	c.SetPongHandler(func(s string) error { got <- s; return nil })
	if err := c.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	// The pong handler runs inside ReadMessage.
	go func() { _, _, _ = c.ReadMessage() }()
	select {
	case s := <-got:
		if s != "are you there" {
			t.Fatalf("pong payload %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}
}

func TestCloseHandshake(t *testing.T) {
	ts := startServer(t, nil)
	r := dialRaw(t, ts.Addr())
	r.writeFrame(true, opClose, []byte{0x03, 0xE8, 'b', 'y', 'e'}, true) // 1000
	if code := r.expectCloseCode(); code != 1000 {
		t.Fatalf("close reply %d, want 1000", code)
	}
	waitFor(t, 5*time.Second, "connection removed", func() bool { return ts.Stats().Connections == 0 })
}

func TestCloseWithoutStatus(t *testing.T) {
	ts := startServer(t, nil)
	r := dialRaw(t, ts.Addr())
	r.writeFrame(true, opClose, nil, true)
	_, op, p := r.readFrame()
	if op != opClose || len(p) != 0 {
		t.Fatalf("want empty close, got op %d %q", op, p)
	}
}
