package broker

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/webinate/broker/wsframe"
)

// Negotiation: the first acceptable permessage-deflate offer wins; an
// offer the broker cannot honour is skipped; a malformed header declines
// the extension without failing the upgrade.
func TestNegotiateDeflate(t *testing.T) {
	full := deflateResponse
	for _, tc := range []struct {
		offer []string
		want  string
	}{
		{nil, ""},
		{[]string{"permessage-deflate"}, full},
		{[]string{"permessage-deflate; client_max_window_bits"}, full},                                 // Chromium's, Node ws's
		{[]string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"}, full}, // gorilla's
		{[]string{"Permessage-Deflate ; client_max_window_bits=10"}, full},
		{[]string{`permessage-deflate; client_max_window_bits="12"`}, full},
		{[]string{"permessage-deflate; server_max_window_bits=15"}, full + "; server_max_window_bits=15"},
		{[]string{"permessage-deflate; server_max_window_bits=10"}, ""},
		{[]string{"permessage-deflate; server_max_window_bits=10, permessage-deflate"}, full},
		{[]string{"x-webkit-deflate-frame", "permessage-deflate; client_max_window_bits"}, full},
		{[]string{"permessage-deflate; server_max_window_bits"}, ""},       // a value is required
		{[]string{"permessage-deflate; client_max_window_bits=16"}, ""},    // out of range
		{[]string{"permessage-deflate; client_max_window_bits=08"}, ""},    // not in its one form
		{[]string{"permessage-deflate; server_no_context_takeover=1"}, ""}, // takes no value
		{[]string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}, ""},
		{[]string{"permessage-deflate; mystery"}, ""},
		{[]string{"permessage-deflate; ;"}, ""}, // malformed
		{[]string{"permessage-deflate; a=\"b"}, ""},
		{[]string{"permessage-deflate, ;;"}, ""}, // malformed anywhere: declined
		{[]string{"foo"}, ""},
	} {
		if got := negotiateDeflate(tc.offer); got != tc.want {
			t.Errorf("offer %q: answered %q, want %q", tc.offer, got, tc.want)
		}
	}
}

// compressDialer negotiates permessage-deflate (no context takeover both
// ways, as gorilla does) and writes compressed messages.
var compressDialer = websocket.Dialer{EnableCompression: true, HandshakeTimeout: 5 * time.Second}

