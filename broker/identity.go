package broker

import (
	"strconv"
	"sync"
	"time"

	"github.com/webinate/broker/codec"
	"github.com/webinate/broker/internal/monoclock"
)

// Identity over a connection's whole life. A JWT is checked at the upgrade;
// these rules keep the connection's identity true after it:
//
//   - a token's exp ends the connection once it passes (plus the
//     verifier's leeway): close 4001, unless the client has presented a
//     fresher token first (TokenRefresh, eventType 11). Once, at most
//     RefreshWindow before that, the broker tells the client
//     {"eventType":11,"expiresIn":<seconds>}. Each connection with an exp
//     has one timer (no goroutine, nothing per delivery): expiry costs the
//     fan-out nothing.
//   - the backend can disconnect a user everywhere (POST /api/disconnect,
//     close 4002) and bar her upgrades for a while (403).
//   - a backend connected with a socketApiKey that a reload replaced is
//     closed (4003).
//
// Presence (GET /api/online) counts the connections in the table by user.

// Close reasons of identity (PROTOCOL.md, "Identity over a connection's
// life"). 4000-4999 are the application's range (RFC 6455 section 7.4.2).
var (
	reasonTokenExpired = reason{4001, "token_expired", "token expired"}
	reasonDisconnected = reason{4002, "disconnected", "disconnected by the server"}
	reasonKeyRotated   = reason{4003, "key_rotated", "key rotated"}
)

// expiry is a connection's token lifetime: guarded by its mu, because the
// poller (refresh) and the timer (notice, close) both change it.
type expiry struct {
	mu       sync.Mutex
	at       time.Time   // the token's exp; zero: the connection does not expire
	timer    *time.Timer // fires at the notice, then at the close
	noticed  bool        // the expiresIn notice for this token was sent
	stopped  bool        // the connection is gone: never re-arm
	deadline time.Time   // at + leeway: the close
}

// armExpiry (re)starts c's expiry for a token expiring at exp (zero: none).
// The notice is sent once per token: a refresh re-arms it for the new one.
func (s *Server) armExpiry(c *conn, exp time.Time) {
	e := &c.exp
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return
	}
	e.at, e.noticed = exp, false
	if exp.IsZero() {
		if e.timer != nil {
			e.timer.Stop()
		}
		return
	}
	e.deadline = exp.Add(s.auth.Load().Leeway())
	s.schedule(c)
}

// schedule sets e.timer for the next step of c's expiry. e.mu is held.
func (s *Server) schedule(c *conn) {
	e := &c.exp
	next := e.deadline
	if !e.noticed {
		next = e.at.Add(-s.current.Load().RefreshWindow)
	}
	d := time.Until(next) // wall clock: exp is a wall-clock time
	if e.timer == nil {
		e.timer = time.AfterFunc(d, func() { s.expiryStep(c) })
		return
	}
	e.timer.Reset(d)
}

// expiryStep is c's expiry timer: the notice first, then the close. The
// wall clock is read again, so a clock that stepped back only delays it.
func (s *Server) expiryStep(c *conn) {
	e := &c.exp
	e.mu.Lock()
	if e.stopped || e.at.IsZero() {
		e.mu.Unlock()
		return
	}
	now := time.Now()
	if !e.noticed {
		if now.Before(e.at.Add(-s.current.Load().RefreshWindow)) {
			s.schedule(c) // the wall clock stepped back: not yet
			e.mu.Unlock()
			return
		}
		e.noticed = true
		left := max(int64(time.Until(e.at).Round(time.Second)/time.Second), 0)
		s.schedule(c)
		e.mu.Unlock()
		var buf [48]byte
		b := append(buf[:0], `{"eventType":11,"expiresIn":`...)
		b = strconv.AppendInt(b, left, 10)
		c.writeText(append(b, '}'))
		return
	}
	if now.Before(e.deadline) {
		s.schedule(c)
		e.mu.Unlock()
		return
	}
	e.stopped = true
	e.mu.Unlock()
	if c.closeWith(reasonTokenExpired, "") {
		s.stats.tokenExpired.Add(1)
	}
}

