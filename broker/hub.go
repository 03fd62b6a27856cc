package broker

import (
	"sync"
	"sync/atomic"
)

// hub is the sharded subscriber table. Each shard owns a set of
// connections behind its own lock and a queue of encoded frames that its
// worker goroutine writes to those connections.
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
	count atomic.Int64 // connections in the table
	stats *stats
	wg    sync.WaitGroup
}

// shard is one slice of the table.
type shard struct {
	h *hub

	mu    sync.RWMutex
	conns []*conn

	qmu    sync.Mutex
	queue  []item // in publish order
	closed bool
	wake   chan struct{}
	idle   chan struct{} // closed and replaced when the queue is drained

	// Worker-only scratch, reused across passes.
	spare []item
	buf   []byte
	runs  [][]byte
}

func newHub(n, chunk int, st *stats) *hub {
	h := &hub{chunk: chunk, stats: st}
	h.shards = make([]*shard, n)
	for i := range h.shards {
		h.shards[i] = &shard{h: h, wake: make(chan struct{}, 1)}
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

// addWith puts c in its shard. first runs under the shard's write lock
// before c becomes visible to fan-out; if it reports false, c is not added.
func (h *hub) addWith(c *conn, first func() bool) bool {
	s := h.shardOf(c)
	s.mu.Lock()
	if c.gone.Load() || !first() {
		s.mu.Unlock()
		return false
	}
	c.idx = len(s.conns)
	s.conns = append(s.conns, c)
	s.mu.Unlock()
	h.count.Add(1)
	return true
}

// shardOf is fixed by the connection id, so add and remove agree on it
// without shared state.
func (h *hub) shardOf(c *conn) *shard { return h.shards[c.id%uint64(len(h.shards))] }

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
	h.count.Add(-1)
	return true
}

// item is one queued unit of fan-out: whole encoded frames, shared
// read-only by every shard.
type item struct {
	frames []byte
	events int // frames in it
}

// broadcast queues frames (one or more whole, encoded frames carrying
// events events) for every connection. It never waits on a socket.
func (h *hub) broadcast(frames []byte, events int) {
	h.broadcastItems([]item{{frames, events}})
}

// broadcastItems queues items back to back in every shard, so one publish
// request stays contiguous and in order for every connection.
func (h *hub) broadcastItems(items []item) {
	events := 0
	for _, it := range items {
		events += it.events
	}
	h.pubMu.Lock()
	for _, s := range h.shards {
		s.qmu.Lock()
		if !s.closed {
			s.queue = append(s.queue, items...)
		}
		s.qmu.Unlock()
		s.signal()
	}
	h.pubMu.Unlock()
	h.stats.eventsPublished.Add(int64(events))
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

// drained waits until every shard's queue has been written out.
func (h *hub) drained(done <-chan struct{}) bool {
	for _, s := range h.shards {
		for {
			s.qmu.Lock()
			empty := len(s.queue) == 0
			if s.idle == nil {
				s.idle = make(chan struct{})
			}
			idle := s.idle
			s.qmu.Unlock()
			if empty {
				break
			}
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
		s.qmu.Lock()
		batch := s.queue
		if len(batch) > 0 {
			// Double buffering: producers append to the spare array while
			// this pass writes the batch. Swap only a non-empty queue, or
			// queue and spare would end up sharing one array.
			s.queue = s.spare
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
			// More may have arrived while writing.
			s.signal()
			continue
		}
		if closed {
			return
		}
	}
}

// write sends batch to every connection of the shard. Frames are grouped
// into runs of at most chunk bytes; a run is written with one call, and a
// run always ends on a frame boundary so writes from other goroutines (a
// reply to one client) can never land inside a frame.
func (s *shard) write(batch []item) {
	chunk := s.h.chunk
	runs := s.runs[:0]
	events := 0
	for _, it := range batch {
		events += it.events
	}
	if len(batch) == 1 {
		runs = append(runs, batch[0].frames)
	} else {
		total := 0
		for _, it := range batch {
			total += len(it.frames)
		}
		if cap(s.buf) < total {
			s.buf = make([]byte, 0, total)
		}
		b := s.buf[:0]
		start := 0
		for _, it := range batch {
			f := it.frames
			if len(b)-start > 0 && len(b)-start+len(f) > chunk {
				runs = append(runs, b[start:])
				start = len(b)
			}
			b = append(b, f...)
		}
		runs = append(runs, b[start:])
		s.buf = b
	}

	s.mu.RLock()
	n := 0
	for _, c := range s.conns {
		if c.closing.Load() {
			continue
		}
		n++
		for _, r := range runs {
			// nbio copies what the kernel does not take; an error means
			// nbio is closing the socket (overflow: slow consumer), which
			// it reports through CloseAndClean.
			if _, err := c.nbc.Write(r); err != nil {
				break
			}
		}
	}
	s.mu.RUnlock()
	s.h.stats.writes.Add(int64(n * len(runs)))
	s.h.stats.deliveries.Add(int64(n * events))
	clear(runs)
	s.runs = runs[:0]
	if cap(s.buf) > 4<<20 {
		s.buf = nil // do not pin a burst-sized buffer forever
	}
}
