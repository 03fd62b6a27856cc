package cluster

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/webinate/broker/broker"
)

// countNode counts deliveries and closes done once want have come.
type countNode struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func newCountNode(want int64) *countNode { return &countNode{want: want, done: make(chan struct{})} }

func (c *countNode) Deliver(_ uint64, evs []broker.BusEvent) {
	k := int64(len(evs))
	if n := c.n.Add(k); n >= c.want && n-k < c.want {
		close(c.done)
	}
}

// awaitDeliveries waits for done (every event delivered), failing the
// benchmark after a minute rather than hanging on a lost event.
func awaitDeliveries(b *testing.B, done <-chan struct{}) {
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatal("not every event was delivered within a minute")
	}
}

func (c *countNode) ServeMeta(_ []byte, respond func([]byte)) { respond(nil) }
func (c *countNode) Saturated() bool                          { return false }
func (c *countNode) Answer(string, []byte) []byte             { return nil }
func (c *countNode) Reset(_ string, seq uint64) uint64        { return seq }
func (c *countNode) Retention() (int, time.Duration)          { return 1 << 20, 0 }

var benchEvent = []byte(`{"eventType":1,"username":"bob","file":"a-typical-event-of-about-a-hundred-bytes.png","size":12345}`)

// BenchmarkBus measures events/s from publish to delivery on an embedded
// nats-server: core NATS pub/sub (no order across nodes, no persistence,
// no confirmation: the floor) against the JetStream path the cluster
// uses, with one publish at a time (a serial publisher waiting for each
// 202), many concurrent publishers (group commit), and requests of 100
// events (one atomic batch each). go test -run '^$' -bench Bus ./cluster
func BenchmarkBus(b *testing.B) {
	d := startNATS(b)
	b.Run("core-nats", func(b *testing.B) {
		pub, err := nats.Connect(d.url())
		if err != nil {
			b.Fatal(err)
		}
		defer pub.Close()
		sub, err := nats.Connect(d.url())
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close()
		var got atomic.Int64
		all := make(chan struct{})
		s, _ := sub.Subscribe("core.events", func(*nats.Msg) {
			if got.Add(1) == int64(b.N) {
				close(all)
			}
		})
		_ = s.SetPendingLimits(-1, -1)
		_ = sub.Flush()
		b.ReportAllocs()
		b.SetBytes(int64(len(benchEvent)))
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			_ = pub.Publish("core.events", benchEvent)
		}
		_ = pub.Flush()
		awaitDeliveries(b, all)
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	})
	run := func(name string, publishers, perRequest int) {
		b.Run(name, func(b *testing.B) {
			br, err := New(Config{URLs: []string{d.url()}, Subject: "bench." + name, MaxQueued: 1 << 20}, testLogger(b))
			if err != nil {
				b.Fatal(err)
			}
			reqs := (b.N + perRequest - 1) / perRequest
			want := int64(reqs * perRequest)
			cn := newCountNode(want)
			if err := br.Start(cn); err != nil {
				b.Fatal(err)
			}
			defer br.Close()
			batch := make([][]byte, perRequest)
			for i := range batch {
				batch[i] = benchEvent
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(benchEvent)))
			b.ResetTimer()
			start := time.Now()
			var next atomic.Int64
			var wg sync.WaitGroup
			for p := 0; p < publishers; p++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					done := make(chan error, 1)
					for next.Add(1) <= int64(reqs) {
						br.Publish(batch, false, func(err error) { done <- err })
						if err := <-done; err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			awaitDeliveries(b, cn.done)
			el := time.Since(start).Seconds()
			b.ReportMetric(float64(want)/el, "events/s")
			b.ReportMetric(float64(reqs)/el, "requests/s")
		})
	}
	run("jetstream-serial", 1, 1)
	run("jetstream-64-publishers", 64, 1)
	run("jetstream-batch100", 1, 100)
	run("jetstream-batch100-8-publishers", 8, 100)
}
