package baseline

import (
	"sync"

	"github.com/gorilla/websocket"
)

// hub is the set of connected clients: the plain map-behind-a-mutex design
// the broker is compared against.
type hub struct {
	mu    sync.RWMutex
	conns map[*conn]struct{}
}

func (h *hub) add(c *conn) {
	h.mu.Lock()
	h.conns[c] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) remove(c *conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

func (h *hub) len() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.conns)
}

// broadcast queues msg (shared, never modified) to every client. The read
// lock is held only while enqueueing, which never blocks.
func (h *hub) broadcast(msg []byte) {
	h.mu.RLock()
	for c := range h.conns {
		c.enqueue(msg)
	}
	h.mu.RUnlock()
}

func (h *hub) closeAll() {
	h.mu.RLock()
	for c := range h.conns {
		c.close(websocket.CloseGoingAway, "server shutdown")
	}
	h.mu.RUnlock()
}
