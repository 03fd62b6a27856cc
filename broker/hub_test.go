package broker

import (
	"encoding/binary"
	"strconv"
	"testing"
	"time"

	"github.com/webinate/broker/eventlog"
	"github.com/webinate/broker/wsframe"
)

// Hub tests: the flow policy (credit, the audience vote, max-lag, drain,
// the pending bound) driven directly, with an event log, fake connections
// behind the sink interface and a simulated clock. Passes run in the test
// goroutine; no worker, socket or timer is involved, so thousands of
// connections take milliseconds and no outcome depends on the machine's
// speed.

// testHub is a hub over a fresh event log with a clock the test moves.
type testHub struct {
	*hub
	now int64
}

// newTestHub builds a hub of shards shards with the given credit window
// and lag bounds. Its clock starts at clockOrigin and moves only by
// advance.
func newTestHub(shards int, window int64, maxLag, publishLag time.Duration) *testHub {
	lg := eventlog.New(eventlog.Config{MaxBytes: 64 << 20})
	st := &stats{fanoutLatency: newFanoutLatency()}
	th := &testHub{now: clockOrigin}
	th.hub = newHub(shards, lg, fanout{
		window:     window,
		maxLag:     newAtomicDuration(maxLag),
		publishLag: newAtomicDuration(publishLag),
		tick:       passTick(maxLag, publishLag),
	}, st, [16]byte{1, 2, 3})
	th.clock = func() int64 { return th.now }
	return th
}

func (th *testHub) advance(d time.Duration) { th.now += int64(d) }

// passAll runs one pass of every shard.
func (th *testHub) passAll() {
	for _, s := range th.shards {
		s.pass()
	}
}

// publish appends n events, numbered from first, each a text frame of
// size bytes at least whose payload starts with its number.
func (th *testHub) publish(first, n, size int) {
	items := make([]item, n)
	for i := range items {
		p := strconv.AppendInt(nil, int64(first+i), 10)
		for len(p) < size {
			p = append(p, ' ')
		}
		items[i] = item{frame: appendFrame(nil, opText, p)}
	}
	th.broadcast(items...)
}

// fakeConn is a connection for hub tests: a cursor behind a sink that
// records what the worker writes. read plays the client: it takes the
// frames written since the last read, checks that the events arrive in
// order, and answers the credit pings among them through the pong path
// (hub.pong), as a client's WebSocket library would, or with a forged tag.
type fakeConn struct {
	cursor
	th *testHub

	buf      []byte // written, not yet read
	events   int    // events read; the next must carry this number
	anyOrder bool   // the events are not numbered
	bad      string // the first fault seen by write or read
	pend     int64  // what pending reports (nbio's backlog)
	forge    bool   // answer pings with a wrong tag
	closing  bool
	slowWhy  string // closeSlow's reason
	shutdown string // closeShutdown's reason
	closedAt int64  // the clock at the close
}

func (f *fakeConn) write(b []byte) bool {
	if f.closing {
		return false
	}
	// Credit: what is written and not yet confirmed read stays within
	// the window (sent already counts b).
	if w := f.th.fo.window; f.sent.Load()-f.acked.Load() > w && f.bad == "" {
		f.bad = "written beyond the credit window"
	}
	f.buf = append(f.buf, b...)
	return true
}

func (f *fakeConn) pending() int64  { return f.pend }
func (f *fakeConn) isClosing() bool { return f.closing }

func (f *fakeConn) closeSlow(why string) {
	if !f.closing {
		f.closing, f.slowWhy, f.closedAt = true, why, f.th.now
	}
}

func (f *fakeConn) closeShutdown(text string) {
	if !f.closing {
		f.closing, f.shutdown, f.closedAt = true, text, f.th.now
	}
}

// read consumes everything written so far. It allocates nothing, so that
// the allocation test and the benchmark measure the pass.
func (f *fakeConn) read() {
	b := f.buf
	for len(b) > 0 {
		h, n, err := wsframe.FromServer.ParseHeader(b)
		if err != nil || uint64(len(b)-n) < h.Length {
			f.fault("a partial or invalid frame was written")
			break
		}
		p := b[n : n+int(h.Length)]
		b = b[n+int(h.Length):]
		switch h.Op {
		case opText:
			if got := leadingInt(p); got != f.events && !f.anyOrder {
				f.fault("event out of order")
			}
			f.events++
		case opPing:
			if f.forge {
				var q [pingPayloadLen]byte
				copy(q[:], p)
				q[24] ^= 1 // the position and cursor echoed, the tag wrong
				f.th.pong(&f.cursor, q[:])
				// And a guess: a position far ahead, with no tag at all.
				binary.BigEndian.PutUint64(q[1:9], 1<<40)
				f.th.pong(&f.cursor, q[:])
				continue
			}
			f.th.pong(&f.cursor, p)
		default:
			f.fault("unexpected opcode")
		}
	}
	f.buf = f.buf[:0]
}

