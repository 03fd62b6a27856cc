package rawpeer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/webinate/broker/bench/peerapi"
	"github.com/webinate/broker/wsframe"
)

// Config configures a Server: addresses, key, origins, and the largest
// client message (a larger one is answered with close 1009). Zero fields
// take peerapi's defaults.
type Config = peerapi.Config

// Server is the one-write fan-out server. Build it with New, then Start,
// then Shutdown.
type Server struct {
	// Listeners serve the upgrades and the admin API, and give Addr and
	// AdminAddr.
	peerapi.Listeners
	cfg  Config
	gate *peerapi.Gate

	// mu guards clients and shutdown; a fan-out holds it for reading
	// while it writes, a client joining or leaving for writing.
	mu       sync.RWMutex
	clients  []*client
	shutdown bool

	wg      sync.WaitGroup // reader loops (hijacked connections)
	dropped atomic.Int64
}

// client is one WebSocket connection: the socket, and where it stands in
// Server.clients.
type client struct {
	s    *Server
	conn *net.TCPConn
	raw  syscall.RawConn
	idx  int // in s.clients, under s.mu
	// torn is set, under the descriptor's write lock, by the write that
	// the kernel did not take whole; every later write skips the socket.
	torn atomic.Bool
}

// New checks cfg and allocates a Server; it opens no sockets.
func New(cfg Config) (*Server, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rawpeer: %w", err)
	}
	gate, err := peerapi.NewGate(cfg.Key, cfg.Origins)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, gate: gate}, nil
}

// Start opens both listeners and serves them in the background.
func (s *Server) Start() error {
	if err := s.Listen(s.cfg, http.HandlerFunc(s.serveWS), s.gate.AdminHandler(s.broadcast)); err != nil {
		return fmt.Errorf("rawpeer: %w", err)
	}
	return nil
}

// Conns is the number of connected clients.
func (s *Server) Conns() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.clients)
}

// Dropped is the clients dropped because a frame was not taken whole.
func (s *Server) Dropped() int64 { return s.dropped.Load() }

// Shutdown stops accepting, sends every client close 1001, closes it and
// waits for the readers or ctx. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	already := s.shutdown
	s.shutdown = true
	clients := append([]*client(nil), s.clients...)
	s.mu.Unlock()
	if already || !s.Listeners.Shutdown(ctx) {
		return nil
	}
	bye := wsframe.AppendClose(nil, wsframe.CloseGoingAway, "server shutdown")
	for _, c := range clients {
		c.write(bye)
		_ = c.conn.Close()
	}
	return peerapi.Wait(ctx, &s.wg)
}

// broadcast frames payload once and writes it to every client: one
// write(2) per socket, the clients split over one goroutine per core
// (GOMAXPROCS) once there are enough of them to be worth it, so that the
// floor uses the machine as the broker's shard workers do. A single loop
// cannot keep up with 5,000 sockets at 20 events/s on one core of this
// project's 2-core machine (about 10 µs a write), and its latency then is
// queueing, not a floor.
func (s *Server) broadcast(payload []byte) {
	frame := wsframe.AppendFrame(make([]byte, 0, wsframe.FrameSize(len(payload))), wsframe.OpText, payload)
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := min(runtime.GOMAXPROCS(0), len(s.clients)/minPerWriter)
	if n <= 1 {
		for _, c := range s.clients {
			c.write(frame)
		}
		return
	}
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(s.clients); i += n {
				s.clients[i].write(frame)
			}
		}()
	}
	wg.Wait()
}

// minPerWriter: below this many clients a second writer costs more than
// it saves.
const minPerWriter = 256

// write hands frame to the kernel with one write(2) and reports whether
// it took all of it. Anything less (EAGAIN: the send buffer is full; a
// short count; an error) drops the client: the socket is closed, and the
// torn flag, set under the descriptor's write lock, keeps any concurrent
// writer (another publish, an echo) from adding bytes after the torn
// frame before the close lands.
func (c *client) write(frame []byte) bool {
	whole, tore := false, false
	err := c.raw.Write(func(fd uintptr) bool {
		if c.torn.Load() {
			return true
		}
		n, _ := syscall.Write(int(fd), frame)
		if n == len(frame) {
			whole = true
		} else {
			tore = true
			c.torn.Store(true)
		}
		return true // never wait for writability: that would need a queue
	})
	if tore && err == nil {
		c.s.dropped.Add(1)
	}
	if !whole {
		_ = c.conn.Close()
	}
	return whole
}

