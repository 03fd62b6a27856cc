package broker

import (
	"time"

	"github.com/webinate/broker/internal/monoclock"
	"golang.org/x/time/rate"
)

// readPauser is what the patched nbio offers to stop reading one socket
// (third_party/nbio): the sender is then paced by TCP itself, its bytes
// waiting in its own socket buffers instead of the broker's memory.
type readPauser interface {
	PauseRead() error
	ResumeRead() error
}

// hold paces c's input: nothing more is handled for d, then until() says
// how much longer (zero: resume). The rest of what was read stays in rbuf
// and reading the socket pauses, so a fast sender is slowed down rather
// than answered with errors. Called with rmu held, from dispatch.
func (c *conn) hold(d time.Duration, until func() time.Duration) {
	if c.held {
		return
	}
	c.held = true
	c.paused.Store(true)
	c.holdUntil = until
	c.srv.stats.paced.Add(1)
	if p, ok := any(c.nbc).(readPauser); ok {
		_ = p.PauseRead()
	}
	time.AfterFunc(d, c.resume)
}

// resume releases held input when its time has come, handling what was
// read meanwhile, and reads the socket again unless that input is held in
// turn.
func (c *conn) resume() {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.gone.Load() || c.desync || !c.held {
		return
	}
	if d := c.holdUntil(); d > 0 {
		time.AfterFunc(d, c.resume)
		return
	}
	c.held = false
	c.heldAt.Store(monoclock.Now())
	c.paused.Store(false)
	c.holdUntil = nil
	func() {
		defer c.recoverPanic()
		c.consume(nil)
	}()
	if !c.held {
		if p, ok := any(c.nbc).(readPauser); ok {
			_ = p.ResumeRead()
		}
	}
}

// maxHeld caps input kept while a connection is held. Pausing the socket
// keeps it near one read's worth; without it (or for a sender that
// outruns the pause) the cap is what stops a flood: 1008.
func (s *Server) maxHeld() int { return s.cfg.MaxMessageSize + 4*s.cfg.ReadBufferSize }

// pace takes a token from *l for one message, creating the bucket on first
// use so that a connection that never sends costs no limiter memory. It
// returns how long the sender must wait before its next message: zero
// while within the rate, otherwise the debt this message ran up.
func pace(l **rate.Limiter, r float64, burst int) time.Duration {
	return paceN(l, r, burst, 1)
}

func noLonger() time.Duration { return 0 }

// holdMore holds c's input like hold, for a reason that may come on top
// of another found while handling the same message (the message rate,
// then a budget): the hold then lasts until every reason has passed,
// where hold would keep the first and drop the rest. until may be asked
// again after it has reported zero, and must then report zero again.
// Called with rmu held, from dispatch.
func (c *conn) holdMore(d time.Duration, until func() time.Duration) {
	if !c.held {
		c.hold(d, until)
		return
	}
	prev := c.holdUntil
	end := time.Now().Add(d)
	c.holdUntil = func() time.Duration {
		mine := time.Until(end)
		if mine <= 0 {
			mine = until()
		}
		return max(prev(), mine)
	}
}

// paceBytes is pace for a message of n bytes against a bucket of bytes
// (r per second, burst deep).
func paceBytes(l **rate.Limiter, r, burst, n int) time.Duration {
	return paceN(l, float64(r), burst, n)
}

// paceN takes n tokens from *l (see pace). Validate keeps a byte bucket's
// burst at least the largest message; n is capped at the bucket anyway, so
// that a burst lowered by a reload can only delay a message, never refuse
// it.
func paceN(l **rate.Limiter, r float64, burst, n int) time.Duration {
	if r < 0 {
		return 0
	}
	if *l == nil {
		*l = rate.NewLimiter(rate.Limit(r), burst)
	}
	res := (*l).ReserveN(time.Now(), min(n, (*l).Burst()))
	if !res.OK() {
		return time.Second
	}
	return res.Delay()
}

// pollHold is the until of a hold (see conn.hold) that waits for a
// condition rather than a time: it asks blocked() every poll() until it
// reports false or deadline has passed, then calls end (if set) once with
// blocked's last answer, and reports zero from then on (as holdMore asks
// of it). blocked may act when it reports false (take a budget).
func pollHold(poll func() time.Duration, deadline time.Time, blocked func() bool, end func(blocked bool)) func() time.Duration {
	done := false
	return func() time.Duration {
		if done {
			return 0
		}
		b := blocked()
		if b && time.Now().Before(deadline) {
			return poll()
		}
		done = true
		if end != nil {
			end(b)
		}
		return 0
	}
}

// backoff spaces the polls of a hold that waits for something other than
// time (a backend's reply, the fan-out, a shared budget): 1 ms at first,
// so that a short wait ends soon after its cause, doubling up to 16 ms,
// so that a long one costs few timer runs.
type backoff time.Duration

func (b *backoff) next() time.Duration {
	d := max(time.Duration(*b), time.Millisecond)
	*b = backoff(min(2*d, 16*time.Millisecond))
	return d
}
