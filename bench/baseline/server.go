package baseline

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/webinate/broker/bench/peerapi"
)

// Server is the reference goroutine-per-connection server. Build it with New,
// then Start, then Shutdown.
type Server struct {
	cfg  Config
	gate *peerapi.Gate
	hub  hub

	upgrader websocket.Upgrader
	public   *http.Server
	admin    *http.Server
	publicLn net.Listener
	adminLn  net.Listener

	mu       sync.Mutex
	started  bool
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
	s.public = &http.Server{Handler: http.HandlerFunc(s.serveWS), ReadHeaderTimeout: 10 * time.Second}
	s.admin = &http.Server{Handler: gate.AdminHandler(s.hub.broadcast), ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Start opens both listeners and serves them in the background.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("baseline: already started")
	}
	pl, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	al, err := net.Listen("tcp", s.cfg.AdminAddr)
	if err != nil {
		_ = pl.Close()
		return err
	}
	s.publicLn, s.adminLn, s.started = pl, al, true
	go func() { _ = s.public.Serve(pl) }()
	go func() { _ = s.admin.Serve(al) }()
	return nil
}

// Addr is the bound public address (valid after Start).
func (s *Server) Addr() string { return s.publicLn.Addr().String() }

// AdminAddr is the bound admin address (valid after Start).
func (s *Server) AdminAddr() string { return s.adminLn.Addr().String() }

// Conns is the number of connected WebSocket clients.
func (s *Server) Conns() int { return s.hub.len() }

// Shutdown stops accepting, closes every client with 1001 and waits for
// their goroutines or ctx. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.shutdown || !s.started {
		s.shutdown = true
		s.mu.Unlock()
		return nil
	}
	s.shutdown = true
	s.mu.Unlock()
	_ = s.admin.Shutdown(ctx)
	_ = s.public.Shutdown(ctx) // hijacked conns are not tracked by http.Server
	s.hub.closeAll()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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
