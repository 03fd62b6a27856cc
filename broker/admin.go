package broker

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/webinate/broker/codec"
)

// adminHandler serves the internal listener: the publish API, health and
// counters. It runs on net/http: its traffic is a few backends, not tens of
// thousands of sockets.
func (s *Server) adminHandler() http.Handler {
	// Key-protected routes: everything not registered on the outer mux
	// below, including routes added later (see adminauth.go).
	keyed := http.NewServeMux()
	keyed.HandleFunc("/stats", s.serveStats)
	keyed.Handle("/metrics", s.metricsHandler())
	keyed.HandleFunc("/api/disconnect", s.serveDisconnect)
	keyed.HandleFunc("/api/online", s.serveOnline)
	if s.cfg.Pprof {
		keyed.Handle("/debug/pprof/", loopbackOnly(http.HandlerFunc(pprof.Index)))
		keyed.Handle("/debug/pprof/cmdline", loopbackOnly(http.HandlerFunc(pprof.Cmdline)))
		keyed.Handle("/debug/pprof/profile", loopbackOnly(http.HandlerFunc(pprof.Profile)))
		keyed.Handle("/debug/pprof/symbol", loopbackOnly(http.HandlerFunc(pprof.Symbol)))
		keyed.Handle("/debug/pprof/trace", loopbackOnly(http.HandlerFunc(pprof.Trace)))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", s.serveHealth)     // open
	mux.HandleFunc("/api/events", s.servePublish) // checks the key itself
	// GET / (the page, no data: open) and GET /status/events (checks the
	// key itself, from the query: EventSource cannot send headers).
	s.registerStatus(mux)
	mux.Handle("/", s.requireKey(keyed))
	return mux
}

// servePublish is POST /api/events: one event object or an array of them,
// published all or nothing.
func (s *Server) servePublish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		httpError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if !s.authorized(w, r, "publishing is disabled: no socketApiKey is configured") {
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			httpError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
			return
		}
	}
	if s.draining.Load() {
		httpError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxPublishBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httpError(w, http.StatusRequestEntityTooLarge, "body exceeds "+strconv.FormatInt(s.cfg.MaxPublishBytes, 10)+" bytes")
			return
		}
		httpError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	events, err := codec.SplitPublish(body)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.waitForCapacity(r) {
		s.stats.publishRefused.Add(1)
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusServiceUnavailable, s.saturatedReason())
		return
	}
	if s.bus != nil {
		s.publishToBus(w, events)
		return
	}
	s.publish(events)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(strconv.AppendInt([]byte(`{"accepted":`), int64(len(events)), 10))
	_, _ = w.Write([]byte("}"))
}

// waitForCapacity holds a publish request while the broker is saturated
// (Server.saturated: this node's fan-out or, in a cluster, another
// node's), up to PublishWait: backpressure that paces publishers to
// the delivery rate instead of queueing without bound. It reports false if
// the broker is still saturated (or the client went away or the broker is
// draining).
func (s *Server) waitForCapacity(r *http.Request) bool {
	if !s.saturated() {
		return true
	}
	s.stats.publishWaits.Add(1)
	// Client echo broadcasts wait while this request does (broadcastEcho):
	// what the fan-out catches up goes to publishers first.
	s.publishersWaiting.Add(1)
	defer s.publishersWaiting.Add(-1)
	deadline := time.NewTimer(s.cfg.PublishWait)
	defer deadline.Stop()
	for {
		// Woken at the end of each fan-out pass; the short timer covers
		// clients that catch up by reading (pongs) between passes.
		select {
		case <-deadline.C:
			return false
		case <-r.Context().Done():
			return false
		case <-s.done:
			return false
		case <-s.hub.progressChan():
		case <-time.After(5 * time.Millisecond):
		}
		if s.draining.Load() {
			return false
		}
		if !s.saturated() {
			return true
		}
	}
}

// publish encodes every event once, into one buffer, and queues the
// frames for all connections, back to back. Events have been validated.
func (s *Server) publish(events [][]byte) {
	n := 0
	for _, e := range events {
		n += frameSize(len(e))
	}
	buf := make([]byte, 0, n)
	items := make([]item, len(events))
	for i, e := range events {
		start := len(buf)
		buf = appendFrame(buf, opText, e)
		items[i] = s.itemFor(e, buf[start:len(buf):len(buf)])
	}
	s.hub.broadcast(items...)
}

// itemFor describes a validated server event for fan-out: its type (for
// connection filters) and, in TargetUser mode, its user.
func (s *Server) itemFor(ev, frame []byte) item {
	it := item{frame: frame}
	if t, err := codec.PeekEventType(ev); err == nil && t > 0 && t < 256 {
		it.etype = uint8(t)
	}
	if s.cfg.Targeting == TargetUser {
		it.user, _ = codec.StringField(ev, "username")
	}
	return it
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"draining"}`))
		return
	}
	conns := strconv.FormatInt(s.hub.count.Load(), 10)
	if s.bus != nil {
		s.serveClusterHealth(w, conns) // bus.go
		return
	}
	_, _ = w.Write([]byte(`{"status":"ok","connections":` + conns + `}`))
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Stats())
}

// appendJSONError appends {"error":"msg"} with msg JSON-escaped.
func appendJSONError(dst []byte, msg string) []byte {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	return append(dst, b...)
}
