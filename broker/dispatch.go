package broker

import (
	"golang.org/x/time/rate"

	"github.com/webinate/broker/codec"
)

// Reasons sent in error events.
const (
	errRateLimited      = "rate limit exceeded: message dropped"
	errBroadcastLimited = "echo broadcast rate exceeded: message dropped"
	errNoBackend        = "no backend available"
	errBackendTimeout   = "backend did not answer in time"
	errBackendGone      = "backend disconnected before answering"
	errReservedField    = "clientId and authUser are set by the broker and may not be sent"
	errShuttingDown     = "server is shutting down: event not published"
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
	if !c.allow(&c.msgLimit, s.cfg.MessageRate, s.cfg.MessageBurst) {
		s.limited(c, msg, errRateLimited)
		return
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
		if !c.allow(&c.bcastLimit, s.cfg.BroadcastRate, s.cfg.BroadcastBurst) {
			s.limited(c, msg, errBroadcastLimited)
			return
		}
		c.strikes = 0
		s.hub.broadcast(item{frame: appendFrame(nil, opText, msg), etype: codec.Echo})
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
		frame := appendFrame(nil, opText, msg)
		s.hub.broadcast(s.itemFor(msg, frame))
	case codec.KindMeta:
		if codec.HasField(msg, clientIDField) || codec.HasField(msg, authUserField) {
			// A client must not pick the id (the reply would go to
			// whichever client owns it) nor claim an identity.
			s.replyError(c, codec.MetaRequest, errReservedField)
			return
		}
		s.meta.forward(c, msg)
	default:
		s.replyError(c, m.EventType, m.Reason)
	}
}

// allow takes a token from *l, creating the bucket on first use so that a
// connection that never sends costs no limiter memory.
func (c *conn) allow(l **rate.Limiter, r float64, burst int) bool {
	if r < 0 {
		return true
	}
	if *l == nil {
		*l = rate.NewLimiter(rate.Limit(r), burst)
	}
	if (*l).Allow() {
		if l == &c.msgLimit {
			c.strikes = 0
		}
		return true
	}
	return false
}

// limited answers a rate-limited message with an error event and closes
// the connection (1008) once it keeps going past RateStrikes in a row.
func (s *Server) limited(c *conn, msg []byte, reason string) {
	c.strikes++
	if c.strikes >= s.cfg.RateStrikes {
		c.closeWith(reasonRate, "")
		return
	}
	t, _ := codec.PeekEventType(msg)
	s.replyError(c, t, reason)
}

// replyError sends {"eventType":t,"error":reason} to c only.
func (s *Server) replyError(c *conn, t int, reason string) {
	s.stats.errorsOut.Add(1)
	var buf [256]byte
	c.writeText(codec.AppendError(buf[:0], t, reason))
}
