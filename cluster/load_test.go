package cluster

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/webinate/broker/broker"
)

// When most clients of node B are behind, publishers on node A wait too
// and, past PublishWait, are refused with 503 and nothing published,
// although A's own clients keep up; once B has caught up, A publishes
// again. Without this A would run ahead of B's fan-out and B's clients
// would be cut as slow consumers.
func TestBackpressureSpansNodes(t *testing.T) {
	d := startNATS(t)
	flow := func(c *broker.Config) {
		c.PublishLag = 100 * time.Millisecond
		c.PublishWait = 300 * time.Millisecond
		c.MaxLag = time.Minute // behind, but not slow consumers
		c.MaxPublishBytes = 1 << 20
		c.MessageRate, c.BroadcastRate = -1, -1
	}
	a := startNode(t, d, flow, func(c *Config) { c.Name = "A" })
	b := startNode(t, d, flow, func(c *Config) { c.Name = "B" })

	reader := dial(t, a.wsURL) // reads everything: A itself keeps up
	// B's readers answer one credit ping and then stop reading: behind,
	// with a vote in backpressure (a socket that never reads has none).
	var stalled []*websocket.Conn
	var gaveUp []<-chan struct{}
	for i := 0; i < 4; i++ {
		c := dial(t, b.wsURL)
		gaveUp = append(gaveUp, answerOneCreditPing(c))
		stalled = append(stalled, c)
	}
	joined(t, a, 1)
	joined(t, b, 4)
	got := make(chan string, 4096)
	go func() {
		for {
			_, m, err := reader.ReadMessage()
			if err != nil {
				close(got)
				return
			}
			got <- string(m)
		}
	}()

	pad := strings.Repeat("x", 4000)
	parts := make([]string, 100)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"eventType":5,"file":"%s"}`, pad)
	}
	batch := "[" + strings.Join(parts, ",") + "]"
	// Far more than B's credit window: B's readers fall behind, A's do not.
	accepted := 0
	for i := 0; i < 3; i++ {
		if i == 1 {
			for _, ch := range gaveUp {
				<-ch
			}
		}
		switch code, body := publish(t, a, batch); code {
		case http.StatusAccepted:
			accepted += len(parts)
		case http.StatusServiceUnavailable: // later batches may meet the backpressure already
		default:
			t.Fatalf("publish: %d %s", code, body)
		}
	}
	waitFor(t, 5*time.Second, "A held by B", func() bool { return a.bus.Saturated() })
	if st := a.Stats().Cluster; !slices.Equal(st.PeersSaturated, []string{"B"}) || !st.Backpressure || st.PeerHolds == 0 {
		t.Fatalf("A's cluster status %+v", st)
	}
	for range accepted {
		select {
		case _, ok := <-got:
			if !ok {
				t.Fatal("A's reader closed")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("A's own reader does not get what A accepted")
		}
	}
	before := a.Stats().Cluster.Published
	start := time.Now()
	code, body := publish(t, a, `{"eventType":1,"username":"u"}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "another node") {
		t.Fatalf("publish on A while B is behind: %d %s, want 503", code, body)
	}
	if e := time.Since(start); e < 250*time.Millisecond {
		t.Fatalf("refused after %v, want a wait of about PublishWait", e)
	}
	if n := a.Stats().Cluster.Published; n != before {
		t.Fatalf("a refused request was published: %d → %d", before, n)
	}
	if st := b.Stats(); st.SlowConsumers != 0 {
		t.Fatalf("B cut %d clients", st.SlowConsumers)
	}

	// B catches up (its laggards leave): A publishes again, at once.
	for _, c := range stalled {
		_ = c.Close()
	}
	waitFor(t, 5*time.Second, "B's stalled clients gone", func() bool { return b.Stats().Connections == 0 })
	waitFor(t, 5*time.Second, "A released", func() bool { return !a.bus.Saturated() })
	if code, body := publish(t, a, `{"eventType":1,"username":"u"}`); code != http.StatusAccepted {
		t.Fatalf("publish after B caught up: %d %s", code, body)
	}
	select {
	case m := <-got:
		if m != `{"eventType":1,"username":"u"}` {
			t.Fatalf("A's reader got %s", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("A's reader got nothing")
	}
	if st := a.Stats().Cluster; len(st.PeersSaturated) != 0 || st.Backpressure {
		t.Fatalf("A still held: %+v", st)
	}
}

// answerOneCreditPing makes c a reader that gives up: it reads until it has
// answered the broker's first credit ping (a 25-byte payload starting with
// 'b'), as any client does, then stops reading. done is closed at that ping.
func answerOneCreditPing(c *websocket.Conn) (done <-chan struct{}) {
	ch := make(chan struct{})
	var once sync.Once
	c.SetPingHandler(func(p string) error {
		err := c.WriteControl(websocket.PongMessage, []byte(p), time.Now().Add(time.Second))
		if len(p) == 25 && p[0] == 'b' {
			once.Do(func() { close(ch) })
		}
		return err
	})
	go func() {
		for {
			select {
			case <-ch:
				return
			default:
			}
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	return ch
}
