package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// testJS is a plain JetStream client of the test's NATS server, as an
// operator's tool would be.
func testJS(t testing.TB, d *natsd) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(d.url())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func metrics(t testing.TB, n *node) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, n.adminURL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitMissing waits for n's /healthz to say its stream is gone (503).
func waitMissing(t testing.TB, n *node) {
	t.Helper()
	waitFor(t, 10*time.Second, "/healthz 503 with the stream missing", func() bool {
		code, m := health(t, n)
		return code == http.StatusServiceUnavailable && m["stream"] == "missing" && m["status"] == "cluster_unavailable"
	})
	if !strings.Contains(metrics(t, n), "broker_cluster_stream_missing 1\n") {
		t.Fatal("/metrics does not say the stream is missing")
	}
}

func waitHealthy(t testing.TB, n *node) {
	t.Helper()
	waitFor(t, 15*time.Second, "/healthz 200 again", func() bool { code, _ := health(t, n); return code == http.StatusOK })
}

// Issue #17: the stream is deleted while the nodes run and created again
// by an operator's tool (numbered from 1 again). Before, node A delivered
// nothing more (every new number was at or below the last it had
// delivered) and stayed healthy, silently. Now: /healthz answers 503
// while the stream is gone and 200 once it is back and delivering; the
// clients still connected get the new events, under a new epoch; a
// client resuming with the old epoch gets a gap event; /stats and
// /metrics count the reset.
func TestStreamDeletedAndCreatedAgain(t *testing.T) {
	d := startNATS(t)
	a := startNode(t, d, nil, nil)
	b := startNode(t, d, nil, nil)
	ca := dial(t, a.wsURL+"?seq=1")
	cb := dial(t, b.wsURL+"?seq=1")
	joined(t, a, 1)
	joined(t, b, 1)
	publishN(t, a, 0, 3)
	before := readSeq(t, ca, 0, 3)
	readSeq(t, cb, 0, 3)

	js := testJS(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, "TEST"); err != nil {
		t.Fatal(err)
	}
	waitMissing(t, a)
	if st := a.Stats().Cluster; st.StreamMissingSince.IsZero() || st.Healthy {
		t.Fatalf("stats while the stream is gone: %+v", st)
	}
	// Created again as a tool would (the nodes may have done it already).
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "TEST", Subjects: []string{"test.events"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, a)
	waitHealthy(t, b)

	publishN(t, b, 3, 6)
	after := readSeq(t, ca, 3, 6)
	if after.Epoch == before.Epoch || after.Seq <= before.Seq {
		t.Fatalf("after the reset: %+v, before %+v: want a new epoch, numbers going up", after, before)
	}
	if e := readSeq(t, cb, 3, 6); e.Epoch != after.Epoch || e.Seq != after.Seq {
		t.Fatalf("node B: %+v, node A: %+v", e, after)
	}
	if got := a.Stats().Epoch; got != after.Epoch {
		t.Fatalf("/stats epoch %q, events carry %q", got, after.Epoch)
	}

	old := dial(t, fmt.Sprintf("%s?since=%d&epoch=%s", a.wsURL, before.Seq, before.Epoch))
	if gap := readEv(t, old); gap.Type != 0 || !strings.Contains(gap.Error, "another epoch") || gap.Epoch != after.Epoch {
		t.Fatalf("resume with the old epoch: %+v, want a gap event", gap)
	}
	cur := dial(t, fmt.Sprintf("%s?since=%d&epoch=%s", a.wsURL, after.Seq-1, after.Epoch))
	if e := readEv(t, cur); e.N != 5 {
		t.Fatalf("resume in the new epoch: %+v, want event 5", e)
	}
	st := a.Stats().Cluster
	if st.StreamResets != 1 || !st.StreamMissingSince.IsZero() || !st.Healthy {
		t.Fatalf("stats after the reset: %+v", st)
	}
	if m := metrics(t, a); !strings.Contains(m, "broker_cluster_stream_resets_total 1\n") || !strings.Contains(m, "broker_cluster_stream_missing 0\n") {
		t.Fatal("/metrics does not count the reset")
	}
}

