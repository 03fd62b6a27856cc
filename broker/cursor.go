package broker

import (
	"sync/atomic"
	"time"

	"github.com/webinate/broker/eventlog"
)

// cursor is one connection's place in the event log and its credit
// account: everything the shard worker and the pong handler share about
// it, and nothing about its socket (see sink). conn embeds one; hub tests
// build cursors of their own behind fake sinks.
//
// Ownership: next and pinged belong to the shard worker (next is set
// before the connection is visible to it: start, resumeAt); sent is
// written by the worker and read by the pong handler, as is oweSince;
// acked, ackSeq, lastAck and pongLag are written by the pong handler
// (ack) and read by the worker;
// starved is the worker's request for a wake-up, cleared by the pong that
// answers it. paused and heldAt are written by the read side's pacing
// (pace.go). id, idx, variant, joined and want are set before the
// connection joins its shard and do not change (idx changes under the
// shard's write lock).
type cursor struct {
	// id is the connection's: its shard, its credit tags and its drain
	// turn derive from it.
	id  uint64
	idx int // position in its shard's table, guarded by the shard's mu

	next    uint64        // sequence number of the next log event to consider
	pinged  int64         // sent as of the last credit ping
	sent    atomic.Int64  // log bytes written to the socket
	acked   atomic.Int64  // log bytes the client has confirmed reading
	ackSeq  atomic.Uint64 // cursor as of the ping that acked confirms
	starved atomic.Bool   // the worker is waiting for credit
	lastAck atomic.Int64  // hub clock of the last pong that returned credit; 0: never
	// oweSince is when the worker sent a credit ping with none
	// outstanding: with lastAck, when the pong now owed became due.
	oweSince atomic.Int64
	// pongLag is how long it usually owes a pong (smoothed, rising at
	// once): a reader that is slow but keeps reading (a busy client
	// machine) owes its pongs for about that long each, and is not
	// stalled for it.
	pongLag atomic.Int64
	// paused mirrors the read side's hold for the worker, and heldAt is
	// when the last hold ended: a connection whose input the broker holds
	// cannot return credit (its pongs wait too), so it is neither counted
	// as behind nor cut for it meanwhile, nor until its pongs have had
	// time to arrive.
	paused atomic.Bool
	heldAt atomic.Int64
	// variant is the log encoding it reads (logVariant).
	variant int
	joined  int64 // clock value when it joined the table: lag counts from then
	// want selects the log events this connection receives; nil means
	// every untargeted event (no filter, not a backend, or anonymous).
	want eventlog.Want
}

// start places the cursor at head with nothing written yet, so nothing
// unread.
func (c *cursor) start(head uint64) {
	c.next = head
	c.ackSeq.Store(head)
}

// owes reports an unanswered credit ping.
func (c *cursor) owes() bool { return c.acked.Load() != c.pinged }

// unread is the oldest event the client may not have read yet:
// everything up to the last answered ping is read; if that was the last
// ping, the few bytes since (under a quarter window) count as read too.
func (c *cursor) unread() uint64 {
	if c.owes() {
		return c.ackSeq.Load()
	}
	return c.next
}

// stalled reports that it owes a pong and has never returned credit, or
// has owed it for longer than stall and than stallGaps of its usual
// pong lag (at most most: half of max-lag, so that a client that reads a
// little and then stops loses its vote within that whatever its
// history). Only a pong for a ping the broker sent counts (see
// creditTag), so this cannot be faked without reading.
func (c *cursor) stalled(now, stall, most int64) bool {
	if !c.owes() {
		return false
	}
	last := c.lastAck.Load()
	if last == 0 {
		return true // never read: no vote from its first ping on
	}
	owed := now - max(last, c.oweSince.Load())
	return owed > max(stall, min(stallGaps*c.pongLag.Load(), most))
}

// stallGaps: a connection that has returned credit before is stalled
// only after owing a pong for this many times as long as it usually does
// (and at least stallAfter, at most half of max-lag).
const stallGaps = 4

// pinging records, before a credit ping goes out, when a pong became
// owed if none was (see oweSince). Worker only.
func (c *cursor) pinging(now int64) {
	if c.acked.Load() == c.pinged {
		c.oweSince.Store(now)
	}
}

// recentlyHeld reports whether the broker holds the connection's input
// now, or did within half of maxLag (see paused).
func (c *cursor) recentlyHeld(now int64, maxLag time.Duration) bool {
	return c.paused.Load() || now-c.heldAt.Load() < int64(maxLag/2)
}

// credit is what may be written now: the window less what is written
// and not yet confirmed read.
func (c *cursor) credit(window int64) int64 {
	return window - (c.sent.Load() - c.acked.Load())
}

// deflated reports that it reads the log's deflated frames.
func (c *cursor) deflated() bool { return c.variant >= logDeflate }

// answers reports whether a pong at pos can return credit: it is beyond
// what was already confirmed and not beyond what was written.
func (c *cursor) answers(pos int64) bool {
	return pos <= c.sent.Load() && pos > c.acked.Load()
}

// ack takes the credit of an authenticated pong (see hub.pong): the
// client has read pos bytes, up to the cursor seq. It reports whether the
// worker was waiting for credit and must be woken. Called by one
// goroutine at a time (the connection's poller), so load-then-store in
// answers cannot go back.
func (c *cursor) ack(pos int64, seq uint64, now int64) (wake bool) {
	// How long this pong was owed: since the last one, or since the ping
	// that made one owed after none was (a quiet spell is not lag).
	owed := now - max(c.lastAck.Load(), c.oweSince.Load())
	c.ackSeq.Store(seq)
	c.acked.Store(pos)
	// Smoothed over about four pongs; a longer lag counts at once (a
	// reader slowing down keeps its vote), a shorter one slowly.
	if was := c.pongLag.Load(); owed > was {
		c.pongLag.Store(owed)
	} else {
		c.pongLag.Store(was - (was-owed)/4)
	}
	c.lastAck.Store(now)
	return c.starved.Swap(false)
}
