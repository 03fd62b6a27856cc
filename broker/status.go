package broker

import (
	"embed"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// statusFiles is the live status page: one HTML file with its CSS and
// script inline, so it needs no build step and no further requests that an
// authenticating middleware would have to let through.
//
//go:embed status/index.html
var statusFiles embed.FS

// StatusInterval is how often GET /status/events sends a snapshot.
const StatusInterval = time.Second

// statusDrainPoll bounds how long an open status stream delays a graceful
// shutdown: http.Server.Shutdown waits for active requests, and a stream
// never ends by itself, so it polls the draining flag this often.
const statusDrainPoll = 100 * time.Millisecond

// statusSnapshot is one server-sent event: the counters plus what only the
// status page needs. The page computes rates from consecutive snapshots.
type statusSnapshot struct {
	// Time is when the snapshot was taken, in Unix milliseconds, so rates
	// use the broker's clock rather than when the browser got the event.
	Time int64 `json:"time"`
	Stats
	// Shards holds the connection count of each subscriber-table shard.
	Shards []int `json:"shards"`
}

// registerStatus adds the status page and its event stream to the admin
// mux. The page (GET /) holds no data and is served to anyone who can reach
// the admin listener; the stream requires the API key (see
// serveStatusEvents).
func (s *Server) registerStatus(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", s.serveStatusPage)
	mux.HandleFunc("GET /status/events", s.serveStatusEvents)
}

func (s *Server) serveStatusPage(w http.ResponseWriter, r *http.Request) {
	page, err := statusFiles.ReadFile("status/index.html")
	if err != nil { // cannot happen: the file is embedded at build time
		httpError(w, http.StatusInternalServerError, "status page missing")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// The page only talks to its own origin (the stream and the publish
	// API) and is never framed.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(page)
}

// serveStatusEvents is GET /status/events: a server-sent event stream of
// statusSnapshot, one at once and then one every StatusInterval, until the
// client goes away or the broker shuts down.
//
// The key is required. EventSource cannot send headers, so the key may come
// in the "key" query parameter (on this endpoint only) as well as in an
// Authorization: Bearer header.
func (s *Server) serveStatusEvents(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && key == "" {
		key = strings.TrimSpace(tok)
	}
	if !s.keyOK(key) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="broker"`)
		httpError(w, http.StatusUnauthorized, "missing or invalid key")
		return
	}
	if s.draining.Load() {
		httpError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	rc := http.NewResponseController(w)
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }() // the connection may serve more requests
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a reverse proxy must not buffer the stream
	w.WriteHeader(http.StatusOK)

	send := func() bool {
		b, err := json.Marshal(statusSnapshot{Time: wallNow().UnixMilli(), Stats: s.Stats(), Shards: s.hub.shardCounts()})
		if err != nil {
			return false
		}
		// A client that stops reading must not hold this goroutine.
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 0, len(b)+8)
		buf = append(buf, "data: "...)
		buf = append(buf, b...)
		buf = append(buf, "\n\n"...)
		if _, err := w.Write(buf); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send() {
		return
	}
	tick := time.NewTicker(StatusInterval)
	defer tick.Stop()
	drain := time.NewTicker(statusDrainPoll)
	defer drain.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-drain.C:
			if s.draining.Load() {
				return
			}
		case <-tick.C:
			if !send() {
				return
			}
		}
	}
}
