package broker

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"

	"github.com/webinate/broker/eventlog"
	originpkg "github.com/webinate/broker/origin"
	"github.com/webinate/broker/wsframe"
)

// backendKeyHeader marks a backend connection (PROTOCOL.md, Handshake).
const backendKeyHeader = "users-api-key"

// serveUpgrade answers every HTTP request on the public port: any path may
// upgrade. It runs on nbio's handler pool, not on a poller.
func (s *Server) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	// Shutdown waits for handlers in flight, so that one racing it can
	// still write its 503 before the reactor stops.
	s.upgrading.Add(1)
	defer s.upgrading.Add(-1)
	// Every HTTP answer on this port closes the socket (nbio sends
	// "Connection: close" and closes after the response). The public port
	// serves nothing but upgrades, so a refused client has nothing to keep
	// the socket for, and without this nbio re-arms the read deadline
	// after each answered request: a client sending a plain GET now and
	// then would hold its socket, and a slot of nbio's MaxLoad, for ever.
	// With it nothing re-arms the deadline nbio set at accept, so
	// HandshakeTimeout counts from accept. An upgrade hijacks the socket,
	// which this does not affect.
	r.Close = true
	if upgradedAlready(w) {
		// A second upgrade request pipelined on a socket that an earlier
		// one already upgraded: nbio parsed both before the first handler
		// ran. Handler runs for one socket are serialised, so this check
		// is exact. It comes first: any HTTP answer written now would land
		// inside the WebSocket stream of the first connection. Hijacking
		// stops nbhttp from writing a default response.
		s.stats.badHandshake.Add(1)
		if hj, ok := w.(http.Hijacker); ok {
			_, _, _ = hj.Hijack()
		}
		return
	}
	if s.draining.Load() {
		s.stats.refusedFull.Add(1)
		httpError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	if r.Method != http.MethodGet {
		s.stats.badHandshake.Add(1)
		w.Header().Set("Allow", "GET")
		httpError(w, http.StatusMethodNotAllowed, "WebSocket upgrade requires GET")
		return
	}
	if !wsframe.HeaderHasToken(r.Header.Values("Connection"), "upgrade") || !wsframe.HeaderHasToken(r.Header.Values("Upgrade"), "websocket") {
		s.stats.badHandshake.Add(1)
		w.Header().Set("Upgrade", "websocket")
		httpError(w, http.StatusUpgradeRequired, "this port only serves WebSocket upgrades")
		return
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		s.stats.badHandshake.Add(1)
		w.Header().Set("Sec-WebSocket-Version", "13")
		httpError(w, http.StatusUpgradeRequired, "unsupported Sec-WebSocket-Version (want 13)")
		return
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
		s.stats.badHandshake.Add(1)
		httpError(w, http.StatusBadRequest, "missing or malformed Sec-WebSocket-Key")
		return
	}

	origin := r.Header.Get("Origin")
	backend := false
	if vals, ok := r.Header[http.CanonicalHeaderKey(backendKeyHeader)]; ok {
		if len(vals) != 1 || !s.keyOK(vals[0]) {
			s.stats.refusedKey.Add(1)
			s.warn.key.Warn().Str("remote", r.RemoteAddr).Str("origin", logOrigin(origin)).Msg("connection refused: wrong users-api-key")
			httpError(w, http.StatusUnauthorized, "invalid users-api-key")
			return
		}
		if string(s.key()) == ExampleAPIKey && !remoteLoopback(r.RemoteAddr) {
			// The example key is public: from another host it proves
			// nothing, and a backend receives every targeted event.
			s.stats.refusedExample.Add(1)
			s.warn.key.Warn().Str("remote", r.RemoteAddr).Msg("backend refused: socketApiKey is the example value, accepted from loopback only")
			httpError(w, http.StatusForbidden, fmt.Sprintf("socketApiKey is the example value %q from config.example.json: backends are accepted from loopback only until the operator sets a secret (%s)", ExampleAPIKey, exampleKeyFix))
			return
		}
		backend = true
	} else if len(origin) > originpkg.MaxLen {
		// Refused unmatched and uncached (origin.MaxLen); logged cut short.
		s.stats.refusedOrigin.Add(1)
		s.warn.origin.Warn().Str("remote", r.RemoteAddr).Str("origin", logOrigin(origin)).Int("originBytes", len(origin)).Msg("connection refused: Origin header too long")
		httpError(w, http.StatusForbidden, fmt.Sprintf("Origin header is %d bytes, longer than the %d accepted", len(origin), originpkg.MaxLen))
		return
	} else if !s.origins.Load().Allow(origin) {
		s.stats.refusedOrigin.Add(1)
		s.warn.origin.Warn().Str("remote", r.RemoteAddr).Str("origin", logOrigin(origin)).Msg("connection refused: origin not approved")
		httpError(w, http.StatusForbidden, "origin not approved")
		return
	}
	cur := s.current.Load()
	// From here on the upgrade holds its slots of the per-source and
	// per-user counts (admission.go); every refusal below gives them
	// back, and so does removeConn once the connection has joined.
	var held slots
	joined := false
	defer func() {
		if !joined {
			s.releaseSlots(held)
		}
	}()
	if !backend {
		// Cheapest first: the per-source cap before the accept rate (an
		// address at its cap spends no token) and both before the JWT's
		// signature check.
		if key := sourceKey(r.RemoteAddr); key != "" {
			if !s.perIP.acquire(key, cur.MaxConnsPerIP) {
				s.stats.refusedPerIP.Add(1)
				s.warn.limit.Warn().Str("remote", r.RemoteAddr).Str("source", key).Int("maxConnsPerIP", cur.MaxConnsPerIP).Msg("connection refused: at max-conns-per-ip")
				w.Header().Set("Retry-After", limitRetryAfter)
				httpError(w, http.StatusTooManyRequests, fmt.Sprintf("too many connections from %s (max-conns-per-ip %d)", key, cur.MaxConnsPerIP))
				return
			}
			held.source = key
		}
		if cur.MaxAcceptRate > 0 && !s.accept.Load().Allow() {
			s.stats.refusedRate.Add(1)
			s.warn.limit.Warn().Str("remote", r.RemoteAddr).Float64("maxAcceptRate", cur.MaxAcceptRate).Msg("connection refused: over max-accept-rate")
			w.Header().Set("Retry-After", acceptRetryAfter(*cur))
			httpError(w, http.StatusServiceUnavailable, "server is accepting too many connections at once: retry later")
			return
		}
	}
	// Backends authenticate with the key; clients may carry a JWT.
	var username string
	var expires time.Time
	if !backend {
		id, err := s.auth.Load().IdentifyRequest(r)
		if err != nil {
			s.stats.refusedToken.Add(1)
			s.warn.token.Warn().Str("remote", r.RemoteAddr).Str("origin", logOrigin(origin)).Err(err).Msg("connection refused: token")
			w.Header().Set("WWW-Authenticate", `Bearer realm="broker"`)
			httpError(w, http.StatusUnauthorized, err.Error())
			return
		}
		username, expires = id.Username, id.Expires
		if left, ok := s.banned(username); ok {
			s.stats.refusedBanned.Add(1)
			secs := strconv.FormatInt(int64(left/time.Second)+1, 10)
			w.Header().Set("Retry-After", secs)
			httpError(w, http.StatusForbidden, "this user is disconnected by the server for "+secs+" more seconds")
			return
		}
	}
	filter, err := parseEventFilter(r.URL.Query())
	if err != nil {
		s.stats.badHandshake.Add(1)
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	resume, err := parseResume(r.URL.Query())
	if err != nil {
		s.stats.badHandshake.Add(1)
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if username != "" {
		if !s.perUser.acquire(username, cur.MaxConnsPerUser) {
			s.stats.refusedPerUser.Add(1)
			s.warn.limit.Warn().Str("remote", r.RemoteAddr).Str("user", username).Int("maxConnsPerUser", cur.MaxConnsPerUser).Msg("connection refused: at max-conns-per-user")
			w.Header().Set("Retry-After", limitRetryAfter)
			httpError(w, http.StatusTooManyRequests, fmt.Sprintf("too many connections for this user (max-conns-per-user %d)", cur.MaxConnsPerUser))
			return
		}
		held.user = username
	}
	if s.cfg.MaxConns > 0 && s.hub.count.Load() >= int64(s.cfg.MaxConns) {
		s.stats.refusedFull.Add(1)
		s.warn.full.Warn().Str("remote", r.RemoteAddr).Int("maxConns", s.cfg.MaxConns).Msg("connection refused: at max-conns")
		w.Header().Set("Retry-After", "5")
		httpError(w, http.StatusServiceUnavailable, "server is at its connection limit")
		return
	}

	// permessage-deflate, when the client offers it in a form the
	// broker can honour (deflate.go); otherwise no extension.
	ext := ""
	if s.cfg.Compression == "on" {
		ext = negotiateDeflate(r.Header.Values("Sec-WebSocket-Extensions"))
	}

	hj, ok := w.(http.Hijacker)
	if !ok {
		httpError(w, http.StatusInternalServerError, "cannot take over the connection")
		return
	}
	raw, _, err := hj.Hijack()
	if err != nil {
		httpError(w, http.StatusInternalServerError, "cannot take over the connection")
		return
	}
	hc, ok := raw.(*nbhttp.Conn)
	var nbc *nbio.Conn
	var link *tlsLink // TLS: the socket's record layer (tls.go)
	if ok {
		nbc, link, ok = splitConn(hc.Conn)
	}
	if !ok {
		// Only nbio connections reach this handler; anything else is a
		// programming error, not a client error.
		s.log.Error().Str("type", fmt.Sprintf("%T", raw)).Msg("upgrade: unexpected connection type")
		_ = raw.Close()
		return
	}
	if _, isHTTP := nbc.Session().(*nbhttp.Parser); !isHTTP || hc.Parser == nil {
		s.stats.badHandshake.Add(1) // see upgradedAlready; kept as a backstop
		return
	}

	c := &conn{
		cursor: cursor{
			id:      s.nextID.Add(1),
			variant: logVariant(resume.seq, ext != ""),
		},
		srv:      s,
		nbc:      nbc,
		backend:  backend,
		remote:   r.RemoteAddr,
		username: username,
		seqMode:  resume.seq,
		deflate:  ext != "",
		tls:      link,
	}
	if link != nil {
		link.countInto(&c.queued)
	}
	c.want = wantFor(backend, username, filter)
	now := s.now()
	c.lastRead.Store(now)
	c.lastPing.Store(now)
	c.ready.Store(true)
	// From here on nbio hands this socket's bytes to c.Parse.
	nbc.SetSession(c)
	hc.Parser = nil
	// The socket may have been closed meanwhile (the client vanished), and
	// its fd reused by a new connection at once. Both calls check, under
	// nbio's lock, that the socket is still open (SetWriteBuffer does since
	// patch 3 in third_party/nbio); checking c.gone here would not do, as
	// CloseAndClean runs on nbio's executor after the fd is closed. If the
	// socket is gone, c.send below fails and c is not added.
	_ = nbc.SetReadDeadline(time.Time{})

	resp := make([]byte, 0, 160)
	resp = append(resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	resp = append(resp, wsframe.AcceptKey(key)...)
	if ext != "" {
		resp = append(resp, "\r\nSec-WebSocket-Extensions: "...)
		resp = append(resp, ext...)
	}
	resp = append(resp, "\r\n\r\n"...)
	// The 101 goes out while c joins the table, under its shard's lock, so
	// no broadcast frame can precede it and every event published after
	// the client saw 101 reaches it.
	if hook := testHookUpgrade.Load(); hook != nil {
		(*hook)()
	}
	refusal := ""
	added, full := s.hub.addWith(c, int64(s.cfg.MaxConns), func() bool {
		// Re-checked under the shard lock: Shutdown sets draining before
		// it closes every connection in the table, so a connection either
		// gets its 1001 or is never added.
		if s.draining.Load() {
			refusal = "server is shutting down"
			return false
		}
		gap := s.resumeAt(c, resume)
		c.ackSeq.Store(c.next)
		c.joined = s.now()
		// A backend joins the MetaRequest routing before its 101 is
		// written, both under wmu: a request forwarded to it (offer takes
		// wmu) waits for the 101 to be written first, and one sent by a
		// client that saw the backend's 101 finds it. (Joining after the
		// write left a window, between the 101 reaching the backend and
		// the join, in which a loaded machine could answer "no backend
		// available".)
		//
		// Its username counts online from before its 101 too, for the
		// same reason: a client that has its 101 is in GET /api/online.
		// Under the shard lock, so removeConn (which takes it to remove
		// c) releases only after this.
		if username != "" {
			s.online.acquire(username, 0)
		}
		c.wmu.Lock()
		if backend {
			s.meta.addBackend(c)
		}
		sent := !c.closing.Load() && c.writeRaw(resp) == nil
		if hook := testHookSent101.Load(); hook != nil && sent {
			(*hook)()
		}
		c.wmu.Unlock()
		if !sent || (gap != nil && !c.send(gap)) {
			if backend {
				s.meta.removeBackend(c)
			}
			if username != "" {
				s.online.release(username)
			}
			return false
		}
		return true
	})
	if !added {
		if full {
			refusal = "server is at its connection limit"
		}
		if refusal != "" {
			// The socket is ours since the hijack: answer the refusal in
			// HTTP ourselves rather than hanging up without a word.
			s.stats.refusedFull.Add(1)
			c.closing.Store(true)
			c.wmu.Lock()
			_ = c.writeRaw(rawHTTPError(http.StatusServiceUnavailable, refusal))
			c.wmu.Unlock()
			c.closeAfterFlush()
			return
		}
		_ = nbc.Close()
		return
	}
	// removeConn releases the slots from here on (slotsOf(c) == held).
	joined = true
	if !expires.IsZero() {
		s.armExpiry(c, expires) // a no-op if removeConn has run (stopExpiry)
	}
	if hook := testHookJoined.Load(); hook != nil {
		(*hook)()
	}
	s.stats.accepted.Add(1)
	if e := s.log.Debug(); e.Enabled() {
		e.Uint64("conn", c.id).Str("remote", c.remote).Str("origin", logOrigin(origin)).Bool("backend", backend).
			Str("user", username).Msg("connection open")
	}
}

// logOrigin is origin as logged: cut to 128 bytes, so that a refused
// client cannot write kilobytes into the log per line.
func logOrigin(origin string) string {
	const most = 128
	if len(origin) <= most {
		return origin
	}
	return origin[:most] + "..."
}

// testHookUpgrade, when set by a test, runs after the early checks of an
// upgrade and before the connection joins the table: it lets tests line
// upgrades up against Shutdown or the connection cap.
var testHookUpgrade atomic.Pointer[func()]

// testHookSent101, when set by a test, runs right after a connection's 101
// is written, still under its wmu and the shard lock: it lets a test act
// between the client seeing its 101 and the rest of the handshake.
var testHookSent101 atomic.Pointer[func()]

// testHookJoined, when set by a test, runs once a connection has joined
// the table and its 101 is out, before the handler's last steps.
var testHookJoined atomic.Pointer[func()]

// upgradedAlready reports whether the socket behind w was already upgraded
// by an earlier request on it.
func upgradedAlready(w http.ResponseWriter) bool {
	res, ok := w.(*nbhttp.Response)
	if !ok || res.Parser == nil {
		return false
	}
	hc, ok := res.Parser.Conn.(*nbhttp.Conn)
	if !ok {
		return false
	}
	nbc, _, ok := splitConn(hc.Conn)
	if !ok {
		return false
	}
	_, isHTTP := nbc.Session().(*nbhttp.Parser)
	return !isHTTP
}

// rawHTTPError is a complete HTTP error response, for a socket already
// taken over from the HTTP server.
func rawHTTPError(code int, msg string) []byte {
	body := appendJSONError(nil, msg)
	b := fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n", code, http.StatusText(code), len(body))
	if code == http.StatusServiceUnavailable {
		b = append(b, "Retry-After: 5\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}

// wantFor builds the log filter of a connection (nil: every untargeted
// event, the common case, which reads the log fastest).
func wantFor(backend bool, username string, filter uint16) eventlog.Want {
	pass := func(t uint8) bool { return filter == 0 || t < 1 || t > 9 || filter&(1<<t) != 0 }
	switch {
	case backend:
		// Backends see targeted events too, as the original server's did.
		return func(m eventlog.Meta) bool { return pass(m.Type) }
	case username != "":
		return func(m eventlog.Meta) bool { return (m.User == "" || m.User == username) && pass(m.Type) }
	case filter != 0:
		return func(m eventlog.Meta) bool { return m.User == "" && pass(m.Type) }
	}
	return nil
}

// parseEventFilter reads ?events=1,2,5: the server event types (1-9) the
// connection wants. Absent means all; anything malformed is an error that
// names the bad element.
func parseEventFilter(q url.Values) (uint16, error) {
	vals, ok := q["events"]
	if !ok {
		return 0, nil
	}
	if len(vals) != 1 || vals[0] == "" {
		return 0, errors.New("events: want one comma-separated list of event types 1-9, e.g. events=1,2,5")
	}
	var f uint16
	for _, part := range strings.Split(vals[0], ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 || n > 9 {
			return 0, fmt.Errorf("events: %q is not a server event type (1-9)", part)
		}
		f |= 1 << n
	}
	return f, nil
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(appendJSONError(nil, msg))
}
