package broker

import (
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// Admission limits at the upgrade (serveUpgrade), beyond max-conns:
//
//   - per source address (MaxConnsPerIP) and per JWT user
//     (MaxConnsPerUser): 429 with Retry-After. The counts include upgrades
//     in flight and are released when the connection leaves the table
//     (removeConn), so a client that reconnects in a loop cannot hold more
//     than its share either.
//   - per node, the accept rate (MaxAcceptRate/MaxAcceptBurst): 503 with a
//     jittered Retry-After, so a reconnect storm comes back spread out.
//
// Backends are exempt from both: they are few, they prove the key, and
// they are the broker's publishers, which must get back in first after a
// restart. They do count against max-conns. Every cap is read from the
// current config at each upgrade, so Reload changes them live; the counts
// are kept whether or not a cap is set, so a cap switched on later sees
// the connections already open.

// testHookNoLocal, when set by a test, makes every remote address count as
// a public one: not loopback for the example-key rule, not exempt from the
// per-IP cap. Tests can only connect from 127.0.0.1, and this is what lets
// them see what a client from another host meets.
var testHookNoLocal atomic.Bool

// remoteLoopback reports whether remote ("host:port") is a loopback
// address (isLoopback), as far as the upgrade rules are concerned.
func remoteLoopback(remote string) bool {
	return !testHookNoLocal.Load() && isLoopback(remote)
}

// sourceKey is the key remote is counted under for MaxConnsPerIP, or ""
// if that source is not capped. An IPv6 client is counted by its /64,
// since one subscriber is usually given a whole /64 and could otherwise
// open the cap from each of its addresses.
func sourceKey(remote string) string {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		// nbio gives "ip:port" for TCP; anything else is counted as is
		// rather than let through uncounted.
		host, _, err := net.SplitHostPort(remote)
		if err != nil {
			return remote
		}
		return host
	}
	a := ap.Addr().Unmap().WithZone("")
	if !testHookNoLocal.Load() && uncappedAddr(a) {
		return ""
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// uncappedAddr reports whether a is a source the per-IP cap leaves alone:
// loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local,
// or unspecified. Those are the operator's own network, where reverse
// proxies and load balancers stand for many clients.
func uncappedAddr(a netip.Addr) bool {
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsUnspecified()
}

// loopbackHost reports whether a listen address ("host:port") binds
// loopback only: a loopback IP or "localhost". An empty host (every
// interface) or any other name is not.
func loopbackHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// connCounts counts open (and opening) connections by key. Its size is
// bounded by the connections: a key leaves when its count reaches zero.
type connCounts struct {
	mu sync.Mutex
	n  map[string]int
}

// acquire counts one more connection for key unless limit (> 0) is
// already reached, and reports whether it did. With limit <= 0 it always
// counts.
func (cc *connCounts) acquire(key string, limit int) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if limit > 0 && cc.n[key] >= limit {
		return false
	}
	if cc.n == nil {
		cc.n = make(map[string]int)
	}
	cc.n[key]++
	return true
}

// release undoes one acquire of key.
func (cc *connCounts) release(key string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	switch n := cc.n[key]; {
	case n > 1:
		cc.n[key] = n - 1
	case n == 1:
		delete(cc.n, key)
	}
}

// count is key's count now.
func (cc *connCounts) count(key string) int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.n[key]
}

// slots is what one upgrade holds of the per-source and per-user counts.
// A connection in the table holds exactly slotsOf(its fields), which is
// how removeConn releases them without a field of its own.
type slots struct {
	source string // sourceKey, "" if not counted
	user   string // username, "" if not counted
}

// slotsOf is what a connection with these fields is counted under.
func slotsOf(remote string, backend bool, username string) slots {
	if backend {
		return slots{}
	}
	return slots{source: sourceKey(remote), user: username}
}

// releaseSlots gives back what an upgrade or a connection held.
func (s *Server) releaseSlots(sl slots) {
	if sl.source != "" {
		s.perIP.release(sl.source)
	}
	if sl.user != "" {
		s.perUser.release(sl.user)
	}
}

// newAcceptLimiter is the accept-rate bucket for cfg (rate.Inf when off).
func newAcceptLimiter(cfg Config) *rate.Limiter {
	return rate.NewLimiter(acceptLimit(cfg), cfg.MaxAcceptBurst)
}

func acceptLimit(cfg Config) rate.Limit {
	if cfg.MaxAcceptRate <= 0 {
		return rate.Inf
	}
	return rate.Limit(cfg.MaxAcceptRate)
}

// acceptRetryAfter is the Retry-After, in seconds, of an upgrade refused
// by the accept rate: a random value from 1 to the time the bucket takes
// to refill (at most a minute). Every client of a storm gets one, so a
// fixed value would bring them all back in the same second.
func acceptRetryAfter(cfg Config) string {
	spread := 1.0
	if cfg.MaxAcceptRate > 0 {
		spread = math.Ceil(float64(cfg.MaxAcceptBurst) / cfg.MaxAcceptRate)
	}
	spread = min(max(spread, 1), 60)
	return strconv.Itoa(1 + rand.IntN(int(spread)))
}

// limitRetryAfter is the Retry-After (seconds) of a per-source or
// per-user refusal: a slot frees only when one of that client's
// connections closes, so there is no exact time to give.
const limitRetryAfter = "5"
