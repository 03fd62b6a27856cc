package cluster

import (
	"net/http"
	"testing"
	"time"

	"github.com/webinate/broker/broker"
)

// A client that has read everything is not behind, however long the
// cluster stays quiet: when the next event comes after more than max-lag
// of silence, it is delivered, not taken for an event the client failed
// to read in time. (Cluster numbers leave a gap between stream messages,
// and the client's cursor sits in it.)
func TestQuietClusterCutsNobody(t *testing.T) {
	d := startNATS(t)
	a := startNode(t, d, func(c *broker.Config) {
		c.MaxLag = 500 * time.Millisecond
		c.PublishLag = 50 * time.Millisecond
	}, nil)
	c := dial(t, a.wsURL)
	joined(t, a, 1)
	if code, body := publish(t, a, `{"eventType":1,"n":1}`); code != http.StatusAccepted {
		t.Fatal(code, body)
	}
	if got := read(t, c); got != `{"eventType":1,"n":1}` {
		t.Fatal(got)
	}
	// Quiet for well over max-lag: the event just read is now "old".
	start := time.Now()
	waitFor(t, 5*time.Second, "quiet for 3 × max-lag", func() bool { return time.Since(start) > 1500*time.Millisecond })
	if code, body := publish(t, a, `{"eventType":1,"n":2}`); code != http.StatusAccepted {
		t.Fatal(code, body)
	}
	if got := read(t, c); got != `{"eventType":1,"n":2}` {
		t.Fatalf("after a quiet spell: %s (stats %+v)", got, a.Stats())
	}
	if n := a.Stats().SlowConsumers; n != 0 {
		t.Fatalf("%d slow consumers after a quiet spell", n)
	}
}
