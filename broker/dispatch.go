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
	// Budgets: a client that asks faster than the backends answer is
	// paced; these are what it is told when pacing did not suffice.
	errMetaInflight  = "too many MetaRequests in flight"
	errMetaNodeFull  = "too many MetaRequests pending on this server"
	errBackendBusy   = "backend busy"
	errBroadcastBusy = "broker is busy: broadcast not sent, retry later"
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
		// Over its count or byte budget, the sender's further input waits
		// (on top of any message-rate hold); this one goes out first.
		if d := pace(&c.bcastLimit, lim.broadcastRate, lim.broadcastBurst); d > 0 {
			s.stats.broadcastPaced.Add(1)
			c.holdMore(d, noLonger)
		}
		if d := paceBytes(&c.bcastBytes, lim.broadcastBytes, lim.broadcastBytesBurst, len(msg)); d > 0 {
			s.stats.broadcastPaced.Add(1)
			c.holdMore(d, noLonger)
		}
		s.broadcastEcho(c, msg)
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

// broadcastEcho appends a client's echo broadcast to the log (or hands it
// to the Bus) once the node can take it, and holds the client meanwhile:
// client broadcasts come after publishers. While a publisher waits or the
// broker is saturated, or the node's broadcast budget is spent, the
// message waits (one per client: its further input is held) and is
// appended as soon as the way is clear. Checking before appending is what
// keeps broadcasters from adding to a backlog that publishers are waiting
// on. A message still waiting after the publishers' own bound (PublishWait,
// at most half of MaxLag, as for paceBackpressure) is refused with an
// error event instead: past the node's budget, waiting longer would only
// queue more.
func (s *Server) broadcastEcho(c *conn, msg []byte) {
	if s.echoGate(len(msg)) {
		s.appendEcho(c, msg)
		s.paceBackpressure(c)
		return
	}
	s.stats.broadcastNodePaced.Add(1)
	kept := append([]byte(nil), msg...) // nbio reuses msg after we return
	var poll backoff
	c.holdMore(poll.next(), pollHold(poll.next, s.publishHoldEnd(),
		func() bool { return !s.echoGate(len(kept)) },
		func(blocked bool) {
			if !blocked {
				s.appendEcho(c, kept)
				return
			}
			s.stats.broadcastRefused.Add(1)
			s.replyError(c, codec.Echo, errBroadcastBusy)
		}))
}

// echoGate reports whether an echo broadcast of n bytes may be appended
// now, taking n bytes of the node's budget if so.
func (s *Server) echoGate(n int) bool {
	if s.publishersWaiting.Load() > 0 || s.saturated() {
		return false
	}
	return s.limits.Load().broadcastNodeBytes < 0 || s.bcastNode.AllowN(time.Now(), n)
}

// appendEcho publishes an echo broadcast: to the Bus, or the local log.
func (s *Server) appendEcho(c *conn, msg []byte) {
	if !s.toBus(c, msg, true, codec.Echo) {
		s.hub.broadcast(item{frame: appendFrame(nil, opText, msg), etype: codec.Echo})
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
	c.hold(publishPoll, pollHold(func() time.Duration { return publishPoll }, s.publishHoldEnd(),
		func() bool { return s.saturated() && !s.draining.Load() }, nil))
}

// publishPoll is how often a publisher held for backpressure looks again.
const publishPoll = 2 * time.Millisecond

// publishHoldEnd is when a hold of a publisher (or of a broadcast waiting
// behind publishers) ends at the latest: PublishWait from now, and at most
// half of MaxLag (see paceBackpressure).
func (s *Server) publishHoldEnd() time.Time {
	return time.Now().Add(min(s.cfg.PublishWait, s.hub.fo.maxLag.Load()/2))
}

// replyError sends {"eventType":t,"error":reason} to c only.
func (s *Server) replyError(c *conn, t int, reason string) {
	s.stats.errorsOut.Add(1)
	var buf [256]byte
	c.writeText(codec.AppendError(buf[:0], t, reason))
}
