package baseline

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/webinate/broker/bench/peerapi"
)

// conn is one client. readLoop and writeLoop are its only goroutines; the
// writer is the single owner of outbound frames except for close control
// frames, which gorilla allows concurrently.
type conn struct {
	s       *Server
	ws      *websocket.Conn
	backend bool
	send    chan []byte

	closeOnce sync.Once
	done      chan struct{}
	code      int
	reason    string
}

func newConn(s *Server, ws *websocket.Conn, backend bool) *conn {
	ws.SetReadLimit(s.cfg.MaxMessage)
	return &conn{s: s, ws: ws, backend: backend, send: make(chan []byte, s.cfg.SendBuffer), done: make(chan struct{})}
}

// enqueue hands msg to the writer without blocking; a full queue means the
// client cannot keep up and is dropped rather than stalling the publisher.
func (c *conn) enqueue(msg []byte) bool {
	select {
	case c.send <- msg:
		return true
	case <-c.done:
		return false
	default:
		c.close(websocket.ClosePolicyViolation, "slow consumer")
		return false
	}
}

// close asks the writer to send a close frame with code and stop; the first
// reason wins.
func (c *conn) close(code int, reason string) {
	c.closeOnce.Do(func() {
		c.code, c.reason = code, reason
		close(c.done)
	})
}

func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	defer func() { _ = c.ws.Close() }() // unblocks readLoop
	for {
		select {
		case msg := <-c.send:
			_ = c.ws.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
			if err := c.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
				c.close(websocket.CloseAbnormalClosure, "write error")
				return
			}
		case <-c.done:
			if c.code != websocket.CloseAbnormalClosure {
				_ = c.ws.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(c.code, c.reason), time.Now().Add(time.Second))
			}
			return
		}
	}
}

func (c *conn) readLoop() {
	defer c.s.wg.Done()
	defer c.s.hub.remove(c)
	for {
		mt, msg, err := c.ws.ReadMessage()
		if err != nil {
			// gorilla has already sent 1009 for an oversized frame.
			c.close(websocket.CloseAbnormalClosure, "read error")
			return
		}
		if mt != websocket.TextMessage {
			c.close(websocket.CloseUnsupportedData, "binary frames are not supported")
			return
		}
		c.handle(msg)
	}
}

// handle dispatches one client frame. msg is owned by this call (gorilla's
// ReadMessage returns a fresh slice), so it may be forwarded as is.
func (c *conn) handle(msg []byte) {
	ev, et, reason := peerapi.ParseEvent(msg)
	if reason != "" {
		c.sendError(et, reason)
		return
	}
	switch {
	case et == 10:
		var b bool
		if raw, ok := ev["broadcast"]; ok && json.Unmarshal(raw, &b) == nil && b {
			c.s.hub.broadcast(msg)
			return
		}
		c.enqueue(msg)
	case et == 9 && !c.backend:
		c.sendError(9, "no backend available")
	case c.backend && et >= 1 && et <= 8:
		c.s.hub.broadcast(msg)
	case et >= 1 && et <= 9:
		c.sendError(et, fmt.Sprintf("eventType %d may not be sent on this connection", et))
	default:
		c.sendError(et, fmt.Sprintf("unknown eventType %d", et))
	}
}

func (c *conn) sendError(et int64, reason string) {
	b, _ := json.Marshal(errorEvent{EventType: et, Error: reason})
	c.enqueue(b)
}

type errorEvent struct {
	EventType int64  `json:"eventType"`
	Error     string `json:"error"`
}