// serveWS admits and upgrades a request on any path, then runs the
// client's reader on the handler's goroutine.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if _, status, reason := s.gate.Admit(r); status != 0 {
		http.Error(w, reason, status)
		return
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if r.Method != http.MethodGet || key == "" || r.Header.Get("Sec-WebSocket-Version") != "13" ||
		!wsframe.HeaderHasToken(r.Header.Values("Connection"), "upgrade") ||
		!wsframe.HeaderHasToken(r.Header.Values("Upgrade"), "websocket") {
		http.Error(w, "not a WebSocket upgrade", http.StatusBadRequest)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot hijack", http.StatusInternalServerError)
		return
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		_ = nc.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{}) // the header timeout must not end the socket
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		wsframe.AcceptKey(key) + "\r\n\r\n"
	raw, err := tc.SyscallConn()
	if err == nil {
		_, err = tc.Write([]byte(resp))
	}
	if err != nil {
		_ = tc.Close()
		return
	}
	// Joined only after the 101 is written, so no event can precede it.
	c := &client{s: s, conn: tc, raw: raw}
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		_ = tc.Close()
		return
	}
	c.idx = len(s.clients)
	s.clients = append(s.clients, c)
	s.wg.Add(1)
	s.mu.Unlock()
	c.read(brw.Reader)
}

// leave takes c out of the client list (swapping the last one into its
// place) and closes it.
func (c *client) leave() {
	s := c.s
	s.mu.Lock()
	if i := c.idx; i >= 0 && i < len(s.clients) && s.clients[i] == c {
		last := len(s.clients) - 1
		s.clients[i] = s.clients[last]
		s.clients[i].idx = i
		s.clients[last] = nil
		s.clients = s.clients[:last]
		c.idx = -1
	}
	s.mu.Unlock()
	_ = c.conn.Close()
	s.wg.Done()
}

var broadcastFlag = []byte(`"broadcast":true`)

// read handles the client's frames until it closes or breaks the
// protocol: pings are answered, a close is echoed, a text message is
// echoed to the sender or, carrying "broadcast":true, fanned out. br
// holds whatever the client sent after its upgrade request.
func (c *client) read(br *bufio.Reader) {
	defer c.leave()
	limit := uint64(c.s.cfg.MaxMessage)
	var buf, msg []byte
	fragmented := false
	for {
		h, err := wsframe.FromClient.ReadHeader(br)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) {
				c.closeWith(wsframe.CloseProtocolError, "bad frame")
			}
			return
		}
		if h.Length > limit || uint64(len(msg))+h.Length > limit {
			c.closeWith(wsframe.CloseTooBig, "message too big")
			return
		}
		if uint64(cap(buf)) < h.Length {
			buf = make([]byte, h.Length)
		}
		buf = buf[:h.Length]
		if _, err := io.ReadFull(br, buf); err != nil {
			return
		}
		wsframe.MaskBytes(h.Key, 0, buf)
		switch h.Op {
		case wsframe.OpText:
			if fragmented {
				c.closeWith(wsframe.CloseProtocolError, "new message inside a fragmented one")
				return
			}
			if !h.Fin {
				msg, fragmented = append(msg[:0], buf...), true
				continue
			}
			c.answer(buf)
		case wsframe.OpContinuation:
			if !fragmented {
				c.closeWith(wsframe.CloseProtocolError, "continuation without a message")
				return
			}
			msg = append(msg, buf...)
			if h.Fin {
				fragmented = false
				c.answer(msg)
			}
		case wsframe.OpBinary:
			c.closeWith(wsframe.CloseUnsupportedData, "binary frames are not supported")
			return
		case wsframe.OpPing:
			c.write(wsframe.AppendFrame(nil, wsframe.OpPong, buf))
		case wsframe.OpClose:
			c.write(wsframe.AppendFrame(nil, wsframe.OpClose, buf[:min(len(buf), 2)]))
			return
		}
	}
}

// answer echoes msg to the sender, or fans it out.
func (c *client) answer(msg []byte) {
	if bytes.Contains(msg, broadcastFlag) {
		c.s.broadcast(msg)
		return
	}
	c.write(wsframe.AppendFrame(nil, wsframe.OpText, msg))
}

func (c *client) closeWith(code int, reason string) {
	c.write(wsframe.AppendClose(nil, code, reason))
}
