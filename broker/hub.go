package broker

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webinate/broker/eventlog"
	"github.com/webinate/broker/internal/monoclock"
)

// hub is the sharded subscriber table in front of the shared event log.
//
// Every event is framed once and appended once to one log for the whole
// node (not one per shard): one order for every connection, one copy of the
// bytes, and one sequence of numbers that a client can later resume from.
// A connection holds only a cursor into the log; each shard's worker walks
// its connections and copies, for each one, at most its credit window of
// log bytes to the socket. A connection that is behind costs nothing but
// that window, wherever the backlog is.
//
// Structure: a shard's table holds members, each a *cursor (cursor.go: the
// position, the credit account and the hold state the worker and the pong
// handler share) and the sink its bytes go out through (a *conn; a fake in
// hub_test.go). The policy below lives here and in cursor's methods; it
// reads time only through hub.clock and touches the socket only through
// sink, so tests run passes directly (shard.pass) with simulated time.
//
// Credit: the worker follows each quarter window of data it writes with a
// ping whose payload names the byte position and sequence number reached.
// The client's pong, which it can only send once it has read everything
// before the ping, returns the credit. So the bytes written but not yet
// read by the client (in nbio, in both kernels' buffers) stay within the
// window, and how far behind a client is, in time, is known exactly. Pongs
// are answered by every conforming client (RFC 6455 section 5.5.2), browsers
// included.
//
// Lock order: shard.mu is taken alone (but for hub.varMu, taken under it
// and taking nothing), and never held across a socket
// write: a worker copies its connection list under the read lock and
// writes without it, so a write that fails and makes nbio close the socket
// (whose close callback takes shard.mu for writing) cannot deadlock a shard.
type hub struct {
	shards []*shard
	log    *eventlog.Log
	fo     fanout
	count  atomic.Int64 // connections in the table
	// drainSeq, once set, is the cursor at which each connection gets its
	// 1001, not before drainStart plus its share of drainPeriod (see
	// beginDrain). The two durations are set before drainSeq.
	drainSeq    atomic.Uint64
	drainStart  int64
	drainPeriod int64
	// varConns[k] counts the connections that read log variant k (see
	// logVariant): while there are any, the log stores that variant
	// (eventlog SetVariant). Changed under varMu (useVariant), so that a
	// connection leaving in one shard and another joining in the next
	// cannot turn the variant off for the one that stays.
	varMu    sync.Mutex
	varConns [4]atomic.Int64
	stats    *stats
	wg       sync.WaitGroup

	// clock is the hub's time (monoclock.Now): event times, lag, stalls and
	// drain turns are all read from it, so tests can drive it.
	clock func() int64
	// creditKey keys the tags of credit pings (creditTag): random per
	// process, never sent.
	creditKey [16]byte

	// progress is closed at the end of each pass, for waiting publishers.
	progMu   sync.Mutex
	progress chan struct{}
}

// fanout is the part of Config the workers use. The lag bounds change
// on Reload (reload.go), hence the atomics.
type fanout struct {
	window     int64           // credit per connection, bytes
	maxLag     *atomicDuration // a connection further behind is a slow consumer
	publishLag *atomicDuration // publishers wait while most connections are further behind
	linger     time.Duration
	tick       time.Duration // passes happen at least this often
}

// sink is what the shard worker writes a connection's log bytes through:
// *conn, or a test's fake. The worker reaches the socket only through it,
// and the cursor only directly.
type sink interface {
	// write hands whole frames to the socket (which copies them): false
	// once it is closing or the write failed.
	write(b []byte) bool
	// pending is the output written but not yet taken by the kernel.
	pending() int64
	// isClosing reports a close frame sent or the socket going.
	isClosing() bool
	// closeSlow closes it as a slow consumer, for why (stats, logs).
	closeSlow(why string)
	// closeShutdown closes it with 1001 and text as the reason.
	closeShutdown(text string)
}