func dialCompressed(t testing.TB, url string) (*websocket.Conn, *http.Response) {
	t.Helper()
	c, resp, err := compressDialer.Dial(url, http.Header{"Origin": {testOrigin}})
	if err != nil {
		t.Fatalf("dial %s with compression: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, resp
}

// bigEvent is a protocol-shaped event of about n bytes that compresses.
func bigEvent(etype, i, n int) string {
	pad := strings.Repeat(`{"user":"someone","status":"online"},`, n/37+1)
	return fmt.Sprintf(`{"eventType":%d,"n":%d,"rows":[%s{}]}`, etype, i, pad)
}

// A real client that negotiates compression receives events (large ones
// deflated, small ones plain) and its compressed messages are inflated;
// the stats count the bytes saved.
func TestDeflateGorilla(t *testing.T) {
	ts := startServer(t, nil)
	c, resp := dialCompressed(t, ts.wsURL)
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != deflateResponse {
		t.Fatalf("extension response %q, want %q", got, deflateResponse)
	}
	plain := dial(t, ts.wsURL, testOrigin)
	waitFor(t, 5*time.Second, "two connections", func() bool { return ts.Stats().Connections == 2 })
	events := []string{bigEvent(1, 1, 2000), `{"eventType":2,"n":2}`, bigEvent(3, 3, 4000)}
	for _, ev := range events {
		if code, body := publish(t, ts.adminURL, testKey, ev); code != 202 {
			t.Fatalf("publish: %d %s", code, body)
		}
	}
	for _, ev := range events {
		if got := read(t, c); got != ev {
			t.Fatalf("compressed connection got %.80s, want %.80s", got, ev)
		}
		if got := read(t, plain); got != ev {
			t.Fatalf("plain connection got %.80s, want %.80s", got, ev)
		}
	}
	// gorilla compresses what it writes: the echo comes back intact.
	msg := fmt.Sprintf(`{"eventType":10,"message":%q}`, strings.Repeat("hello compressed world ", 100))
	send(t, c, msg)
	if got := read(t, c); got != msg {
		t.Fatalf("echo %.80s, want %.80s", got, msg)
	}
	st := ts.Stats()
	if st.CompressedConnections != 1 || st.Inflated != 1 || st.InflateRefused != 0 {
		t.Fatalf("stats: %d compressed connections, %d inflated, %d refused; want 1, 1, 0",
			st.CompressedConnections, st.Inflated, st.InflateRefused)
	}
	if st.DeflatePlainBytes < int64(len(events[0])+len(events[2])) || st.DeflateWireBytes*4 > st.DeflatePlainBytes {
		t.Fatalf("stats: %d wire bytes for %d plain: want the plain frames, compressed at least 4:1", st.DeflateWireBytes, st.DeflatePlainBytes)
	}
	_ = c.Close()
	waitFor(t, 5*time.Second, "the compressed connection to leave", func() bool { return ts.Stats().CompressedConnections == 0 })
}

// deflateHandshake upgrades a raw client offering permessage-deflate.
func deflateHandshake(t testing.TB, ts *testServer, query, offer string) *rawConn {
	t.Helper()
	h := map[string]string{"Origin": testOrigin}
	if offer != "" {
		h["Sec-WebSocket-Extensions"] = offer
	}
	rc, code := rawHandshake(t, ts.Addr(), h)
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("handshake status %d", code)
	}
	return rc
}

// readDeflated reads one server frame that may have RSV1, and returns its
// header and its payload, inflated if it was compressed.
func (r *rawConn) readDeflated() (wsframe.Header, []byte) {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, err := wsframe.Rules{Unmasked: true, RSV: wsframe.RSV1}.ReadHeader(r.br)
	if err != nil {
		r.t.Fatalf("raw read: %v", err)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r.br, p); err != nil {
		r.t.Fatalf("raw read: %v", err)
	}
	if h.RSV&wsframe.RSV1 != 0 {
		fr := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
		out, err := io.ReadAll(fr)
		if err != nil {
			r.t.Fatalf("inflating a server frame: %v", err)
		}
		p = out
	}
	return h, p
}

// nextData reads server frames until a data frame, answering nothing.
func (r *rawConn) nextData() (wsframe.Header, []byte) {
	r.t.Helper()
	for {
		h, p := r.readDeflated()
		if h.Op < opClose {
			return h, p
		}
	}
}

// deflateRaw compresses p as a permessage-deflate sender does.
func deflateRaw(t testing.TB, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	_, _ = w.Write(p)
	_ = w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// On the wire: the 101 names the extension, an event over
// compression-min arrives deflated with RSV1, a small one plain, and a
// compressed client message (whole or fragmented) is inflated.
func TestDeflateOnTheWire(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.CompressionMin = 100 })
	rc := deflateHandshake(t, ts, "", "permessage-deflate; client_max_window_bits")
	if got := rc.resp.Header.Get("Sec-WebSocket-Extensions"); got != deflateResponse {
		t.Fatalf("extension response %q, want %q", got, deflateResponse)
	}
	waitFor(t, 5*time.Second, "the connection", func() bool { return ts.Stats().Connections == 1 })
	big, small := bigEvent(1, 1, 1000), `{"eventType":2,"n":2,"pad":"01234567890123456789012345678901234567890123456789"}`
	for _, ev := range []string{big, small} {
		if code, body := publish(t, ts.adminURL, testKey, ev); code != 202 {
			t.Fatalf("publish: %d %s", code, body)
		}
	}
	h, p := rc.nextData()
	if h.RSV != wsframe.RSV1 || string(p) != big {
		t.Fatalf("big event: RSV %#x, payload %.60s; want RSV1 and the event", h.RSV, p)
	}
	if h.Length*3 > uint64(len(big)) {
		t.Fatalf("big event: %d bytes on the wire for %d", h.Length, len(big))
	}
	h, p = rc.nextData()
	if h.RSV != 0 || string(p) != small {
		t.Fatalf("small event: RSV %#x, payload %s; want it plain", h.RSV, p)
	}

	msg := []byte(fmt.Sprintf(`{"eventType":10,"message":%q}`, strings.Repeat("abc", 200)))
	rc.writeFrame(true, opText|wsframe.RSV1, deflateRaw(t, msg), true)
	if h, p := rc.nextData(); h.RSV != 0 || !bytes.Equal(p, msg) {
		t.Fatalf("echo of a compressed message: RSV %#x, %.60s", h.RSV, p)
	}
	// Fragmented: RSV1 on the first frame only.
	z := deflateRaw(t, msg)
	rc.writeFrame(false, opText|wsframe.RSV1, z[:10], true)
	rc.writeFrame(false, opContinuation, z[10:20], true)
	rc.writeFrame(true, opContinuation, z[20:], true)
	if _, p := rc.nextData(); !bytes.Equal(p, msg) {
		t.Fatalf("echo of a fragmented compressed message: %.60s", p)
	}
	if st := ts.Stats(); st.Inflated != 2 {
		t.Fatalf("%d messages inflated, want 2", st.Inflated)
	}
}

