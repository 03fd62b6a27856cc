package broker

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webinate/broker/codec"
)

// metaRouter forwards clients' MetaRequests to backends and routes each
// reply back to the one client that asked. The broker owns no user data:
// it only remembers, per request, who asked and which backend has it.
//
// Every request gets its own clientId (a random per-process prefix and a
// sequence number), so a reply that arrives after the client was told
// "timeout", or one replayed from before a restart, finds nothing and is
// dropped instead of answering a later request; and only the backend that
// holds a request can answer it.
type metaRouter struct {
	s *Server

	mu       sync.Mutex
	backends []*conn // connected backends, in connection order
	next     int     // round-robin cursor
	seq      uint64
	prefix   string // random per process, see above
	pending  map[string]*metaRequest

	// Budgets (see admit): the requests this node is waiting on, local
	// or through the Bus, and each local client's share of them.
	waiting int
	clients map[*conn]*metaBudget
}

// metaBudget is one client's MetaRequests waiting for an answer. Changed
// under metaRouter.mu; read without it by the poll of the client's hold.
type metaBudget struct {
	n     atomic.Int64
	bytes atomic.Int64
}

// full reports whether the client may not have another request forwarded.
func (b *metaBudget) full(l *limits) bool {
	return l.metaInflight > 0 && b.n.Load() >= int64(l.metaInflight) ||
		l.metaInflightBytes > 0 && b.bytes.Load() >= int64(l.metaInflightBytes)
}

type metaRequest struct {
	client  asker
	backend *conn
	timer   *time.Timer
	sent    bool // written to backend; until then forward owns failover
}

// asker is who waits for a MetaRequest's answer: a local client, or
// (remote set) another node's client, answered through the Bus.
type asker struct {
	c      *conn
	remote func(reply []byte)
	size   int // bytes charged to c's budget (see admit)
}

// answer gives the asker the backend's reply, clientId removed. Every
// admitted request ends in exactly one answer or fail, which give its
// budget back.
func (a asker) answer(s *Server, msg []byte) {
	s.meta.release(a)
	if a.remote != nil {
		a.remote(msg)
		return
	}
	a.c.writeText(msg)
}

// fail tells the asker why there is no answer, with an error event.
func (a asker) fail(s *Server, reason string) {
	s.meta.release(a)
	if a.remote != nil {
		a.remote(codec.AppendError(nil, codec.MetaRequest, reason))
		return
	}
	s.replyError(a.c, codec.MetaRequest, reason)
}

// closeBackends closes every backend with why, counting them in n.
func (r *metaRouter) closeBackends(why reason, n *atomic.Int64) {
	r.mu.Lock()
	list := slices.Clone(r.backends)
	r.mu.Unlock()
	for _, b := range list {
		if b.closeWith(why, "") {
			n.Add(1)
		}
	}
}

func (r *metaRouter) addBackend(c *conn) {
	r.mu.Lock()
	r.backends = append(r.backends, c)
	r.serveRemote()
	r.mu.Unlock()
}

// serveRemote tells the Bus whether this node can answer other nodes'
// MetaRequests: while it has backends. r.mu is held.
func (r *metaRouter) serveRemote() {
	if r.s.bus != nil {
		r.s.bus.ServeMeta(len(r.backends) > 0)
	}
}

// removeBackend forgets c and fails the requests it still holds: their
// clients are told at once rather than after the timeout.
func (r *metaRouter) removeBackend(c *conn) {
	r.mu.Lock()
	r.backends = without(r.backends, c)
	r.serveRemote()
	var orphans []*metaRequest
	for id, p := range r.pending {
		if p.backend == c && p.sent {
			delete(r.pending, id)
			p.timer.Stop()
			orphans = append(orphans, p)
		}
	}
	r.mu.Unlock()
	for _, p := range orphans {
		p.client.fail(r.s, errBackendGone)
	}
}