// member is one connection in a shard's table: its cursor, and the sink
// its bytes go out through.
type member struct {
	cur *cursor
	out sink
}

// shard is one slice of the table.
type shard struct {
	h *hub

	mu    sync.RWMutex
	conns []member // every connection; cursor.idx is its position

	wake chan struct{}
	stop chan struct{}

	// Published by each pass for publishers (saturated), drain and stats.
	// The vote (voters, behind, low) counts only the audience: live
	// connections that are neither held nor stalled (see pass).
	voters  atomic.Int64 // the audience
	behind  atomic.Int64 // ... of which more than publishLag behind
	stalled atomic.Int64 // live connections out of the vote: stalled
	// deciles[k] is the log position (eventlog Pos) of the audience's
	// cursor at rank k/10 of its voters, 0 when that event is gone: what
	// saturated counts voters the fan-out has not caught up with from,
	// across shards. lowRate measures how fast deciles[1], the slowest
	// tenth, advances: log bytes per second, which sizes the lead.
	deciles  [audienceShare]atomic.Int64
	lowRate  rateMeter
	buffered atomic.Int64 // bytes its connections hold in nbio

	// Worker-only scratch, reused across passes.
	list    []member
	runs    [][]byte
	buf     []byte
	slow    []sink
	why     []string
	nexts   []uint64
	scratch []byte // seq frames built for events the log has none for
}

// testHookWrite, when set by a test, runs before each pass that has
// events to write; it lets tests make a pass slow on purpose.
var testHookWrite atomic.Pointer[func()]

// item is one validated event for the log.
type item struct {
	frame []byte
	user  string // non-empty: targeted to this user's connections (and backends)
	etype uint8  // event type, for connection filters; 0 = not a server event
}

// newHub builds the table of n shards in front of lg; key keys the
// credit tags (creditTag).
func newHub(n int, lg *eventlog.Log, fo fanout, st *stats, key [16]byte) *hub {
	h := &hub{log: lg, fo: fo, stats: st, clock: monoclock.Now, creditKey: key}
	h.shards = make([]*shard, n)
	for i := range h.shards {
		h.shards[i] = &shard{h: h, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	}
	return h
}

// start launches one worker per shard.
func (h *hub) start() {
	for _, s := range h.shards {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			s.run()
		}()
	}
}

// stop ends the workers after their current pass.
func (h *hub) stop() {
	for _, s := range h.shards {
		close(s.stop)
	}
	h.wg.Wait()
}

// shardOf is fixed by the connection id, so add and remove agree on it
// without shared state.
func (h *hub) shardOf(id uint64) *shard { return h.shards[id%uint64(len(h.shards))] }