// Nobody creates the deleted stream again: a node does, after
// recreateAfter, numbered on from where it stopped, so its numbers need
// no offset and its epoch is the new stream's.
func TestNodeCreatesADeletedStreamAgain(t *testing.T) {
	d := startNATS(t)
	a := startNode(t, d, nil, nil)
	ca := dial(t, a.wsURL+"?seq=1")
	joined(t, a, 1)
	publishN(t, a, 0, 2)
	before := readSeq(t, ca, 0, 2)

	js := testJS(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, "TEST"); err != nil {
		t.Fatal(err)
	}
	waitMissing(t, a)
	waitHealthy(t, a)
	st, err := js.Stream(ctx, "TEST")
	if err != nil {
		t.Fatalf("the stream was not created again: %v", err)
	}
	info := st.CachedInfo()
	if want := fmt.Sprintf("nats:TEST:%d", info.Created.UnixNano()); a.Stats().Epoch != want || info.Config.FirstSeq != 3 {
		t.Fatalf("epoch %q first seq %d, want %q and 3", a.Stats().Epoch, info.Config.FirstSeq, want)
	}
	publishN(t, a, 2, 3)
	after := readSeq(t, ca, 2, 3)
	if after.Seq != LogSeq(3, 0) || after.Epoch != a.Stats().Epoch {
		t.Fatalf("after the stream came back: %+v, before %+v", after, before)
	}
	// A node started now numbers alike: same epoch, its history read back.
	c := startNode(t, d, nil, nil)
	if c.Stats().Epoch != after.Epoch {
		t.Fatalf("a new node's epoch %q, want %q", c.Stats().Epoch, after.Epoch)
	}
	cc := dial(t, fmt.Sprintf("%s?since=%d&epoch=%s", c.wsURL, after.Seq-1, after.Epoch))
	readSeq(t, cc, 2, 3)
}

// Messages removed from the stream (a purge, its limits) before a node
// delivered them are not skipped silently: the node's clients that had not
// got them are cut, a resume from before gets a gap event, and delivery
// goes on from the first message still there. Node A is made to lag by
// stopping its consumer, as a slow node's would be behind.
func TestMessagesRemovedBeforeDeliveryAreNotSkippedSilently(t *testing.T) {
	d := startNATS(t)
	a := startNode(t, d, nil, nil)
	b := startNode(t, d, nil, nil)
	ca := dial(t, a.wsURL+"?seq=1")
	joined(t, a, 1)
	publishN(t, b, 0, 2)
	before := readSeq(t, ca, 0, 2)

	a.bus.smu.Lock() // A lags: it consumes nothing until released
	a.bus.stopLocked()
	publishN(t, b, 2, 6) // stream messages 3..6
	js := testJS(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "TEST")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(5)); err != nil { // 3 and 4 go
		t.Fatal(err)
	}
	a.bus.smu.Unlock()

	// A's client is cut: its next events are gone.
	_ = ca.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, msg, err := ca.ReadMessage()
		if err != nil {
			break
		}
		t.Fatalf("node A delivered %s across the hole", msg)
	}
	waitFor(t, 10*time.Second, "A to go on", func() bool { return a.bus.Status().LastSeq == 6 })
	if lost := a.bus.Status().Lost; lost != 2 {
		t.Fatalf("lost %d, want 2", lost)
	}
	gap := readEv(t, dial(t, fmt.Sprintf("%s?since=%d&epoch=%s", a.wsURL, before.Seq, before.Epoch)))
	if gap.Type != 0 || gap.Oldest != LogSeq(5, 0) {
		t.Fatalf("resume from before the hole: %+v, want a gap event with oldest %d", gap, LogSeq(5, 0))
	}
	cl := dial(t, fmt.Sprintf("%s?since=%d&epoch=%s", a.wsURL, LogSeq(5, 0), before.Epoch))
	readSeq(t, cl, 5, 6)
}
