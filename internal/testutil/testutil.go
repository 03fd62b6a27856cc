// Package testutil holds the helpers that the black-box tests of several
// packages (broker, cluster, interop, cmd/broker) share: waiting on a
// condition with a deadline, and a real WebSocket client and publish API
// client for a broker on loopback. It is imported by tests only.
//
// Tests wait on signals, never on a sleep standing in for one: WaitFor
// and Eventually poll a condition (a stats counter, a channel, a
// connection count) until it holds or a deadline passes.
package testutil

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
)

// pollEvery is how often WaitFor and Eventually look again: short
// enough that a test waits little past the moment its condition holds.
const pollEvery = 5 * time.Millisecond

// Eventually polls cond until it holds (true) or d passes (false), for a
// caller that reports a failure with details of its own.
func Eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollEvery)
	}
	return true
}

// WaitFor polls cond until it holds, or fails the test once d has passed
// without it, naming what was waited for.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Eventually(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// Dial opens a gorilla/websocket client (a real, independent
// implementation) to url with the given request headers (an Origin, a
// backend key) and closes it when the test ends.
func Dial(t testing.TB, url string, h http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("dial %s (headers %v): %v (status %d)", url, h, err, code)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// readTimeout bounds Read: long enough for a busy race-enabled run,
// short enough that a missing message fails the test rather than its
// binary's timeout.
const readTimeout = 10 * time.Second

// Read returns the next message on c, which must be a text message, or
// fails the test.
func Read(t testing.TB, c *websocket.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(readTimeout))
	typ, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.TextMessage {
		t.Fatalf("read: message type %d, want text", typ)
	}
	return string(b)
}

// ExpectNothing fails the test if a message arrives on c within d: the
// window is what is tested, so it is waited out in full.
func ExpectNothing(t testing.TB, c *websocket.Conn, d time.Duration) {
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

// Send writes msg on c as a text message or fails the test.
func Send(t testing.TB, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// Publish POSTs body to the publish API at adminURL, with key as the
// Bearer key unless it is empty, and returns the status and body.
func Publish(t testing.TB, adminURL, key, body string) (int, string) {
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

// LogWriter writes each line it is given to the test's log.
type LogWriter struct{ T testing.TB }

// Write implements io.Writer.
func (w LogWriter) Write(p []byte) (int, error) {
	w.T.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Logger is a broker log for a test: its lines at level and above in the
// test's log under -v, nothing otherwise.
func Logger(t testing.TB, level zerolog.Level) zerolog.Logger {
	if !testing.Verbose() {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: LogWriter{t}, NoColor: true}).Level(level)
}
