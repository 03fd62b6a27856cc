package broker

import (
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Repetitive warnings (refused handshakes, slow consumers) come in floods:
// a misconfigured page reconnecting in a loop, a scanner, a stalled
// network segment. Each kind gets its own sampled logger, so a flood of one
// kind cannot fill a disk nor hide the others.
const (
	// warnBurst is how many warnings of one kind are logged per
	// warnPeriod; the rest are counted and reported on the next line of
	// that kind as "similarSuppressed".
	warnBurst  = 5
	warnPeriod = 10 * time.Second
)

// warnLoggers are the sampled loggers for the repetitive warnings.
type warnLoggers struct {
	origin zerolog.Logger // 403: origin not approved
	key    zerolog.Logger // 401: wrong users-api-key
	token  zerolog.Logger // 401: JWT
	full   zerolog.Logger // 503: at max-conns
	limit  zerolog.Logger // 429/503: per-IP, per-user, accept rate
	slow   zerolog.Logger // slow consumer dropped
}

func newWarnLoggers(l zerolog.Logger, burst uint32, period time.Duration) warnLoggers {
	return warnLoggers{
		origin: sampled(l, burst, period),
		key:    sampled(l, burst, period),
		token:  sampled(l, burst, period),
		full:   sampled(l, burst, period),
		limit:  sampled(l, burst, period),
		slow:   sampled(l, burst, period),
	}
}

// sampled returns l limited to burst lines per period by zerolog's
// BurstSampler, each line carrying how many were dropped before it.
func sampled(l zerolog.Logger, burst uint32, period time.Duration) zerolog.Logger {
	cs := &countingSampler{next: &zerolog.BurstSampler{Burst: burst, Period: period}}
	return l.Sample(cs).Hook(cs)
}

// countingSampler adds to a zerolog sampler what zerolog's samplers lack: a
// count of the events they dropped. As a zerolog.Sampler it defers to next
// and counts each refusal; as a zerolog.Hook, which runs only for events
// that were let through, it adds that count to the line and resets it. A
// flood that stops is reported by the next line of its kind.
type countingSampler struct {
	next    zerolog.Sampler
	dropped atomic.Int64
}

var (
	_ zerolog.Sampler = (*countingSampler)(nil)
	_ zerolog.Hook    = (*countingSampler)(nil)
)

// Sample implements zerolog.Sampler.
func (s *countingSampler) Sample(lvl zerolog.Level) bool {
	if s.next.Sample(lvl) {
		return true
	}
	s.dropped.Add(1)
	return false
}

// Run implements zerolog.Hook.
func (s *countingSampler) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	if n := s.dropped.Swap(0); n > 0 {
		e.Int64("similarSuppressed", n)
	}
}
