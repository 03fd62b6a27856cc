package broker

import (
	"sync"
	"sync/atomic"
	"time"
)

// hub is the sharded subscriber table. Each shard owns a set of
// connections behind its own lock, an index of them by username, and a
// queue of encoded frames that its worker goroutine writes to them.
//
// Lock order: hub.pubMu, then shard.qmu. shard.mu is never held while
// taking another broker lock, and removing a connection (which takes
// shard.mu for writing) never happens synchronously under shard.mu: nbio
// reports closed sockets on its own executor.
type hub struct {
	shards []*shard
	// pubMu makes every shard see broadcasts in the same order, so all
	// connections receive concurrent publishes in one global order.
	pubMu sync.Mutex
	// chunk is the most bytes given to one write call, so that one write
	// never exceeds a connection's pending-bytes bound on its own.
	chunk int
	// linger delays each pass to let more events share a write.
	linger time.Duration
	count  atomic.Int64 // connections in the table

	// behindAt caches the saturation check (see saturated) for a
	// millisecond: waiting publishers poll it.
	behindMu sync.Mutex
	behindAt time.Time
	behind   bool
	stats    *stats
	wg       sync.WaitGroup
}

// shard is one slice of the table.
type shard struct {
	h *hub

	mu       sync.RWMutex
	conns    []*conn            // every connection; conn.idx is its position
	byUser   map[string][]*conn // identified connections, for targeted events
	backends []*conn            // they receive targeted events too
	filtered int                // connections with an event filter

	qmu    sync.Mutex
	queue  []item // in publish order
	busy   bool   // the worker is writing a batch it took from queue
	closed bool
	wake   chan struct{}
	idle   chan struct{} // closed and replaced when the queue is drained

	// Worker-only scratch, reused across passes.
	spare []item
	buf   []byte
	own   []byte // per-connection assembly for filtered connections
	runs  [][]byte
}

// testHookWrite, when set by a test, runs before each batch is written; it
// lets tests make a pass slow on purpose.
var testHookWrite func()

// item is one encoded frame queued for fan-out, shared read-only by every
// shard.
type item struct {
	frame []byte
	user  string // non-empty: targeted to this user's connections (and backends)
	etype uint8  // event type, for connection filters; 0 = not a server event
}