// zipBomb is a deflate stream (sync flushed, as a permessage-deflate
// message) of about 1 MiB that inflates to 1 GiB of zeros: the flushed
// blocks of 1 MiB of zeros, repeated (each refers only to zeros before).
func zipBomb(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	_, _ = w.Write(make([]byte, 1<<20))
	_ = w.Flush()
	return bytes.Repeat(b.Bytes(), 1024)
}

// A message that inflates past max-message closes 1009 once it has, with
// the output bounded: a zip bomb costs at most max-message.
func TestDeflateZipBomb(t *testing.T) {
	bomb := zipBomb(t)
	ts := startServer(t, func(c *Config) { c.MaxMessageSize = 2 << 20; c.MaxPendingBytes = 4 << 20 })
	rc := deflateHandshake(t, ts, "", "permessage-deflate")
	if len(bomb) > ts.cfg.MaxMessageSize {
		t.Fatalf("the bomb is %d bytes compressed, over max-message", len(bomb))
	}
	rc.writeFrame(true, opText|wsframe.RSV1, bomb, true)
	code, why := rc.expectCloseReason()
	if code != closeTooBig || why != "message exceeds 2097152 bytes" {
		t.Fatalf("close %d %q, want 1009 message exceeds 2097152 bytes", code, why)
	}
	waitFor(t, 5*time.Second, "the close to be counted", func() bool { return ts.Stats().Closed["message_too_big"] == 1 })
	if st := ts.Stats(); st.InflateRefused != 1 {
		t.Fatalf("stats: %d inflate refusals, want 1", st.InflateRefused)
	}
}

// Data that does not inflate closes 1007.
func TestDeflateCorrupt(t *testing.T) {
	ts := startServer(t, nil)
	rc := deflateHandshake(t, ts, "", "permessage-deflate")
	rc.writeFrame(true, opText|wsframe.RSV1, []byte{0xff, 0xff, 0xff, 0xff, 0x00}, true)
	if code, why := rc.expectCloseReason(); code != closeInvalidPayload || why != "compressed message does not inflate" {
		t.Fatalf("close %d %q, want 1007", code, why)
	}
}

// RSV1 stays a protocol error where deflate does not define it: without
// negotiation (not offered, or compression off), on a control frame, on
// a continuation frame.
func TestDeflateRSV1Refused(t *testing.T) {
	on := startServer(t, nil)
	off := startServer(t, func(c *Config) { c.Compression = "off" })
	for _, tc := range []struct {
		name   string
		ts     *testServer
		offer  string
		frames [][]byte
		reason string
	}{
		{"not offered", on, "", [][]byte{rawFrame(true, opText|wsframe.RSV1, deflateRaw(t, []byte(`{}`)), true)},
			"reserved bits set without a negotiated extension"},
		{"compression off", off, "permessage-deflate", [][]byte{rawFrame(true, opText|wsframe.RSV1, deflateRaw(t, []byte(`{}`)), true)},
			"reserved bits set without a negotiated extension"},
		{"on a ping", on, "permessage-deflate", [][]byte{rawFrame(true, opPing|wsframe.RSV1, nil, true)},
			"RSV1 on a control frame"},
		{"on a continuation", on, "permessage-deflate", [][]byte{
			rawFrame(false, opText, []byte(`{"eventType":10,`), true),
			rawFrame(true, opContinuation|wsframe.RSV1, []byte(`"message":"x"}`), true)},
			"RSV1 on a continuation frame"},
		{"RSV2", on, "permessage-deflate", [][]byte{rawFrame(true, opText|wsframe.RSV2, []byte(`{}`), true)},
			"reserved bits set without a negotiated extension"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := deflateHandshake(t, tc.ts, "", tc.offer)
			if tc.ts == off && rc.resp.Header.Get("Sec-WebSocket-Extensions") != "" {
				t.Fatalf("compression off answered %q", rc.resp.Header.Get("Sec-WebSocket-Extensions"))
			}
			for _, f := range tc.frames {
				if _, err := rc.c.Write(f); err != nil {
					t.Fatal(err)
				}
			}
			if code, why := rc.expectCloseReason(); code != closeProtocolError || why != tc.reason {
				t.Fatalf("close %d %q, want 1002 %q", code, why, tc.reason)
			}
		})
	}
}

