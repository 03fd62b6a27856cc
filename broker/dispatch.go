package broker

import (
	"time"

	"github.com/webinate/broker/codec"
)

// Reasons sent in error events.
const (
	errNoBackend      = "no backend available"
	errBackendTimeout = "backend did not answer in time"
	errBackendGone    = "backend disconnected before answering"
	errReservedField  = "clientId and authUser are set by the broker and may not be sent"
	errShuttingDown   = "server is shutting down: event not published"
)

// Members the broker adds to a MetaRequest it forwards to a backend. A
// backend's reply must carry clientId; authUser is the username the
// client proved with its JWT, so the backend can authorise the request
// (absent for anonymous clients). Clients may send neither.
const (
	clientIDField = "clientId"
	authUserField = "authUser"
)

// testHookDispatch, when set by a test, runs first for every message; it
// lets tests force failures (a panic) on the real path.
var testHookDispatch func(msg []byte)

// dispatch handles one complete, UTF-8 valid text message from c. It runs
// on c's poller goroutine and must not block.
func (s *Server) dispatch(c *conn, msg []byte) {
	if testHookDispatch != nil {
		testHookDispatch(msg)
	}
	// Over the message rate, the message is still handled, and the
	// sender's further input waits until it is back within the rate.
	lim := s.limits.Load()
	if c.limGen != lim.gen {
		c.retune(lim) // reloaded since this connection's last message
	}
	if d := pace(&c.msgLimit, lim.messageRate, lim.messageBurst); d > 0 {
		c.hold(d, noLonger)
	}
	var m codec.Message
	if c.backend {
		m = codec.ClassifyBackend(msg)
	} else {
		m = codec.ClassifyClient(msg)
	}
	switch m.Kind {
	case codec.KindEcho:
		if !m.Broadcast {
			// The reply is the message as the client sent it, byte for byte.
			c.writeText(msg)
			return
		}
		if d := pace(&c.bcastLimit, lim.broadcastRate, lim.broadcastBurst); d > 0 {
			c.hold(d, noLonger)
		}
		if !s.toBus(c, msg, true, codec.Echo) {
			s.hub.broadcast(item{frame: appendFrame(nil, opText, msg), etype: codec.Echo})
		}
		s.paceBackpressure(c)
	case codec.KindServerEvent:
		// Only backends get this kind. A MetaRequest carrying a clientId
		// is the answer to a client's request; anything else is published.
		if m.EventType == codec.MetaRequest {
			if id, ok := codec.StringField(msg, clientIDField); ok {
				s.meta.reply(c, id, msg)
				return
			}
		}
		if s.draining.Load() {
			// Drain delivers what was accepted; new events are refused,
			// as on the publish API.
			s.replyError(c, m.EventType, errShuttingDown)
			return
		}
		if !s.toBus(c, msg, false, m.EventType) {
			s.hub.broadcast(s.itemFor(msg, appendFrame(nil, opText, msg)))
		}
		s.paceBackpressure(c)
	case codec.KindMeta:
		if codec.HasField(msg, clientIDField) || codec.HasField(msg, authUserField) {
			// A client must not pick the id (the reply would go to
			// whichever client owns it) nor claim an identity.
			s.replyError(c, codec.MetaRequest, errReservedField)
			return
		}
		s.meta.forward(c, msg)
	case codec.KindTokenRefresh:
		s.refreshToken(c, msg)
	default:
		s.replyError(c, m.EventType, m.Reason)
	}
}

// paceBackpressure holds a connection that just published while the
// broker is saturated: TCP then paces the publisher, as a 503 paces the
// publish API. Each hold lasts at most PublishWait, so a backend's other
// traffic (MetaRequest replies) is delayed, never stopped; and at most half
// of MaxLag, because the pongs that return the held connection's own credit
// wait with the rest of its input: held longer, it would be cut as a slow
// consumer for being paced.
func (s *Server) paceBackpressure(c *conn) {
	if !s.saturated() {
		return
	}
	s.stats.publishWaits.Add(1)
	deadline := time.Now().Add(min(s.cfg.PublishWait, s.hub.fo.maxLag.Load()/2))
	c.hold(2*time.Millisecond, func() time.Duration {
		if s.saturated() && !s.draining.Load() && time.Now().Before(deadline) {
			return 2 * time.Millisecond
		}
		return 0
	})
}

// replyError sends {"eventType":t,"error":reason} to c only.
func (s *Server) replyError(c *conn, t int, reason string) {
	s.stats.errorsOut.Add(1)
	var buf [256]byte
	c.writeText(codec.AppendError(buf[:0], t, reason))
}