func newHub(n, chunk int, linger time.Duration, st *stats) *hub {
	h := &hub{chunk: chunk, linger: linger, stats: st}
	h.shards = make([]*shard, n)
	for i := range h.shards {
		h.shards[i] = &shard{h: h, wake: make(chan struct{}, 1), byUser: map[string][]*conn{}}
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

// stop lets every worker write what is queued, then ends them.
func (h *hub) stop() {
	for _, s := range h.shards {
		s.qmu.Lock()
		s.closed = true
		s.qmu.Unlock()
		s.signal()
	}
	h.wg.Wait()
}

// shardOf is fixed by the connection id, so add and remove agree on it
// without shared state.
func (h *hub) shardOf(c *conn) *shard { return h.shards[c.id%uint64(len(h.shards))] }

// addWith puts c in its shard. first runs under the shard's write lock
// before c becomes visible to fan-out; if it reports false, c is not added.
func (h *hub) addWith(c *conn, first func() bool) bool {
	s := h.shardOf(c)
	s.mu.Lock()
	if c.gone.Load() {
		s.mu.Unlock()
		return false
	}
	// Counted before first() sends the 101: a client that has it may ask
	// /healthz at once.
	h.count.Add(1)
	if !first() {
		h.count.Add(-1)
		s.mu.Unlock()
		return false
	}
	c.idx = len(s.conns)
	s.conns = append(s.conns, c)
	if c.username != "" {
		s.byUser[c.username] = append(s.byUser[c.username], c)
	}
	if c.backend {
		s.backends = append(s.backends, c)
	}
	if c.filter != 0 {
		s.filtered++
	}
	s.mu.Unlock()
	return true
}

// remove takes c out of the table; it reports false if c was not in it.
func (h *hub) remove(c *conn) bool {
	s := h.shardOf(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.idx < 0 || c.idx >= len(s.conns) || s.conns[c.idx] != c {
		return false
	}
	last := len(s.conns) - 1
	s.conns[c.idx] = s.conns[last]
	s.conns[c.idx].idx = c.idx
	s.conns[last] = nil
	s.conns = s.conns[:last]
	c.idx = -1
	if c.username != "" {
		if l := without(s.byUser[c.username], c); len(l) > 0 {
			s.byUser[c.username] = l
		} else {
			delete(s.byUser, c.username)
		}
	}
	if c.backend {
		s.backends = without(s.backends, c)
	}
	if c.filter != 0 {
		s.filtered--
	}
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

// broadcast queues items back to back in every shard, so one publish
// request stays contiguous and in order for every connection. It never
// waits on a socket.
func (h *hub) broadcast(items ...item) {
	h.pubMu.Lock()
	queued := false
	for _, s := range h.shards {
		s.qmu.Lock()
		if !s.closed {
			s.queue = append(s.queue, items...)
			queued = true
		}
		s.qmu.Unlock()
		s.signal()
	}
	h.pubMu.Unlock()
	if queued {
		h.stats.eventsPublished.Add(int64(len(items)))
	}
}

// each calls fn for every connection, shard by shard, under the shard's
// read lock. fn must not block or remove connections.
func (h *hub) each(fn func(*conn)) {
	for _, s := range h.shards {
		s.mu.RLock()
		for _, c := range s.conns {
			fn(c)
		}
		s.mu.RUnlock()
	}
}

// saturated reports whether more than half of the connections have more
// than backlog bytes queued: the broker as a whole, not one slow reader,
// is behind. Computed at most once a millisecond (two atomic loads per
// connection).
func (h *hub) saturated(backlog int64) bool {
	h.behindMu.Lock()
	defer h.behindMu.Unlock()
	if now := time.Now(); now.Sub(h.behindAt) >= time.Millisecond {
		total, behind := 0, 0
		h.each(func(c *conn) {
			total++
			if c.pending() > backlog {
				behind++
			}
		})
		h.behind = behind*2 > total
		h.behindAt = now
	}
	return h.behind
}

// drained waits until every shard has written out everything queued: its
// queue is empty and its worker is not in the middle of a batch it took.
func (h *hub) drained(done <-chan struct{}) bool {
	for _, s := range h.shards {
		for {
			s.qmu.Lock()
			empty := len(s.queue) == 0 && !s.busy
			if s.idle == nil {
				s.idle = make(chan struct{})
			}
			idle := s.idle
			s.qmu.Unlock()
			if empty {
				break
			}
			s.signal() // the worker closes idle on a pass that finds nothing
			select {
			case <-idle:
			case <-done:
				return false
			}
		}
	}
	return true
}

func (s *shard) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run is the shard worker. Each pass takes every frame queued since the
// previous pass and writes them to each connection in as few write calls as
// the chunk size allows: one event per write when traffic is light, many
// when it is heavy (group commit), with no added delay.
func (s *shard) run() {
	for range s.wake {
		if s.h.linger > 0 {
			time.Sleep(s.h.linger)
		}
		s.qmu.Lock()
		batch := s.queue
		if len(batch) > 0 {
			// Double buffering: producers append to the spare array while
			// this pass writes the batch. Swap only a non-empty queue, or
			// queue and spare would end up sharing one array.
			s.queue = s.spare
			s.busy = true
		} else if s.idle != nil {
			close(s.idle)
			s.idle = nil
		}
		closed := s.closed
		s.qmu.Unlock()

		if len(batch) > 0 {
			s.write(batch)
			clear(batch)
			s.spare = batch[:0]
			s.qmu.Lock()
			s.busy = false
			s.qmu.Unlock()
			// More may have arrived while writing.
			s.signal()
			continue
		}
		if closed {
			return
		}
	}
}

// write delivers batch in order. Runs of untargeted frames go to every
// connection with shared buffers; a targeted frame goes only to its user's
// connections and the backends, at a cost independent of the shard's size.
func (s *shard) write(batch []item) {
	if testHookWrite != nil {
		testHookWrite()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i := 0; i < len(batch); {
		if batch[i].user != "" {
			s.writeTargeted(batch[i])
			i++
			continue
		}
		j := i + 1
		for j < len(batch) && batch[j].user == "" {
			j++
		}
		s.writeAll(batch[i:j])
		i = j
	}
	if cap(s.buf) > 4<<20 {
		s.buf = nil // do not pin a burst-sized buffer forever
	}
	if cap(s.own) > 4<<20 {
		s.own = nil
	}
}

// writeAll writes untargeted items to every connection. Frames are grouped
// into runs of at most chunk bytes; a run is written with one call, and a
// run always ends on a frame boundary so writes from other goroutines (a
// reply to one client) can never land inside a frame. Connections with an
// event filter get their own assembly of the frames they asked for.
func (s *shard) writeAll(items []item) {
	chunk := s.h.chunk
	runs := s.runs[:0]
	if len(items) == 1 {
		runs = append(runs, items[0].frame)
	} else {
		total := 0
		for _, it := range items {
			total += len(it.frame)
		}
		if cap(s.buf) < total {
			s.buf = make([]byte, 0, total)
		}
		b := s.buf[:0]
		start := 0
		for _, it := range items {
			if len(b) > start && len(b)-start+len(it.frame) > chunk {
				runs = append(runs, b[start:])
				start = len(b)
			}
			b = append(b, it.frame...)
		}
		runs = append(runs, b[start:])
		s.buf = b
	}

	conns, writes, delivered := 0, 0, 0
	for _, c := range s.conns {
		if c.closing.Load() {
			continue
		}
		conns++
		if c.filter != 0 {
			w, d := s.writeFiltered(c, items)
			writes += w
			delivered += d
			continue
		}
		for _, r := range runs {
			writes++
			if !c.send(r) {
				break // closing: slow consumer or socket gone
			}
		}
		delivered += len(items)
	}
	s.h.stats.writes.Add(int64(writes))
	s.h.stats.deliveries.Add(int64(delivered))
	clear(runs)
	s.runs = runs[:0]
}

// writeFiltered writes to c only the items its filter lets through.
func (s *shard) writeFiltered(c *conn, items []item) (writes, delivered int) {
	b := s.own[:0]
	flush := func() bool {
		if len(b) == 0 {
			return true
		}
		writes++
		ok := c.send(b)
		b = b[:0]
		return ok
	}
	for _, it := range items {
		if !c.wants(it.etype) {
			continue
		}
		if len(b) > 0 && len(b)+len(it.frame) > s.h.chunk && !flush() {
			break
		}
		b = append(b, it.frame...)
		delivered++
	}
	flush()
	s.own = b[:0]
	return writes, delivered
}

// writeTargeted writes one targeted frame to its user's connections in
// this shard and to the shard's backends.
func (s *shard) writeTargeted(it item) {
	n := 0
	for _, c := range s.byUser[it.user] {
		if c.backend || c.closing.Load() || !c.wants(it.etype) {
			continue // backends are served below, once
		}
		c.send(it.frame)
		n++
	}
	for _, c := range s.backends {
		if c.closing.Load() || !c.wants(it.etype) {
			continue
		}
		c.send(it.frame)
		n++
	}
	s.h.stats.writes.Add(int64(n))
	s.h.stats.deliveries.Add(int64(n))
}
