package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram range, in microseconds: 1 µs to 120 s at 3 significant digits.
const (
	histMin     = 1
	histMax     = 120_000_000
	histDigits  = 3
	histShards  = 32
	nanosPerMic = 1000
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

// shardedHist spreads recording over several locked histograms so nbio's
// callback goroutines rarely contend; merge combines them once at the end.
type shardedHist struct {
	shards [histShards]struct {
		mu       sync.Mutex
		h        *hdrhistogram.Histogram
		lastRecv int64 // unix nanos of the newest recorded value
		_        [40]byte
	}
}

func newShardedHist() *shardedHist {
	s := &shardedHist{}
	for i := range s.shards {
		s.shards[i].h = newHist()
	}
	return s
}

// record adds one latency (nanoseconds) observed at now (unix nanos) on
// connection id.
func (s *shardedHist) record(id int, latencyNanos, now int64) {
	sh := &s.shards[id%histShards]
	v := latencyNanos / nanosPerMic
	if v < histMin {
		v = histMin
	} else if v > histMax {
		v = histMax // clamp rather than drop: a huge value is still a delivery
	}
	sh.mu.Lock()
	_ = sh.h.RecordValue(v)
	if now > sh.lastRecv {
		sh.lastRecv = now
	}
	sh.mu.Unlock()
}

// clampMicros is d in whole microseconds within the histogram's range:
// a value past the top is clamped, not dropped, so it still shows as the
// maximum.
func clampMicros(d time.Duration) int64 {
	return min(max(d.Microseconds(), histMin), histMax)
}

// merge returns the union of all shards and the newest receive time.
func (s *shardedHist) merge() (*hdrhistogram.Histogram, int64) {
	out := newHist()
	var last int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		out.Merge(sh.h)
		if sh.lastRecv > last {
			last = sh.lastRecv
		}
		sh.mu.Unlock()
	}
	return out, last
}

// reset clears every shard (between connect and measurement phases).
func (s *shardedHist) reset() {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.h.Reset()
		sh.lastRecv = 0
		sh.mu.Unlock()
	}
}

// Latency summarises a histogram of microsecond values, in milliseconds.
type Latency struct {
	Count  int64   `json:"count"`
	MinMs  float64 `json:"minMs"`
	MeanMs float64 `json:"meanMs"`
	P50Ms  float64 `json:"p50Ms"`
	P90Ms  float64 `json:"p90Ms"`
	P99Ms  float64 `json:"p99Ms"`
	P999Ms float64 `json:"p999Ms"`
	MaxMs  float64 `json:"maxMs"`
}

func summarize(h *hdrhistogram.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		Count:  h.TotalCount(),
		MinMs:  ms(h.Min()),
		MeanMs: h.Mean() / 1000,
		P50Ms:  ms(h.ValueAtQuantile(50)),
		P90Ms:  ms(h.ValueAtQuantile(90)),
		P99Ms:  ms(h.ValueAtQuantile(99)),
		P999Ms: ms(h.ValueAtQuantile(99.9)),
		MaxMs:  ms(h.Max()),
	}
}
