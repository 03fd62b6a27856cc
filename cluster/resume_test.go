package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webinate/broker/broker"
)

// ev is an event as a ?seq=1 client sees it; a gap event has Type 0 and
// Oldest set.
type ev struct {
	Seq    uint64 `json:"seq"`
	Epoch  string `json:"epoch"`
	N      int    `json:"n"`
	Type   int    `json:"eventType"`
	Error  string `json:"error"`
	Oldest uint64 `json:"oldest"`
}

func readEv(t testing.TB, c *websocket.Conn) ev {
	t.Helper()
	raw := read(t, c)
	var e ev
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return e
}

// publishN publishes events n from..to-1 on node n, one request each.
func publishN(t testing.TB, on *node, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if code, body := publish(t, on, fmt.Sprintf(`{"eventType":5,"n":%d}`, i)); code != 202 {
			t.Fatalf("publish %d: %d %s", i, code, body)
		}
	}
}

// readSeq reads events from..to-1 in order (no gap event) and returns the
// last one.
func readSeq(t testing.TB, c *websocket.Conn, from, to int) ev {
	t.Helper()
	var last ev
	for i := from; i < to; i++ {
		e := readEv(t, c)
		if e.Type == 0 || e.N != i {
			t.Fatalf("got %+v, want event n=%d", e, i)
		}
		if last.Seq != 0 && (e.Seq <= last.Seq || e.Epoch != last.Epoch) {
			t.Fatalf("event %+v after %+v", e, last)
		}
		last = e
	}
	return last
}

// sameHead waits until node n's log has what node a's has.
func sameHead(t testing.TB, a, n *node) {
	t.Helper()
	waitFor(t, 10*time.Second, "the same log head", func() bool { return n.Stats().HeadSeq == a.Stats().HeadSeq })
}

// A client that read events on node A resumes on node B with ?since= and
// the cluster-wide number it last saw: it gets exactly what it missed, in
// order, then the live stream; the epoch is the same on every node.
func TestResumeOnAnotherNode(t *testing.T) {
	d := startNATS(t)
	a := startNode(t, d, nil, nil)
	b := startNode(t, d, nil, nil)
	ca := dial(t, a.wsURL+"?seq=1")
	joined(t, a, 1)
	publishN(t, a, 0, 5)
	last := readSeq(t, ca, 0, 5)
	_ = ca.Close()
	publishN(t, a, 5, 10) // missed while away
	waitFor(t, 5*time.Second, "B has them", func() bool { return b.Stats().HeadSeq == a.Stats().HeadSeq && a.Stats().EventsPublished == 10 })
	cb := dial(t, fmt.Sprintf("%s?since=%d&epoch=%s", b.wsURL, last.Seq, last.Epoch))
	joined(t, b, 1)
	publishN(t, a, 10, 11)
	e := readSeq(t, cb, 5, 11)
	if e.Epoch != last.Epoch {
		t.Fatalf("epoch %q on B, %q on A", e.Epoch, last.Epoch)
	}
	expectNothing(t, cb, 100*time.Millisecond)
}

// Issue #17: a node that starts after events 5-9 were published reads
// them back from the stream before it opens its port, so a client that
// read 0-4 on another node and resumes on it gets 5-9, then the live
// stream; before, its first frame was event 10 (5-9 silently lost).
func TestResumeOnANodeThatJoinedLater(t *testing.T) {
	d := startNATS(t)
	a := startNode(t, d, nil, nil)
	ca := dial(t, a.wsURL+"?seq=1")
	joined(t, a, 1)
	publishN(t, a, 0, 5)
	last := readSeq(t, ca, 0, 5)
	_ = ca.Close()
	publishN(t, a, 5, 10)
	c := startNode(t, d, nil, nil)
	if got := c.bus.Status().Filled; got != 10 {
		t.Fatalf("node C read back %d events, want 10", got)
	}
	publishN(t, a, 10, 11)
	sameHead(t, a, c)
	cc := dial(t, fmt.Sprintf("%s?since=%d&epoch=%s", c.wsURL, last.Seq, last.Epoch))
	e := readSeq(t, cc, 5, 11)
	if e.Epoch != last.Epoch {
		t.Fatalf("epoch %q on C, %q on A", e.Epoch, last.Epoch)
	}
	expectNothing(t, cc, 100*time.Millisecond)
	if st := c.Stats(); st.ResumeGaps != 0 || st.Resumes != 1 {
		t.Fatalf("resumes %d gaps %d", st.Resumes, st.ResumeGaps)
	}
}

// A node restarted on its own (the only node: nobody else kept its
// history) reads its history back from the stream: its clients resume
// with a replay, not a gap.
func TestResumeOnARestartedNode(t *testing.T) {
	d := startNATS(t)
	a := startNode(t, d, nil, nil)
	ca := dial(t, a.wsURL+"?seq=1")
	joined(t, a, 1)
	publishN(t, a, 0, 10)
	last := readSeq(t, ca, 0, 5) // the client has read only half when A goes
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	a = startNode(t, d, nil, nil)
	cl := dial(t, fmt.Sprintf("%s?since=%d&epoch=%s", a.wsURL, last.Seq, last.Epoch))
	readSeq(t, cl, 5, 10)
	publishN(t, a, 10, 11)
	readSeq(t, cl, 10, 11)
	if st := a.Stats(); st.ResumeGaps != 0 {
		t.Fatalf("gaps %d", st.ResumeGaps)
	}
}