// -compression off: a client that offers it gets no extension, and plain
// events.
func TestDeflateOff(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.Compression = "off" })
	c, resp := dialCompressed(t, ts.wsURL)
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != "" {
		t.Fatalf("compression off answered %q", got)
	}
	ev := bigEvent(1, 1, 2000)
	waitFor(t, 5*time.Second, "the connection", func() bool { return ts.Stats().Connections == 1 })
	publish(t, ts.adminURL, testKey, ev)
	if got := read(t, c); got != ev {
		t.Fatalf("got %.60s", got)
	}
	if st := ts.Stats(); st.CompressedConnections != 0 || st.DeflateWireBytes != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// A malformed extension header declines the extension: the upgrade
// itself succeeds.
func TestDeflateMalformedOffer(t *testing.T) {
	ts := startServer(t, nil)
	rc := deflateHandshake(t, ts, "", "permessage-deflate; ;;")
	if got := rc.resp.Header.Get("Sec-WebSocket-Extensions"); got != "" {
		t.Fatalf("malformed offer answered %q", got)
	}
}

// Resume with compression: seq frames arrive deflated and intact, and a
// since= replay serves the retained events, both those appended before
// any compressed connection existed (stored plain only, sent plain) and
// those after (deflated once, in the log).
func TestDeflateResume(t *testing.T) {
	ts := startServer(t, nil)
	first := dialQuery(t, ts, "seq=1") // plain, so nothing deflated yet
	waitFor(t, 5*time.Second, "the connection", func() bool { return ts.Stats().Connections == 1 })
	var want []string
	pub := func(i int) {
		ev := bigEvent(1, i, 1500)
		if i%2 == 1 {
			ev = fmt.Sprintf(`{"eventType":2,"n":%d}`, i)
		}
		want = append(want, ev)
		if code, body := publish(t, ts.adminURL, testKey, ev); code != 202 {
			t.Fatalf("publish: %d %s", code, body)
		}
	}
	for i := range 4 {
		pub(i)
	}
	e, _ := readSeq(t, first)
	since := e.Seq - 1 // just before the first event

	live, _ := dialCompressed(t, ts.wsURL+"?seq=1")
	waitFor(t, 5*time.Second, "two connections", func() bool { return ts.Stats().Connections == 2 })
	for i := 4; i < 8; i++ {
		pub(i)
	}
	check := func(c *websocket.Conn, from int) {
		t.Helper()
		for i := from; i < len(want); i++ {
			e, raw := readSeq(t, c)
			if e.Seq != since+1+uint64(i) || e.N != i {
				t.Fatalf("event %d: seq %d n %d: %.80s", i, e.Seq, e.N, raw)
			}
			var got, exp map[string]any
			_ = json.Unmarshal([]byte(raw), &got)
			_ = json.Unmarshal([]byte(want[i]), &exp)
			delete(got, "seq")
			delete(got, "epoch")
			if fmt.Sprint(got) != fmt.Sprint(exp) {
				t.Fatalf("event %d: %.80s, want %.80s", i, raw, want[i])
			}
		}
	}
	check(live, 4)
	resumed, _ := dialCompressed(t, fmt.Sprintf("%s?since=%d&epoch=%s", ts.wsURL, since, e.Epoch))
	check(resumed, 0)
	if st := ts.Stats(); st.Resumes != 1 || st.DeflateWireBytes >= st.DeflatePlainBytes {
		t.Fatalf("stats: %d resumes, %d wire bytes for %d plain", st.Resumes, st.DeflateWireBytes, st.DeflatePlainBytes)
	}
}

// Bad compression settings stop the start with a message naming them.
func TestDeflateSettingsValidated(t *testing.T) {
	for _, tc := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Compression = "maybe" }, `compression "maybe": must be on or off`},
		{func(c *Config) { c.CompressionMin = -1 }, "compression min -1: must not be negative"},
	} {
		cfg := Config{ListenAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", APIKey: testKey}
		tc.mut(&cfg)
		if _, err := New(cfg, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New: %v, want an error naming %q", err, tc.want)
		}
	}
}