// stopExpiry ends c's expiry timer: the connection is gone.
func (c *conn) stopExpiry() {
	e := &c.exp
	e.mu.Lock()
	e.stopped = true
	if e.timer != nil {
		e.timer.Stop()
	}
	e.mu.Unlock()
}

// Error reasons of TokenRefresh.
const (
	errRefreshAnonymous = "only a connection identified by a token can refresh it"
	errRefreshNoToken   = "token refresh requires a string token"
	errRefreshOtherUser = "the token is for another user"
)

// refreshToken handles a client's TokenRefresh: the new token is verified
// like an upgrade token and must name the same user; then it is the
// connection's, and the answer is {"eventType":11,"exp":<unix seconds>}
// (null when the new token has no exp). A bad token gets an error event
// and the old expiry stands.
func (s *Server) refreshToken(c *conn, msg []byte) {
	if c.username == "" {
		s.replyError(c, codec.TokenRefresh, errRefreshAnonymous)
		return
	}
	tok, ok := codec.StringField(msg, "token")
	if !ok || tok == "" {
		s.replyError(c, codec.TokenRefresh, errRefreshNoToken)
		return
	}
	id, err := s.auth.Load().VerifyIdentity(tok)
	switch {
	case err != nil:
		s.stats.refreshRefused.Add(1)
		s.replyError(c, codec.TokenRefresh, err.Error())
		return
	case id.Username != c.username:
		s.stats.refreshRefused.Add(1)
		s.replyError(c, codec.TokenRefresh, errRefreshOtherUser)
		return
	}
	s.armExpiry(c, id.Expires)
	s.stats.refreshes.Add(1)
	var buf [48]byte
	b := append(buf[:0], `{"eventType":11,"exp":`...)
	if id.Expires.IsZero() {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, id.Expires.Unix(), 10)
	}
	c.writeText(append(b, '}'))
}

// banned reports whether username may not upgrade now (a ban from POST
// /api/disconnect), and for how much longer.
func (s *Server) banned(username string) (time.Duration, bool) {
	if username == "" {
		return 0, false
	}
	return s.bans.left(username)
}

// banList holds users refused at the upgrade until a time (monotonic),
// set by POST /api/disconnect with "ban". Expired entries are dropped as
// they are looked at and when a new ban is added, so it holds at most the
// users banned in the last max-ban period.
type banList struct {
	mu    sync.Mutex
	until map[string]int64
}

// add bars username for d from now; a longer ban already set stands.
func (b *banList) add(username string, d time.Duration) {
	now := monoclock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.until == nil {
		b.until = make(map[string]int64)
	}
	for u, t := range b.until {
		if t <= now {
			delete(b.until, u)
		}
	}
	b.until[username] = max(b.until[username], now+int64(d))
}

// left reports how long username stays banned.
func (b *banList) left(username string) (time.Duration, bool) {
	now := monoclock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.until[username]
	if !ok {
		return 0, false
	}
	if t <= now {
		delete(b.until, username)
		return 0, false
	}
	return time.Duration(t - now), true
}

// disconnectLocal closes every connection of username on this node with
// 4002 and bans her for ban (if positive). It returns how many it closed.
func (s *Server) disconnectLocal(username string, ban time.Duration) int {
	if ban > 0 {
		s.bans.add(username, ban)
	}
	var list []*conn
	s.hub.each(func(c *conn) {
		if c.username == username && !c.backend && !c.closing.Load() {
			list = append(list, c)
		}
	})
	n := 0
	for _, c := range list {
		if c.closeWith(reasonDisconnected, "") {
			n++
		}
	}
	s.stats.disconnected.Add(int64(n))
	return n
}

// Presence is who is connected to one node, or (summed) to a cluster.
type Presence struct {
	// Users is the number of distinct users with at least one connection
	// identified by a token; Connections counts all client connections,
	// anonymous ones included (backends are not clients).
	Users       int `json:"users"`
	Connections int `json:"connections"`
	// Usernames is one page of the users, in byte order, after After
	// (exclusive), at most Limit of them; More says whether the page was
	// cut short.
	Usernames []string `json:"usernames"`
	More      bool     `json:"more"`
}

// userConnections is username's connection count on this node.
func (s *Server) userConnections(username string) int { return s.online.count(username) }
