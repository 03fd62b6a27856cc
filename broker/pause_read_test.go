package broker

import (
	"errors"
	"net"
	"testing"
	"time"
)

// TestPauseReadHoldsClientMessages pauses reading one live connection:
// messages its client sends meanwhile are not handled, and after
// ResumeRead they are, in order, while events still reach the client.
func TestPauseReadHoldsClientMessages(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts.Addr())
	var c *conn
	waitFor(t, 5*time.Second, "connection in the table", func() bool {
		ts.hub.each(func(x *conn) { c = x })
		return c != nil
	})
	p, ok := any(c.nbc).(readPauser)
	if !ok {
		t.Skip("nbio without PauseRead: third_party/nbio is not in use")
	}
	if err := p.PauseRead(); err != nil {
		t.Fatalf("PauseRead: %v", err)
	}
	msgs := []string{
		`{"eventType":10,"message":"one"}`,
		`{"eventType":10,"message":"two"}`,
		`{"eventType":10,"message":"three"}`,
	}
	for _, m := range msgs {
		rc.writeFrame(true, opText, []byte(m), true)
	}
	// Writes still go out while reading is paused.
	ts.publish([][]byte{[]byte(`{"eventType":1,"username":"bob"}`)})
	if _, op, b := rc.readFrame(); op != opText || string(b) != `{"eventType":1,"username":"bob"}` {
		t.Fatalf("while paused: got op %d %q, want the published event", op, b)
	}
	// No echo while paused.
	_ = rc.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := rc.br.ReadByte(); err == nil {
		t.Fatal("a message was answered while reading was paused")
	} else if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
		t.Fatalf("while paused: %v", err)
	}

	if err := p.ResumeRead(); err != nil {
		t.Fatalf("ResumeRead: %v", err)
	}
	for _, want := range msgs {
		if _, op, b := rc.readFrame(); op != opText || string(b) != want {
			t.Fatalf("after resume: got op %d %q, want %q", op, b, want)
		}
	}
}