// A since= older than what the stream still holds gets a gap event on a
// node that started after those messages were removed (its history
// begins where the stream's does: nothing before is "retained"); a since=
// within what the stream holds replays.
func TestResumeFromBeforeTheStreamGetsAGap(t *testing.T) {
	d := startNATS(t)
	a := startNode(t, d, nil, nil)
	ca := dial(t, a.wsURL+"?seq=1")
	joined(t, a, 1)
	publishN(t, a, 0, 10) // stream messages 1..10
	seen := make([]ev, 10)
	for i := range seen {
		seen[i] = readEv(t, ca)
	}
	nc, err := nats.Connect(d.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "TEST")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(6)); err != nil { // keeps messages 6..10
		t.Fatal(err)
	}
	c := startNode(t, d, nil, nil)
	publishN(t, a, 10, 11)
	sameHead(t, a, c)

	old := dial(t, fmt.Sprintf("%s?since=%d&epoch=%s", c.wsURL, seen[1].Seq, seen[1].Epoch))
	gap := readEv(t, old)
	if gap.Type != 0 || !strings.Contains(gap.Error, "no longer retained") || gap.Oldest != LogSeq(6, 0) {
		t.Fatalf("resume from before the stream's first message: %+v, want a gap event with oldest %d", gap, LogSeq(6, 0))
	}
	if gap.Seq != LogSeq(11, 0) {
		t.Fatalf("gap event's seq %d, want the last event's %d", gap.Seq, LogSeq(11, 0))
	}
	kept := dial(t, fmt.Sprintf("%s?since=%d&epoch=%s", c.wsURL, seen[6].Seq, seen[6].Epoch))
	readSeq(t, kept, 7, 11)
}

// A starting node reads back only as much as its log keeps: about
// -history-size worth of the newest messages, and none older than
// -history-age. A resume from before that gets a gap event; one within
// it replays.
func TestHistoryReadBackIsBounded(t *testing.T) {
	d := startNATS(t)
	a := startNode(t, d, nil, nil)
	pad := strings.Repeat("x", 500)
	const msgs, per = 20, 100 // 20 stream messages of 100 events, ~1 MB
	for m := 0; m < msgs; m++ {
		var b strings.Builder
		b.WriteString("[")
		for i := 0; i < per; i++ {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"eventType":5,"n":%d,"pad":%q}`, m*per+i, pad)
		}
		b.WriteString("]")
		if code, body := publish(t, a, b.String()); code != 202 {
			t.Fatalf("publish: %d %s", code, body)
		}
	}
	small := func(c *broker.Config) { c.HistorySize = 64 << 10 }
	c := startNode(t, d, small, nil)
	if f := c.bus.Status().Filled; f >= msgs*per/2 || f < per {
		t.Fatalf("a 64 KiB log read back %d of %d events", f, msgs*per)
	}
	first := dial(t, fmt.Sprintf("%s?since=%d&epoch=%s", c.wsURL, LogSeq(1, 0), c.Stats().Epoch))
	if gap := readEv(t, first); gap.Type != 0 || gap.Oldest <= LogSeq(1, 0) {
		t.Fatalf("resume from the first event: %+v, want a gap event", gap)
	}
	recent := dial(t, fmt.Sprintf("%s?since=%d&epoch=%s", c.wsURL, LogSeq(msgs, per-3), c.Stats().Epoch))
	readSeq(t, recent, msgs*per-2, msgs*per)

	// -history-age: messages older than it are not read back.
	const age = 2 * time.Second
	last := time.Now()
	waitFor(t, 2*age, "the events to age", func() bool { return time.Since(last) > age })
	publishN(t, a, msgs*per, msgs*per+3)
	young := startNode(t, d, func(c *broker.Config) { c.HistoryAge = age }, nil)
	if f := young.bus.Status().Filled; f != 3 {
		t.Fatalf("with history age %v: read back %d events, want the 3 younger ones", age, f)
	}
	old := dial(t, fmt.Sprintf("%s?since=%d&epoch=%s", young.wsURL, LogSeq(msgs, per-1), young.Stats().Epoch))
	readSeq(t, old, msgs*per, msgs*per+3) // the next message is the first kept: a replay
	older := dial(t, fmt.Sprintf("%s?since=%d&epoch=%s", young.wsURL, LogSeq(msgs, per-2), young.Stats().Epoch))
	if gap := readEv(t, older); gap.Type != 0 || gap.Oldest != LogSeq(msgs, per) {
		t.Fatalf("resume from an aged event: %+v, want a gap event", gap)
	}
}
