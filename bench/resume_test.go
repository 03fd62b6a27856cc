package bench

import (
	"context"
	"net"
	"testing"
	"time"
)

func frameN(seq uint64, n int) resumeFrame { return resumeFrame{Seq: seq, Epoch: "e", N: &n, Type: 1} }

// A client's tally: what a gap event covered is excused, anything else
// confirmed and not received after its first event is missing, and an
// event at or below one already had is a duplicate.
func TestResumeTally(t *testing.T) {
	c := &resumeClient{first: -1}
	for _, n := range []int{2, 3} {
		c.record(frameN(uint64(n), n))
	}
	oldest := uint64(1)
	c.record(resumeFrame{Seq: 6, Epoch: "e2", Oldest: &oldest}) // gap: 4..6 missed, told
	c.record(frameN(7, 7))
	c.record(frameN(7, 7)) // twice
	c.record(frameN(9, 9)) // 8 skipped silently
	if c.lastSeq != 9 || c.gaps != 1 || c.dups != 1 {
		t.Fatalf("client %+v", c)
	}
	confirmed := map[int]bool{}
	for n := 1; n <= 10; n++ {
		confirmed[n] = n != 5 // 5 was never confirmed
	}
	got := c.tally(confirmed, 10)
	if got.missing != 2 || got.excused != 2 || got.unconfirmed != 0 { // missing 8 and 10; excused 4, 6
		t.Fatalf("tally %+v", got)
	}
}

// Against one broker, with a second address where nothing listens (a
// node that is down), clients leaving and resuming now and then: every
// client resumes on the live node, nothing is missing, nothing is
// duplicated, no gap.
func TestRunResumeOneNode(t *testing.T) {
	tg := startBroker(t)
	// Port 1: nothing listens there. (A port taken from a listener and
	// closed again can be handed to another test's server meanwhile, and a
	// client that dials it then waits out a handshake timeout: one run in
	// ten failed so beside a flood.)
	down := "127.0.0.1:1"
	if c, err := net.Dial("tcp", down); err == nil {
		c.Close()
		t.Fatal("something listens on 127.0.0.1:1; this test needs a port that refuses connections")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := RunResume(ctx, ResumeConfig{
		Addrs: []string{tg.addr, down}, AdminAddrs: []string{tg.adminAddr}, Key: tg.key,
		Clients: 6, Duration: time.Second, Rate: 100, Drain: 10 * time.Second, Churn: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published == 0 || res.Resumes == 0 || res.Missing != 0 || res.Duplicates != 0 || res.Gaps != 0 || len(res.Errors) != 0 {
		t.Fatalf("result %+v", res)
	}
}