func (f *fakeConn) fault(why string) {
	if f.bad == "" {
		f.bad = why
	}
}

// leadingInt is the decimal number at the start of p.
func leadingInt(p []byte) int {
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// join adds n fake connections with ids from 1, joined now, their cursors
// at the head, as addWith does for a conn.
func (th *testHub) join(n int) []*fakeConn {
	fs := make([]*fakeConn, n)
	for i := range fs {
		f := &fakeConn{th: th}
		f.id = uint64(i + 1)
		f.joined = th.now
		s := th.shardOf(f.id)
		s.mu.Lock()
		th.count.Add(1)
		f.start(th.log.Head())
		th.useVariant(f.variant, 1)
		s.insert(&f.cursor, f)
		s.mu.Unlock()
		fs[i] = f
	}
	return fs
}

// readAll has every fake in fs that is still open read.
func readAll(fs []*fakeConn) {
	for _, f := range fs {
		if !f.closing {
			f.read()
		}
	}
}

func checkFaults(t testing.TB, fs []*fakeConn) {
	t.Helper()
	for _, f := range fs {
		if f.bad != "" {
			t.Fatalf("conn %d: %s", f.id, f.bad)
		}
	}
}

// Readers get every event, in order, never more than their window ahead
// of what they confirmed; a burst many windows long goes out in steps of
// credit, each returned by the readers' pongs.
func TestHubReadersGetEveryEventInOrder(t *testing.T) {
	const conns, events = 3000, 400
	const window = 4096
	th := newTestHub(4, window, 10*time.Second, time.Second)
	fs := th.join(conns)
	th.publish(0, events, 100) // ~10 windows
	for round := 0; round < 100; round++ {
		th.passAll()
		if round == 0 {
			// Before any pong, no reader was written more than its window.
			for _, f := range fs {
				if len(f.buf) > window+64 {
					t.Fatalf("conn %d: %d bytes before any credit returned", f.id, len(f.buf))
				}
			}
		}
		readAll(fs)
		if fs[0].events == events && fs[conns-1].events == events {
			break
		}
	}
	checkFaults(t, fs)
	for _, f := range fs {
		if f.events != events {
			t.Fatalf("conn %d read %d events, want %d", f.id, f.events, events)
		}
		if f.closing {
			t.Fatalf("conn %d closed: %s", f.id, f.slowWhy)
		}
	}
	if th.saturated() {
		t.Fatal("saturated with every reader caught up")
	}
}

// A majority of sockets that never read is stalled: it has no vote, so
// publishers are not held for it, and it is cut at max-lag while the
// readers keep up.
func TestHubStalledMajorityIsNotSaturated(t *testing.T) {
	const conns = 2000
	const window = 4096
	const maxLag, publishLag = 4 * time.Second, 100 * time.Millisecond
	th := newTestHub(4, window, maxLag, publishLag)
	fs := th.join(conns)
	readers := fs[:conns/10]
	step := 50 * time.Millisecond
	n := 0
	for th.now-clockOrigin < int64(maxLag-time.Second) {
		th.publish(n, 1, 300)
		n++
		th.advance(step)
		th.passAll()
		readAll(readers)
		if th.saturated() {
			t.Fatalf("saturated at %v by a never-reading majority", time.Duration(th.now-clockOrigin))
		}
	}
	if got := th.stalledCount(); got != conns-int64(len(readers)) {
		t.Fatalf("%d stalled, want %d", got, conns-len(readers))
	}
	// Past max-lag: every non-reader is cut, no reader is.
	for th.now-clockOrigin < int64(maxLag+time.Second) {
		th.publish(n, 1, 300)
		n++
		th.advance(step)
		th.passAll()
		readAll(readers)
	}
	checkFaults(t, readers)
	for i, f := range fs {
		switch {
		case i < len(readers) && (f.closing || f.events != n):
			t.Fatalf("reader %d: closing %v (%s), %d of %d events", f.id, f.closing, f.slowWhy, f.events, n)
		case i >= len(readers) && f.slowWhy != "unread events older than max-lag":
			t.Fatalf("non-reader %d: closed %v for %q, want a max-lag cut", f.id, f.closing, f.slowWhy)
		}
	}
}

// Pongs that do not echo a ping the broker sent, a wrong tag or a guessed
// position, return no credit: the forger gets one window and is cut at
// max-lag like a socket that never reads.
func TestHubForgedPongsBuyNoCredit(t *testing.T) {
	const conns = 1000
	const window = 4096
	const maxLag = 2 * time.Second
	th := newTestHub(2, window, maxLag, 100*time.Millisecond)
	fs := th.join(conns)
	forgers := fs[conns/2:]
	for _, f := range forgers {
		f.forge = true
	}
	n := 0
	for th.now-clockOrigin <= int64(maxLag+time.Second) {
		th.publish(n, 1, 300)
		n++
		th.advance(50 * time.Millisecond)
		th.passAll()
		readAll(fs)
		for _, f := range forgers {
			if f.acked.Load() != 0 {
				t.Fatalf("forger %d was credited %d bytes", f.id, f.acked.Load())
			}
		}
	}
	checkFaults(t, fs)
	if th.stats.forgedPongs.Load() == 0 {
		t.Fatal("no forged pong counted")
	}
	for _, f := range fs[:conns/2] {
		if f.closing || f.events != n {
			t.Fatalf("reader %d: closing %v, %d of %d events", f.id, f.closing, f.events, n)
		}
	}
	for _, f := range forgers {
		if f.slowWhy != "unread events older than max-lag" {
			t.Fatalf("forger %d: closed for %q, want a max-lag cut", f.id, f.slowWhy)
		}
		if f.sent.Load() > window {
			t.Fatalf("forger %d was sent %d bytes, over the window", f.id, f.sent.Load())
		}
	}
}

// Readers that return credit, but late, count in the vote: more than one
// in ten of the audience more than publishLag behind makes the hub
// saturated; fewer does not.
func TestHubBehindReadersSaturate(t *testing.T) {
	for _, tc := range []struct {
		late int // per 1000
		want bool
	}{{50, false}, {80, false}, {150, true}, {400, true}} {
		t.Run(strconv.Itoa(tc.late), func(t *testing.T) {
			const conns = 1000
			const publishLag = 100 * time.Millisecond
			// Events over a quarter window: every write carries a ping.
			th := newTestHub(4, 4096, 10*time.Second, publishLag)
			fs := th.join(conns)
			n := 0
			step := func(readers []*fakeConn) {
				th.publish(n, 1, 1100)
				n++
				th.advance(25 * time.Millisecond)
				th.passAll()
				readAll(readers)
			}
			// Everyone reads: all vote, none is behind.
			for i := 0; i < 10; i++ {
				step(fs)
				if th.saturated() {
					t.Fatal("saturated while everyone reads")
				}
			}
			// The late ones stop answering for a while, well short of the
			// stall time (they keep their vote), longer than publishLag.
			for i := 0; i < 8; i++ {
				step(fs[tc.late:])
			}
			if got := th.stalledCount(); got != 0 {
				t.Fatalf("%d stalled; late readers must keep their vote", got)
			}
			if got := th.saturated(); got != tc.want {
				t.Fatalf("%d of %d late: saturated %v, want %v", tc.late, conns, got, tc.want)
			}
			// They catch up: not saturated any more.
			for i := 0; i < 20; i++ {
				step(fs)
			}
			checkFaults(t, fs)
			if th.saturated() {
				t.Fatal("still saturated once the late readers caught up")
			}
		})
	}
}

// The fan-out's own progress: a burst beyond what the slowest tenth of
// the audience has been written saturates before any pass has seen it;
// a minority under one in ten that has not been written does not.
func TestHubSlowTenthCursor(t *testing.T) {
	const conns = 1000
	const window = 4096
	th := newTestHub(4, window, 10*time.Second, 100*time.Millisecond)
	fs := th.join(conns)
	// A first credit ping answered by all: they vote.
	th.publish(0, 4, 300)
	th.passAll()
	readAll(fs)
	if th.saturated() {
		t.Fatal("saturated at rest")
	}
	// A burst of three windows: saturated before any pass has seen it.
	th.publish(4, 40, 300)
	if !th.saturated() {
		t.Fatal("not saturated by a burst beyond the audience's cursors")
	}
	// A fifth of the audience reads nothing more: it keeps its vote (it
	// returned credit, the clock stands) and its cursor stops a window in.
	waiting := conns / 5
	for i := 0; i < 10; i++ {
		th.passAll()
		readAll(fs[waiting:])
	}
	if th.stalledCount() != 0 {
		t.Fatalf("%d stalled with the clock standing", th.stalledCount())
	}
	if !th.saturated() {
		t.Fatal("not saturated with a fifth of the audience windows behind")
	}
	// With only one in twenty waiting, the slow tenth is at the head.
	for i := 0; i < 10; i++ {
		th.passAll()
		readAll(fs[conns/20:])
	}
	if th.saturated() {
		t.Fatal("saturated with one in twenty behind")
	}
	checkFaults(t, fs)
}

// How far publishers may run ahead of the fan-out is a time, not a
// window: the bytes the fan-out writes to a connection in a quarter of
// max-lag at the rate it has been delivering. At 24 KiB/s (a quarter of
// max-lag: 1 s) a burst of 40 KiB saturates though it is under the 64 KiB
// window and over the quarter-window floor; at 100 KiB/s the same burst
// does not. Before, the bound was one window at any rate, seconds past
// max-lag for the last sockets of 48,000 (BENCHMARKS.md).
func TestHubLeadIsTimeNotWindow(t *testing.T) {
	const conns = 100
	const window = 64 << 10
	maxLag := 4 * time.Second
	th := newTestHub(2, window, maxLag, 100*time.Millisecond)
	fs := th.join(conns)
	next := 0
	steady := func(perStep int) { // 12 steps of 100 ms, all read
		for range 12 {
			th.publish(next, perStep, 100)
			next += perStep
			th.passAll()
			readAll(fs)
			th.advance(100 * time.Millisecond)
		}
	}
	frame := len(appendFrame(nil, opText, make([]byte, 100)))
	burst := (40 << 10) / frame
	steady((24 << 10) / 10 / frame) // 24 KiB/s
	th.passAll()
	if th.saturated() {
		t.Fatal("saturated at a steady pace")
	}
	th.publish(next, burst, 100)
	next += burst
	if !th.saturated() {
		t.Fatalf("40 KiB ahead not saturated at 24 KiB/s (leads %d, %d)", th.shards[0].lead(), th.shards[1].lead())
	}
	steady((100 << 10) / 10 / frame) // 100 KiB/s: the lead is the window
	th.passAll()
	readAll(fs)
	th.publish(next, burst, 100)
	if th.saturated() {
		t.Fatalf("40 KiB ahead saturated at 100 KiB/s (leads %d, %d)", th.shards[0].lead(), th.shards[1].lead())
	}
	checkFaults(t, fs)
}

// The slowest tenth is the audience's, not each shard's: on a host with
// many shards and few subscribers, one reader that is behind (on a slow
// link, say, still answering its pings) is one voter of forty and holds
// no publisher, though it is the slowest of its shard; when a fifth of
// them are behind, publishers wait. (Taking each shard's slowest tenth,
// with under ten voters a shard, let one reader anywhere hold everyone.)
func TestHubSlowTenthAcrossShards(t *testing.T) {
	const conns = 40
	const window = 4096
	th := newTestHub(16, window, 10*time.Second, 100*time.Millisecond)
	fs := th.join(conns)
	th.publish(0, 4, 300) // a first ping answered by all: they vote
	th.passAll()
	readAll(fs)
	th.publish(4, 40, 300) // three windows
	for range 10 {
		th.passAll()
		readAll(fs[1:]) // fs[0] reads nothing more; the clock stands
	}
	if th.stalledCount() != 0 {
		t.Fatalf("%d stalled with the clock standing", th.stalledCount())
	}
	if th.saturated() {
		t.Fatal("one reader of forty, windows behind, holds publishers")
	}
	th.publish(44, 40, 300)
	for range 10 {
		th.passAll()
		readAll(fs[conns/5:]) // now a fifth read nothing more
	}
	if !th.saturated() {
		t.Fatal("a fifth of the audience windows behind holds no publisher")
	}
	checkFaults(t, fs)
}

// A reader that is slow but keeps reading (a client machine busy for
// seconds at a time) keeps its vote while it owes a pong for up to
// stallGaps of its usual pong lag, at most half of max-lag; a socket that
// stops reading is stalled after that, and one that never read is
// stalled from its first unanswered ping. A quiet spell is not lag: the
// first ping after one is owed from when it was sent.
func TestHubSlowReaderKeepsVote(t *testing.T) {
	const window = 4096
	maxLag, publishLag := 10*time.Second, 100*time.Millisecond
	stall, most := stallBounds(maxLag, publishLag) // 2.5 s, 5 s
	th := newTestHub(1, window, maxLag, publishLag)
	fs := th.join(3)
	slow, quitter, never := fs[0], fs[1], fs[2]
	next := 0
	ping := func() { // a quarter window: one credit ping each
		th.publish(next, 12, 100)
		next += 12
		th.passAll()
	}
	// slow and quitter answer each ping 1 s after it; never answers none.
	for range 6 {
		ping()
		th.advance(time.Second)
		slow.read()
		quitter.read()
	}
	ping()
	if !never.stalled(th.now, stall, most) || slow.stalled(th.now, stall, most) {
		t.Fatal("want only the socket that never read stalled")
	}
	// slow owes 3.9 s: past stallAfter, within four of its 1 s lags.
	th.advance(3900 * time.Millisecond)
	th.passAll()
	if slow.stalled(th.now, stall, most) {
		t.Fatal("a reader whose pongs take 1 s stalled after owing 3.9 s")
	}
	slow.read() // its lag is 3.9 s now
	ping()
	// 4.9 s: within half of max-lag; quitter has owed since 8.8 s ago.
	th.advance(4900 * time.Millisecond)
	th.passAll()
	if slow.stalled(th.now, stall, most) {
		t.Fatal("a reader whose pongs take 3.9 s stalled after owing 4.9 s")
	}
	if !quitter.stalled(th.now, stall, most) {
		t.Fatal("a socket that stopped reading 8.8 s ago is not stalled")
	}
	// Bounded: owing for more than half of max-lag stalls anyone.
	th.advance(200 * time.Millisecond)
	th.passAll()
	if !slow.stalled(th.now, stall, most) {
		t.Fatal("not stalled after owing a pong for more than half of max-lag")
	}
	// A quiet spell: slow reads everything, nothing is published for 30 s,
	// then a ping; it owes from that ping, not from its last pong.
	slow.read()
	th.advance(30 * time.Second)
	ping()
	th.advance(time.Second)
	th.passAll()
	if slow.stalled(th.now, stall, most) {
		t.Fatal("stalled for a quiet spell")
	}
	checkFaults(t, fs[:1])
}

// Drain: each connection gets its 1001 once its cursor reaches the drain
// point and its own turn (drainOffset) has come, so the closes spread over
// the period, each with its own reconnect hint; one that has not been
// sent everything is not closed before it is.
func TestHubDrainTurnsSpread(t *testing.T) {
	const conns = 2000
	const period = time.Second
	const window = 4096
	th := newTestHub(4, window, time.Minute, time.Second)
	fs := th.join(conns)
	th.publish(0, 1, 100)
	th.passAll()
	readAll(fs)
	// One connection has been sent part of a backlog only: it waits for
	// credit, and its 1001 must follow everything before the drain.
	behind := fs[0]
	th.publish(1, 40, 300)
	for i := 0; i < 8; i++ {
		th.passAll()
		readAll(fs[1:])
	}
	th.beginDrain(th.log.Head(), period)
	start := th.now
	tick := period / 20
	closed := map[int64]int{}
	for th.now-start <= int64(period) {
		th.passAll()
		readAll(fs[1:])
		th.advance(tick)
	}
	hints := map[string]bool{}
	for _, f := range fs[1:] {
		if f.shutdown == "" {
			t.Fatalf("conn %d: no 1001 within the drain period (closed %q)", f.id, f.slowWhy)
		}
		if f.events != 41 {
			t.Fatalf("conn %d closed after %d of 41 events", f.id, f.events)
		}
		// Closed at the first pass at or after its turn.
		turn := start + th.drainOffset(f.id)
		if f.closedAt < turn || f.closedAt >= turn+int64(tick) {
			t.Fatalf("conn %d closed at %v, its turn is %v", f.id,
				time.Duration(f.closedAt-start), time.Duration(turn-start))
		}
		if f.shutdown != th.drainReason(f.id) {
			t.Fatalf("conn %d: reason %q, want %q", f.id, f.shutdown, th.drainReason(f.id))
		}
		closed[(f.closedAt-start)/int64(tick)]++
		hints[f.shutdown] = true
	}
	for slot, k := range closed {
		if k > conns/5 {
			t.Fatalf("%d of %d closes in one tick (%d): not spread", k, conns, slot)
		}
	}
	if len(closed) < 15 || len(hints) < 400 {
		t.Fatalf("closes in %d of 21 ticks, %d distinct hints: not spread", len(closed), len(hints))
	}
	if behind.closing {
		t.Fatalf("the connection behind was closed (%q %q) before it was sent everything", behind.shutdown, behind.slowWhy)
	}
	// Once it reads, it gets the rest and then its 1001.
	for i := 0; i < 20 && !behind.closing; i++ {
		behind.read()
		th.passAll()
	}
	behind.read() // what was written before the close frame
	if behind.shutdown == "" || behind.events != 41 {
		t.Fatalf("behind: closed %q after %d of 41 events", behind.shutdown, behind.events)
	}
	checkFaults(t, fs)
}

// The pending bound: a connection whose socket holds two windows unsent
// is written nothing more, whatever its credit, until the backlog drains;
// the others are unaffected.
func TestHubPendingBound(t *testing.T) {
	const window = 4096
	th := newTestHub(1, window, time.Minute, time.Second)
	fs := th.join(100)
	stuck := fs[0]
	stuck.pend = 2 * window
	th.publish(0, 10, 100)
	for i := 0; i < 3; i++ {
		th.passAll()
		readAll(fs)
	}
	if stuck.events != 0 || stuck.sent.Load() != 0 {
		t.Fatalf("written %d bytes (%d events) past the pending bound", stuck.sent.Load(), stuck.events)
	}
	if th.shards[0].buffered.Load() != 2*window {
		t.Fatalf("buffered %d, want the stuck socket's %d", th.shards[0].buffered.Load(), 2*window)
	}
	stuck.pend = 2*window - 1
	th.passAll()
	readAll(fs)
	for _, f := range fs {
		if f.events != 10 {
			t.Fatalf("conn %d read %d of 10 events", f.id, f.events)
		}
	}
	checkFaults(t, fs)
}

// steadyHub is a hub with conns readers in one shard, past their first
// events, for measuring a pass that writes one small event to each.
func steadyHub(conns int) (*testHub, []*fakeConn, []eventlog.Event) {
	th := newTestHub(1, DefaultWriteWindow, time.Minute, time.Second)
	fs := th.join(conns)
	for _, f := range fs {
		f.anyOrder = true
	}
	ev := []eventlog.Event{{Frame: appendFrame(nil, opText, []byte("0 small event"))}}
	for i := 0; i < 1000; i++ { // buffers grown, a credit ping answered
		th.log.Append(th.now, ev...)
		th.passAll()
		readAll(fs)
	}
	return th, fs, ev
}

// steadyPass appends one event, runs the pass that writes it to every
// connection, and has them read it.
func steadyPass(th *testHub, fs []*fakeConn, ev []eventlog.Event) {
	th.log.Append(th.now, ev...)
	th.shards[0].pass()
	readAll(fs)
}

// A steady-state pass allocates nothing: not per connection, not per
// write, not per credit ping.
func TestPassAllocatesNothing(t *testing.T) {
	th, fs, ev := steadyHub(1000)
	if a := testing.AllocsPerRun(200, func() { steadyPass(th, fs, ev) }); a != 0 {
		t.Fatalf("%v allocations per pass, want 0", a)
	}
	for _, f := range fs {
		if f.events != 1201 || f.closing {
			t.Fatalf("conn %d: %d of 1201 events, closing %v", f.id, f.events, f.closing)
		}
	}
	checkFaults(t, fs)
}

// BenchmarkPass is one pass over 10,000 connections, each written one
// small event (and, every few hundred, a credit ping), plus the fakes
// reading it.
func BenchmarkPass(b *testing.B) {
	const conns = 10000
	th, fs, ev := steadyHub(conns)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		steadyPass(th, fs, ev)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/conns, "ns/conn")
	checkFaults(b, fs)
}
