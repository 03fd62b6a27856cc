package baseline

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/webinate/broker/bench/peerapi"
)

// Server is the reference goroutine-per-connection server. Build it with New,
// then Start, then Shutdown.
type Server struct {
	// Listeners serve the upgrades and the admin API, and give Addr and
	// AdminAddr.
	peerapi.Listeners
	cfg  Config
	gate *peerapi.Gate
	hub  hub

	upgrader websocket.Upgrader

	mu       sync.Mutex
	shutdown bool
	wg       sync.WaitGroup // connection goroutines
}

// New validates cfg and allocates a Server; it opens no sockets.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	gate, err := peerapi.NewGate(cfg.Key, cfg.Origins)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, gate: gate}
	s.hub.conns = make(map[*conn]struct{})
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		// The origin decision is made in serveWS before upgrading so that a
		// refusal is a plain 403 and the reason can be chosen there.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return s, nil
}

// Start opens both listeners and serves them in the background.
func (s *Server) Start() error {
	if err := s.Listen(s.cfg.Config, http.HandlerFunc(s.serveWS), s.gate.AdminHandler(s.hub.broadcast)); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	return nil
}

// Conns is the number of connected WebSocket clients.
func (s *Server) Conns() int { return s.hub.len() }

// Shutdown stops accepting, closes every client with 1001 and waits for
// their goroutines or ctx. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	already := s.shutdown
	s.shutdown = true
	s.mu.Unlock()
	if already || !s.Listeners.Shutdown(ctx) {
		return nil
	}
	s.hub.closeAll()
	return peerapi.Wait(ctx, &s.wg)
}

// serveWS upgrades any path on the public listener.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	backend, status, reason := s.gate.Admit(r)
	if status != 0 {
		http.Error(w, reason, status)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader already answered
	}
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	s.wg.Add(2)
	s.mu.Unlock()
	c := newConn(s, ws, backend)
	s.hub.add(c)
	go c.writeLoop()
	go c.readLoop()
}
