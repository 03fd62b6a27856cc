package broker

import (
	"math"
	"sync"
	"sync/atomic"
)

// rateMeter measures how fast a total grows, over the last meterSpan of
// samples taken at least meterStep apart: how fast a shard's slowest
// tenth advances through the log, in bytes per second, which sizes how
// far publishers may run ahead of it (shard.lead). Sampling is cheap and
// lock-free when it is not yet due, so every pass can offer a sample.
type rateMeter struct {
	due  atomic.Int64  // clock value from which the next sample is taken
	perS atomic.Uint64 // the rate, float64 bits: units per second

	mu   sync.Mutex
	ring [meterSpan + 1]meterSample
	n    int // samples taken, ever
}

type meterSample struct{ at, total int64 }

const (
	meterStep = int64(100e6) // 100 ms between samples
	meterSpan = 10           // the rate is over the last 10 steps: about 1 s
)

// observe offers the total as of now (hub clock, nanoseconds).
func (m *rateMeter) observe(now, total int64) {
	if now < m.due.Load() {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if now < m.due.Load() {
		return
	}
	m.due.Store(now + meterStep)
	m.ring[m.n%len(m.ring)] = meterSample{now, total}
	m.n++
	if m.n < 2 {
		return
	}
	oldest := m.ring[max(m.n-len(m.ring), 0)%len(m.ring)]
	if dt := now - oldest.at; dt > 0 {
		// A total that went back (the slowest tenth is now a connection
		// that resumed far behind) is no progress, not negative progress.
		m.perS.Store(math.Float64bits(float64(max(total-oldest.total, 0)) * 1e9 / float64(dt)))
	}
}

// rate is units per second over the last second or so; 0 until two
// samples have been taken.
func (m *rateMeter) rate() float64 { return math.Float64frombits(m.perS.Load()) }