// forward sends a client's MetaRequest, with a fresh clientId added, to the
// next backend in turn, failing over to the others if a write fails. In a
// cluster, a node with no backend of its own asks the others through the
// Bus. Either way the request counts against the client's budget until it
// is answered or expires, and the client that reaches its budget is
// paced (see pace). Called from dispatch, with c.rmu held.
func (r *metaRouter) forward(client *conn, msg []byte) {
	fwd := msg
	if client.username != "" {
		fwd = codec.AppendWithField(nil, fwd, authUserField, client.username)
	}
	lim := r.s.limits.Load()
	a := asker{c: client, size: len(fwd)}
	if reason := r.admit(a, lim); reason != "" {
		r.s.replyError(client, codec.MetaRequest, reason)
		return
	}
	local := 1
	if r.s.bus != nil {
		r.mu.Lock()
		local = len(r.backends)
		r.mu.Unlock()
	}
	if local == 0 {
		r.viaBus(a, fwd)
	} else {
		r.route(a, fwd)
	}
	r.pace(client)
}

// admit counts a request against the node's cap and, for a local client,
// against that client's budget, or reports why it is refused. A client
// is paced once it reaches its budget, so it only gets here over budget
// when the hold ended first (see pace): it is then told at once, as is
// everyone once the node waits on MetaMaxPending requests.
func (r *metaRouter) admit(a asker, lim *limits) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if lim.metaMaxPending > 0 && r.waiting >= lim.metaMaxPending {
		r.s.stats.metaRefusedPending.Add(1)
		return errMetaNodeFull
	}
	if a.c == nil {
		r.waiting++
		return ""
	}
	b := r.clients[a.c]
	if b != nil && b.full(lim) {
		r.s.stats.metaRefusedInflight.Add(1)
		return errMetaInflight
	}
	if b == nil {
		if r.clients == nil {
			r.clients = make(map[*conn]*metaBudget)
		}
		b = &metaBudget{}
		r.clients[a.c] = b
	}
	b.n.Add(1)
	b.bytes.Add(int64(a.size))
	r.waiting++
	return ""
}

// release gives back what admit counted for a request that has ended.
func (r *metaRouter) release(a asker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waiting--
	if a.c == nil {
		return
	}
	if b := r.clients[a.c]; b != nil {
		b.bytes.Add(-int64(a.size))
		if b.n.Add(-1) <= 0 {
			delete(r.clients, a.c)
		}
	}
}

// pace holds c's input while it has its budget's worth of requests
// waiting, until one of them is answered or expires: a client that asks
// faster than the backends answer is slowed down, its requests waiting in
// its own socket, instead of piling up in a backend's output. The hold
// lasts at most half of MaxLag, for the reason given at paceBackpressure;
// a request that arrives while still over budget is then refused.
func (r *metaRouter) pace(c *conn) {
	r.mu.Lock()
	b := r.clients[c]
	r.mu.Unlock()
	if b == nil || !b.full(r.s.limits.Load()) {
		return
	}
	r.s.stats.metaPaced.Add(1)
	var poll backoff
	// b is this client's budget for as long as it has requests waiting;
	// once they have all ended it reads as empty.
	c.holdMore(poll.next(), pollHold(poll.next, time.Now().Add(r.s.hub.fo.maxLag.Load()/2),
		func() bool { return b.full(r.s.limits.Load()) }, nil))
}

// serve routes another node's MetaRequest (see busNode.ServeMeta) to a
// local backend, within this node's cap.
func (r *metaRouter) serve(msg []byte, respond func(reply []byte)) {
	a := asker{remote: respond}
	if reason := r.admit(a, r.s.limits.Load()); reason != "" {
		respond(codec.AppendError(nil, codec.MetaRequest, reason))
		return
	}
	r.route(a, msg)
}

// viaBus asks another node's backend. That node applies its own
// BackendTimeout and answers with an error event when its backend fails,
// so this side waits a little longer before giving up.
func (r *metaRouter) viaBus(a asker, msg []byte) {
	client := a.c
	fwd := append([]byte(nil), msg...) // nbio reuses msg after we return
	r.s.stats.metaForwarded.Add(1)
	r.s.bus.Request(fwd, r.s.cfg.BackendTimeout+time.Second, func(reply []byte, err error) {
		r.release(a)
		switch {
		case err == nil:
			client.writeText(reply)
		case errors.Is(err, ErrNoRemoteBackend):
			r.s.replyError(client, codec.MetaRequest, errNoBackend)
		default:
			r.s.stats.metaTimeouts.Add(1)
			r.s.replyError(client, codec.MetaRequest, errBackendTimeout)
		}
	})
}

