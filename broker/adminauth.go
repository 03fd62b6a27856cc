package broker

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Admin listener access rules (PROTOCOL.md, Admin listener):
//
//   - /healthz is open: load balancers and orchestrators probe it without
//     credentials, and it tells nothing but "ok" and a connection count.
//   - /api/events checks the key itself, after its method check, so that
//     its answers (405, then 403/401, then 415, ...) stay as they were.
//   - Everything else, /stats, /metrics, /debug/pprof/ and any route added
//     later, is registered behind requireKey and needs
//     "Authorization: Bearer <socketApiKey>".
//   - /debug/pprof/ is, in addition, served to loopback clients only.

// requireKey wraps the admin routes that need the API key: 403 when no
// socketApiKey is configured, 401 with WWW-Authenticate when the bearer key
// is missing or wrong.
func (s *Server) requireKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(w, r, "admin API is disabled: no socketApiKey is configured") {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorized checks the bearer key of an admin request. If it fails it
// writes the answer (403 with disabledMsg when no key is configured, 401
// otherwise) and reports false.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request, disabledMsg string) bool {
	if len(s.key()) == 0 {
		httpError(w, http.StatusForbidden, disabledMsg)
		return false
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !s.keyOK(strings.TrimSpace(tok)) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="broker"`)
		httpError(w, http.StatusUnauthorized, "missing or invalid bearer key")
		return false
	}
	return true
}

// loopbackOnly serves next only to clients connecting from a loopback
// address; others get 403. pprof shows the command line, heap contents and
// goroutine stacks, so even a key holder on another host does not get it.
// A reverse proxy on the same host makes every request loopback: do not
// put one in front of the admin listener with -pprof on.
func loopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isLoopback(r.RemoteAddr) {
			httpError(w, http.StatusForbidden, "pprof is served to loopback clients only")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isLoopback reports whether a RemoteAddr ("host:port") is a loopback IP
// (127.0.0.0/8, ::1, or an IPv4-mapped 127.x address).
func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return ip.Unmap().IsLoopback()
}
