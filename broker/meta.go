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
}

// answer gives the asker the backend's reply, clientId removed.
func (a asker) answer(msg []byte) {
	if a.remote != nil {
		a.remote(msg)
		return
	}
	a.c.writeText(msg)
}

// fail tells the asker why there is no answer, with an error event.
func (a asker) fail(s *Server, reason string) {
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
// Bus.
func (r *metaRouter) forward(client *conn, msg []byte) {
	fwd := msg
	if client.username != "" {
		fwd = codec.AppendWithField(nil, fwd, authUserField, client.username)
	}
	if r.s.bus != nil {
		r.mu.Lock()
		local := len(r.backends)
		r.mu.Unlock()
		if local == 0 {
			r.viaBus(client, fwd)
			return
		}
	}
	r.route(asker{c: client}, fwd)
}

// viaBus asks another node's backend. That node applies its own
// BackendTimeout and answers with an error event when its backend fails,
// so this side waits a little longer before giving up.
func (r *metaRouter) viaBus(client *conn, msg []byte) {
	fwd := append([]byte(nil), msg...) // nbio reuses msg after we return
	r.s.stats.metaForwarded.Add(1)
	r.s.bus.Request(fwd, r.s.cfg.BackendTimeout+time.Second, func(reply []byte, err error) {
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
		if b.send(frame) {
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
		// That backend is going away: take the request back, try another.
		if r.take(id) == nil {
			return // already answered or expired meanwhile
		}
	}
	client.fail(r.s, errNoBackend)
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
	p.client.answer(codec.AppendWithoutField(make([]byte, 0, len(msg)), msg, clientIDField))
}

// pendingCount is the number of requests waiting for a backend.
func (r *metaRouter) pendingCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}