// route forwards msg (authUser already added) to a local backend for
// client, and the answer back to it.
func (r *metaRouter) route(client asker, fwd []byte) {
	r.mu.Lock()
	if r.prefix == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		r.prefix = base64.RawURLEncoding.EncodeToString(b[:]) + "-"
	}
	r.seq++
	id := r.prefix + strconv.FormatUint(r.seq, 10)
	candidates := len(r.backends)
	r.mu.Unlock()

	frame := appendFrame(nil, opText, codec.AppendWithField(nil, fwd, clientIDField, id))
	busy := false
	for try := 0; try < candidates; try++ {
		b := r.pick()
		if b == nil {
			break
		}
		p := &metaRequest{client: client, backend: b}
		r.mu.Lock()
		if r.pending == nil {
			r.pending = make(map[string]*metaRequest)
		}
		r.pending[id] = p
		p.timer = time.AfterFunc(r.s.cfg.BackendTimeout, func() { r.expire(id) })
		r.mu.Unlock()
		ok, full := b.offer(frame)
		if ok {
			r.mu.Lock()
			if q := r.pending[id]; q == p {
				q.sent = true
			}
			gone := b.gone.Load()
			r.mu.Unlock()
			r.s.stats.metaForwarded.Add(1)
			if gone {
				// The backend went away between the write and marking the
				// request sent, so removeBackend skipped it: fail it now.
				if r.take(id) != nil {
					client.fail(r.s, errBackendGone)
				}
			}
			return
		}
		// That backend is going away, or busy: take the request back, try
		// another.
		busy = busy || full
		if r.take(id) == nil {
			return // already answered or expired meanwhile
		}
	}
	if busy {
		r.s.stats.metaRefusedBusy.Add(1)
		client.fail(r.s, errBackendBusy)
		return
	}
	client.fail(r.s, errNoBackend)
}

// offer writes a forwarded MetaRequest to backend b unless b already has
// more than half of max-pending unsent: b then reads more slowly than it
// is asked, and reports full so that another backend is tried, or the
// client told. send would close b as a slow consumer instead, which is
// right for a connection that does not read what it is sent, and wrong
// for a backend whose clients ask faster than it reads: it would lose
// every client's requests for one client's flood. A backend that stops
// reading is still cut, by the fan-out's rules (max-lag). The check and
// the write share wmu, so forwards from several pollers cannot overshoot.
func (b *conn) offer(frame []byte) (ok, full bool) {
	limit := int64(b.srv.limits.Load().maxPending / 2)
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if b.closing.Load() {
		return false, false
	}
	if p := b.pending(); p > 0 && p+int64(len(frame)) > limit {
		return false, true
	}
	return b.writeRaw(frame) == nil, false
}

// pick returns the next live backend, round robin, or nil.
func (r *metaRouter) pick() *conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	for range r.backends {
		r.next = (r.next + 1) % len(r.backends)
		if b := r.backends[r.next]; !b.closing.Load() {
			return b
		}
	}
	return nil
}

// take removes and returns the pending request id, or nil.
func (r *metaRouter) take(id string) *metaRequest {
	r.mu.Lock()
	p := r.pending[id]
	if p != nil {
		delete(r.pending, id)
		p.timer.Stop()
	}
	r.mu.Unlock()
	return p
}

func (r *metaRouter) expire(id string) {
	if p := r.take(id); p != nil {
		r.s.stats.metaTimeouts.Add(1)
		p.client.fail(r.s, errBackendTimeout)
	}
}

// reply routes a backend's answer to the client that asked, without the
// clientId; an answer nobody waits for any more, or from a backend that
// does not hold that request, is dropped and counted.
func (r *metaRouter) reply(from *conn, id string, msg []byte) {
	r.mu.Lock()
	p := r.pending[id]
	if p != nil && p.backend == from {
		delete(r.pending, id)
		p.timer.Stop()
	} else {
		p = nil
	}
	r.mu.Unlock()
	if p == nil {
		r.s.stats.metaLate.Add(1)
		return
	}
	p.client.answer(r.s, codec.AppendWithoutField(make([]byte, 0, len(msg)), msg, clientIDField))
}

// pendingCount is the number of requests waiting for a backend.
func (r *metaRouter) pendingCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}