// addWith puts c in its shard with its cursor at the log's head. first runs
// under the shard's write lock before c becomes visible to fan-out; if it
// reports false, c is not added. limit, when positive, caps the table: the
// check and the count happen under the same lock as the add.
func (h *hub) addWith(c *conn, limit int64, first func() bool) (added, full bool) {
	s := h.shardOf(c.id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gone.Load() {
		return false, false
	}
	// Counted before first() sends the 101: a client that has it may ask
	// /healthz at once. Add then compare, so concurrent upgrades in other
	// shards cannot all slip under the cap.
	if n := h.count.Add(1); limit > 0 && n > limit {
		h.count.Add(-1)
		return false, true
	}
	// The cursor starts at the head, and the log stores the variant it
	// reads, before the 101 goes out: every event published after the
	// client saw 101 reaches it, and in its encoding (deflated, if it
	// negotiated that).
	h.useVariant(c.variant, 1)
	c.start(h.log.Head())
	if !first() {
		h.useVariant(c.variant, -1)
		h.count.Add(-1)
		return false, false
	}
	s.insert(&c.cursor, c)
	return true, false
}

// insert puts cur, written through out, at the end of the table. Called
// with s.mu held for writing, the connection counted in hub.count and in
// useVariant.
func (s *shard) insert(cur *cursor, out sink) {
	cur.idx = len(s.conns)
	s.conns = append(s.conns, member{cur, out})
}

// useVariant counts delta connections that read log variant v, and has
// the log store it while any do.
func (h *hub) useVariant(v int, delta int64) {
	if v == logPlain {
		return
	}
	h.varMu.Lock()
	defer h.varMu.Unlock()
	switch n := h.varConns[v].Add(delta); {
	case delta > 0 && n == delta:
		h.log.SetVariant(v, true)
	case delta < 0 && n == 0:
		h.log.SetVariant(v, false)
	}
}

// compressedCount is the connections in the table that negotiated
// permessage-deflate.
func (h *hub) compressedCount() int64 {
	return h.varConns[logDeflate].Load() + h.varConns[logDeflateSeq].Load()
}

// remove takes c out of the table; it reports false if c was not in it.
func (h *hub) remove(c *conn) bool {
	s := h.shardOf(c.id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.idx < 0 || c.idx >= len(s.conns) || s.conns[c.idx].cur != &c.cursor {
		return false
	}
	last := len(s.conns) - 1
	s.conns[c.idx] = s.conns[last]
	s.conns[c.idx].cur.idx = c.idx
	s.conns[last] = member{}
	s.conns = s.conns[:last]
	c.idx = -1
	h.useVariant(c.variant, -1)
	h.count.Add(-1)
	return true
}

// without removes c from l in place (order kept: lists are short).
func without(l []*conn, c *conn) []*conn {
	for i, x := range l {
		if x == c {
			copy(l[i:], l[i+1:])
			l[len(l)-1] = nil
			return l[:len(l)-1]
		}
	}
	return l
}

// broadcast appends items to the log back to back, so one publish request
// stays contiguous and in order for every connection, and wakes the
// workers. It never waits on a socket. It returns the first item's
// sequence number.
func (h *hub) broadcast(items ...item) uint64 {
	seq := h.log.Append(h.clock(), logEvents(items)...)
	h.stats.eventsPublished.Add(int64(len(items)))
	h.wakeAll()
	return seq
}

// broadcastAt is broadcast for events numbered by a cluster's stream (see
// Bus): the first item gets seq. A seq below the log's head is refused
// with eventlog.ErrSeqBehind, so a redelivery is never appended twice.
func (h *hub) broadcastAt(seq uint64, items ...item) error {
	if err := h.log.AppendAt(h.clock(), seq, logEvents(items)...); err != nil {
		return err
	}
	h.stats.eventsPublished.Add(int64(len(items)))
	h.wakeAll()
	return nil
}

// logEvents describes items for the event log.
func logEvents(items []item) []eventlog.Event {
	evs := make([]eventlog.Event, len(items))
	for i, it := range items {
		evs[i] = eventlog.Event{Frame: it.frame, Type: it.etype, User: it.user}
	}
	return evs
}

func (h *hub) wakeAll() {
	for _, s := range h.shards {
		s.signal()
	}
}

// each calls fn for every connection, shard by shard, under the shard's
// read lock. fn must not block or remove connections. Only a server's
// connections are visited (a test's fake sinks are not conns).
func (h *hub) each(fn func(*conn)) {
	for _, s := range h.shards {
		s.mu.RLock()
		for _, m := range s.conns {
			if c, ok := m.out.(*conn); ok {
				fn(c)
			}
		}
		s.mu.RUnlock()
	}
}

// saturated reports whether publishers should wait because the broker's
// audience is not keeping up. The audience is the connections that make
// progress: a connection that owes a pong and has never returned credit,
// or has owed it for longer than stallAfter and than its own usual lag
// allows (cursor.stalled), is stalled and has no vote, so sockets that
// never read, however many, cannot hold a publisher; they are cut at
// max-lag instead. The broker is saturated when more than one in
// audienceShare of the audience is more than publishLag behind in time
// (its client has not read what it was sent): a high quantile of lag,
// not the median, so that a machine that is merely busy paces its publishers
// before a large minority of readers drifts towards max-lag and is cut.
//
// Or when more than one in audienceShare of the audience has not even
// been written the log's head less a lead (the fan-out itself has not
// caught up). That test needs no pass to notice a burst: it compares the
// live head with the cursors of the workers' last passes, so a flood of
// publishers cannot run ahead of the fan-out while a pass is under way,
// which at tens of thousands of connections on a busy machine lasts
// seconds. The count is over the whole audience, from each shard's
// deciles (a lower bound: a shard whose decile k is short counts k tenths
// of its voters, plus one), so one slow reader in a shard of a few does
// not hold anyone. No per-connection work.
func (h *hub) saturated() bool {
	if h.fo.publishLag.Load() <= 0 {
		return false
	}
	var voters, behind int64
	for _, s := range h.shards {
		voters += s.voters.Load()
		behind += s.behind.Load()
	}
	if voters == 0 {
		return false
	}
	if behind*audienceShare > voters {
		return true
	}
	head, _ := h.log.Pos(h.log.Head())
	var short int64
	for _, s := range h.shards {
		n := s.voters.Load()
		if n == 0 {
			continue
		}
		at := head - s.lead()
		for k := audienceShare - 1; k >= 0; k-- {
			if s.deciles[k].Load() < at {
				short += int64(k)*n/audienceShare + 1
				break
			}
		}
	}
	return short*audienceShare > voters
}

// lead is how many bytes of the log publishers may run ahead of what the
// fan-out has written to the shard's audience: what it writes to the
// slowest tenth in a leadShare-th of max-lag at the rate it has been
// advancing (over about a second, in log bytes, so filters, targeted
// events and compressed variants count as the log does), within a
// quarter and one credit window. A window is a fixed size, but its worth
// in time is not: at 16 KiB of 100-byte events it is about 160 events, a
// fraction of a second at a few thousand subscribers and several seconds,
// past max-lag, for the last socket of a 48,000-socket audience on a busy
// machine (BENCHMARKS.md, "readers at overload"). While little is
// published the lead is the quarter window, so a burst larger than that
// waits for one pass.
func (s *shard) lead() int64 {
	w := s.h.fo.window
	lead := int64(s.lowRate.rate() * (s.h.fo.maxLag.Load() / leadShare).Seconds())
	return min(max(lead, w/4), w)
}

// leadShare: publishers may run ahead of the fan-out by what it writes to
// a connection in one leadShare-th of max-lag.
const leadShare = 4

// stalledCount is the connections out of the vote as stalled, as of the
// workers' last passes.
func (h *hub) stalledCount() int64 {
	return h.sumShards(func(s *shard) int64 { return s.stalled.Load() })
}

// sumShards is the sum over the shards of what each counts (f).
func (h *hub) sumShards(f func(*shard) int64) int64 {
	var n int64
	for _, s := range h.shards {
		n += f(s)
	}
	return n
}

// progressed tells waiting publishers that a pass ended.
func (h *hub) progressed() {
	h.progMu.Lock()
	if h.progress != nil {
		close(h.progress)
		h.progress = nil
	}
	h.progMu.Unlock()
}

// progressChan is closed when the next pass ends.
func (h *hub) progressChan() <-chan struct{} {
	h.progMu.Lock()
	defer h.progMu.Unlock()
	if h.progress == nil {
		h.progress = make(chan struct{})
	}
	return h.progress
}

// beginDrain makes every worker close each connection with 1001 once its
// cursor reaches seq (it has been sent every event accepted before the
// drain, and the close frame follows them) and its turn has come: the
// closes are spread over period, each connection at a fixed offset into it
// (drainOffset), so that reconnects reach the other nodes as a ramp and
// not a wall. A connection that never catches up is cut by MaxLag like any
// slow consumer.
func (h *hub) beginDrain(seq uint64, period time.Duration) {
	h.drainStart = h.clock()
	h.drainPeriod = int64(period)
	h.drainSeq.Store(seq) // publishes the two fields above to the workers
	h.wakeAll()
}

// drainOffset is the turn of connection id within the drain period: the
// id scrambled (a multiplicative hash), so that the connections of one
// shard, or those that joined together, do not leave together.
func (h *hub) drainOffset(id uint64) int64 {
	if h.drainPeriod <= 0 {
		return 0
	}
	return int64((id * 0x9E3779B97F4A7C15 >> 11) % uint64(h.drainPeriod))
}

// drainReason is the close reason draining connection id gets: when to
// reconnect, in milliseconds, a different moment for each connection
// within the drain period (PROTOCOL.md, "Shutdown"). A client that
// honours it spreads its reconnect further; one that reconnects at once
// still arrives at its own moment of the ramp.
func (h *hub) drainReason(id uint64) string {
	after := time.Duration(0)
	if h.drainPeriod > 0 {
		after = time.Duration((id * 0xC2B2AE3D27D4EB4F >> 11) % uint64(h.drainPeriod))
	}
	return "server shutting down; reconnect after " + strconv.FormatInt(after.Milliseconds(), 10) + "ms"
}

// buffered is the output the connections hold in nbio's buffers, as of
// the workers' last passes.
func (h *hub) buffered() int64 {
	return h.sumShards(func(s *shard) int64 { return s.buffered.Load() })
}

func (s *shard) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run is the shard worker. A pass starts when an event is appended, when a
// pong returns credit, or on a tick (for lag checks while nothing moves).
// Each pass gives every connection what it has credit for, in as few write
// calls as possible: one per connection per pass, carrying every event
// appended since the previous pass (group commit), with no added delay.
func (s *shard) run() {
	t := time.NewTicker(s.h.fo.tick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.wake:
		case <-t.C:
		}
		if s.h.fo.linger > 0 {
			time.Sleep(s.h.fo.linger)
		}
		s.pass()
	}
}

// pass is one walk over the shard's connections.
func (s *shard) pass() {
	h := s.h
	lg := h.log
	s.mu.RLock()
	s.list = append(s.list[:0], s.conns...)
	s.mu.RUnlock()

	drain := h.drainSeq.Load()
	head := lg.Head()
	tail := lg.Tail()
	now := h.clock()
	maxLag, publishLag := h.fo.maxLag.Load(), h.fo.publishLag.Load()
	stall, most := stallBounds(maxLag, publishLag)
	slowSeq := lg.SeqAfter(now - int64(maxLag))
	behindSeq := uint64(0)
	if publishLag > 0 {
		behindSeq = lg.SeqAfter(now - int64(publishLag))
	}
	if hook := testHookWrite.Load(); hook != nil {
		for _, m := range s.list {
			if m.cur.next < head {
				(*hook)()
				break
			}
		}
	}

	var voters, behind, stalledN, buffered int64
	oldest := head // oldest event this pass writes
	writes, delivered := 0, 0
	slow := s.slow[:0]
	for _, m := range s.list {
		c, out := m.cur, m.out
		if out.isClosing() {
			continue
		}
		buffered += max(out.pending(), 0)
		if c.next < tail {
			slow = append(slow, out) // its next event is gone from the log
			s.why = append(s.why, "fell behind the event log's retention")
			continue
		}
		lagSeq := c.unread()
		stalled := c.stalled(now, stall, most)
		// Lag counts from when the connection joined: a client resuming
		// from old events is not behind for having been away.
		held := c.recentlyHeld(now, maxLag)
		if lagSeq < head && c.joined < now-int64(publishLag) && !held {
			if lagSeq < slowSeq && c.joined < now-int64(maxLag) {
				slow = append(slow, out)
				s.why = append(s.why, "unread events older than max-lag")
				continue
			}
			if lagSeq < behindSeq && !stalled {
				behind++
			}
		}
		if c.next < head {
			oldest = min(oldest, c.next)
			w, d := s.feed(c, out, head)
			writes += w
			delivered += d
		}
		if drain > 0 && c.next >= drain && now >= h.drainStart+h.drainOffset(c.id) {
			out.closeShutdown(h.drainReason(c.id))
			continue
		}
		switch {
		case held || out.isClosing():
		case stalled:
			stalledN++
		default:
			voters++
			s.nexts = append(s.nexts, c.next)
		}
	}
	s.voters.Store(voters)
	s.behind.Store(behind)
	s.stalled.Store(stalledN)
	if n := len(s.nexts); n > 0 {
		slices.Sort(s.nexts)
		for k := range s.deciles {
			pos, _ := lg.Pos(s.nexts[k*n/audienceShare]) // 0 if gone
			s.deciles[k].Store(pos)
		}
		s.lowRate.observe(h.clock(), s.deciles[1].Load())
		s.nexts = s.nexts[:0]
	}
	s.buffered.Store(buffered)
	h.stats.writes.Add(int64(writes))
	h.stats.deliveries.Add(int64(delivered))
	h.progressed()
	if delivered > 0 {
		if t, ok := lg.Time(oldest); ok {
			h.stats.fanoutLatency.Observe(float64(h.clock()-t) / 1e9)
		}
	}
	for i, out := range slow {
		out.closeSlow(s.why[i])
	}
	clear(slow)
	s.why = s.why[:0]
	s.slow = slow[:0]
	clear(s.list)
	if cap(s.buf) > 1<<20 {
		s.buf = nil // do not pin a burst-sized buffer forever
	}
}

// audienceShare: publishers wait while more than one in this many of the
// audience is behind (see saturated).
const audienceShare = 10

// stallAfter is how long any connection may owe a pong before it is
// stalled and loses its vote: long enough that a reader on a busy
// machine, whose pongs come late, keeps its vote; a socket that has never
// answered a credit ping has none from the start, and one whose pongs
// usually come later keeps it longer (cursor.stalled).
func stallAfter(maxLag, publishLag time.Duration) time.Duration {
	return max(maxLag/4, 4*publishLag)
}

// stallBounds is the pass's arguments to cursor.stalled: stallAfter, and
// the most a slow reader's own lag can extend it to, half of max-lag.
func stallBounds(maxLag, publishLag time.Duration) (stall, most int64) {
	return int64(stallAfter(maxLag, publishLag)), int64(maxLag / 2)
}

// pingPayloadLen is the size of the credit ping's payload: a marker, the
// data position and the cursor reached when it was sent, and their tag
// (see creditTag).
const pingPayloadLen = 25

const pingMarker = 'b'

// creditTag authenticates a credit ping's position and cursor for one
// connection, so that only a pong echoing a ping the broker sent returns
// credit: a client that reads nothing cannot buy credit by guessing a
// position (it would be buffered for without bound and never look behind).
// The tag is SHA-256 over the server's random key followed by fixed-length
// fields, truncated to 64 bits: with a fixed length there is no length
// extension, and one 64-byte block costs a few hundred nanoseconds, once
// per quarter window written.
func (h *hub) creditTag(id uint64, pos int64, seq uint64) uint64 {
	var b [len(h.creditKey) + 24]byte
	n := copy(b[:], h.creditKey[:])
	binary.BigEndian.PutUint64(b[n:], id)
	binary.BigEndian.PutUint64(b[n+8:], uint64(pos))
	binary.BigEndian.PutUint64(b[n+16:], seq)
	sum := sha256.Sum256(b[:])
	return binary.BigEndian.Uint64(sum[:8])
}

// pong takes the credit a pong payload p returns to c (see hub) and wakes
// its worker if it was waiting for it. Pongs that do not answer a credit
// ping this connection was sent (the keepalive's, unsolicited, forged: the
// tag does not match) and stale positions are ignored. Called from the
// connection's poller only.
func (h *hub) pong(c *cursor, p []byte) {
	if len(p) != pingPayloadLen || p[0] != pingMarker {
		return
	}
	pos := int64(binary.BigEndian.Uint64(p[1:9]))
	seq := binary.BigEndian.Uint64(p[9:17])
	if !c.answers(pos) {
		return
	}
	if binary.BigEndian.Uint64(p[17:25]) != h.creditTag(c.id, pos, seq) {
		h.stats.forgedPongs.Add(1)
		return
	}
	if c.ack(pos, seq, h.clock()) {
		h.shardOf(c.id).signal()
	}
}

// feed writes to c, through out, what its credit allows, up to head. It
// returns the write calls made and the events delivered.
func (s *shard) feed(c *cursor, out sink, head uint64) (writes, delivered int) {
	window := s.h.fo.window
	for c.next < head {
		// What nbio still holds for this socket is bounded apart from
		// credit: credit keeps it under one window for any client that
		// answers pings, so only a client the broker cannot account for
		// reaches this, and it waits, without a wake-up, for a later pass.
		if out.pending() >= 2*window {
			return writes, delivered
		}
		budget := c.credit(window)
		// Wait for a quarter window of credit: many small writes cost
		// more than a few full ones, and the client is busy reading
		// anyway. The pong that returns the credit wakes this shard.
		if budget < window/4 {
			// Flag first, then look again: either this load sees the
			// pong's credit or the pong sees the flag (both are
			// sequentially consistent atomics).
			c.starved.Store(true)
			budget = c.credit(window)
			if budget < window/4 {
				return writes, delivered
			}
			c.starved.Store(false)
		}
		w, d, ok := s.write(c, out, budget)
		writes += w
		delivered += d
		if !ok {
			break
		}
	}
	return writes, delivered
}

// write sends c, through out, one batch of log events within budget
// bytes, followed by a credit ping when a quarter window has gone out
// since the last one.
func (s *shard) write(c *cursor, out sink, budget int64) (writes, delivered int, ok bool) {
	window := s.h.fo.window
	var runs [][]byte
	var next uint64
	var n, plain int
	if c.variant != logPlain {
		runs, s.scratch, next, n, plain = s.h.log.ReadVariant(c.variant, c.next, int(budget), c.want, s.runs[:0], s.scratch)
	} else {
		runs, next, n = s.h.log.Read(c.next, int(budget), c.want, s.runs[:0])
	}
	s.runs = runs[:0]
	if n == 0 {
		ok = next != c.next // only events it does not want; or not retained
		c.next = next
		return 0, 0, ok
	}
	size := 0
	for _, r := range runs {
		size += len(r)
	}
	if c.deflated() {
		s.h.stats.deflateWire.Add(int64(size))
		s.h.stats.deflatePlain.Add(int64(plain))
	}
	sent := c.sent.Load() + int64(size)
	ping := sent-c.pinged >= window/4
	b := runs[0]
	if len(runs) > 1 || ping {
		// One write call: copy the runs (and the ping) into one buffer.
		b = s.buf[:0]
		for _, r := range runs {
			b = append(b, r...)
		}
		if ping {
			var p [pingPayloadLen]byte
			p[0] = pingMarker
			binary.BigEndian.PutUint64(p[1:9], uint64(sent))
			binary.BigEndian.PutUint64(p[9:17], next)
			binary.BigEndian.PutUint64(p[17:25], s.h.creditTag(c.id, sent, next))
			b = appendFrame(b, opPing, p[:])
		}
		s.buf = b
	}
	clear(runs)
	c.next = next
	c.sent.Store(sent)
	if ping {
		c.pinging(s.h.clock())
		c.pinged = sent
	}
	if !out.write(b) {
		return 1, 0, false
	}
	return 1, n, true
}
