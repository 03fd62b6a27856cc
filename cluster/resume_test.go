package cluster

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// A client that read events on node A resumes on node B with ?since= and
// the cluster-wide number it last saw: it gets exactly what it missed, in
// order, then the live stream; the epoch is the same on every node.
func TestResumeOnAnotherNode(t *testing.T) {
	d := startNATS(t)
	a := startNode(t, d, nil, nil)
	b := startNode(t, d, nil, nil)
	ca := dial(t, a.wsURL+"?seq=1")
	joined(t, a, 1)
	type ev struct {
		Seq   uint64 `json:"seq"`
		Epoch string `json:"epoch"`
		N     int    `json:"n"`
		Type  int    `json:"eventType"`
	}
	readEv := func(raw string) ev {
		var e ev
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			t.Fatalf("%v: %s", err, raw)
		}
		return e
	}
	for i := 0; i < 5; i++ {
		if code, _ := publish(t, a, fmt.Sprintf(`{"eventType":5,"n":%d}`, i)); code != 202 {
			t.Fatal(code)
		}
	}
	var last ev
	for i := 0; i < 5; i++ {
		last = readEv(read(t, ca))
		if last.N != i {
			t.Fatalf("on A: n %d, want %d", last.N, i)
		}
	}
	_ = ca.Close()
	for i := 5; i < 10; i++ { // missed while away
		if code, _ := publish(t, a, fmt.Sprintf(`{"eventType":5,"n":%d}`, i)); code != 202 {
			t.Fatal(code)
		}
	}
	waitFor(t, 5*time.Second, "B has them", func() bool { return b.Stats().HeadSeq == a.Stats().HeadSeq && a.Stats().EventsPublished == 10 })
	cb := dial(t, fmt.Sprintf("%s?since=%d&epoch=%s", b.wsURL, last.Seq, last.Epoch))
	joined(t, b, 1)
	if code, _ := publish(t, a, `{"eventType":5,"n":10}`); code != 202 {
		t.Fatal(code)
	}
	for i := 5; i <= 10; i++ {
		e := readEv(read(t, cb))
		if e.Type == 0 {
			t.Fatalf("gap event on B: %+v", e)
		}
		if e.N != i || e.Epoch != last.Epoch || e.Seq <= last.Seq {
			t.Fatalf("on B: %+v after seq %d, want n %d", e, last.Seq, i)
		}
		last = e
	}
	expectNothing(t, cb, 100*time.Millisecond)
}
