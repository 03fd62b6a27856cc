package peerapi

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
)

// MaxPublishBody bounds one publish request body.
const MaxPublishBody = 16 << 20

// Gate admits upgrade and publish requests: the key and the approved
// Origin patterns. It is safe for concurrent use.
type Gate struct {
	key     string
	origins []*regexp.Regexp
}

// NewGate compiles the origin patterns (regular expressions matched
// unanchored against the Origin header, like JavaScript's String.match).
// An empty key refuses every backend and publish request.
func NewGate(key string, origins []string) (*Gate, error) {
	g := &Gate{key: key}
	for _, p := range origins {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("origin pattern %q: %w", p, err)
		}
		g.origins = append(g.origins, re)
	}
	return g, nil
}

// OriginAllowed reports whether origin matches an approved pattern; an
// absent origin never does.
func (g *Gate) OriginAllowed(origin string) bool {
	if origin == "" {
		return false
	}
	for _, re := range g.origins {
		if re.MatchString(origin) {
			return true
		}
	}
	return false
}

// KeyOK compares got with the key in constant time.
func (g *Gate) KeyOK(got string) bool {
	return g.key != "" && subtle.ConstantTimeCompare([]byte(got), []byte(g.key)) == 1
}

// Admit decides an upgrade request before any upgrade: a backend (a
// Users-Api-Key header with the right key), a client (an approved
// Origin), or refused with status and a reason for the body.
func (g *Gate) Admit(r *http.Request) (backend bool, status int, reason string) {
	if key, ok := r.Header["Users-Api-Key"]; ok {
		if len(key) == 0 || !g.KeyOK(key[0]) {
			return false, http.StatusUnauthorized, "invalid api key"
		}
		return true, 0, ""
	}
	if !g.OriginAllowed(r.Header.Get("Origin")) {
		return false, http.StatusForbidden, "origin not allowed"
	}
	return false, 0, ""
}

// AdminHandler serves POST /api/events (one event or an array, all
// validated before publish is called for each, in order) and /healthz.
func (g *Gate) AdminHandler(publish func(event []byte)) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/events", func(w http.ResponseWriter, r *http.Request) {
		g.servePublish(w, r, publish)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	return mux
}

func (g *Gate) servePublish(w http.ResponseWriter, r *http.Request, publish func([]byte)) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
		return
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "Bearer ") || !g.KeyOK(strings.TrimPrefix(auth, "Bearer ")) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxPublishBody+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "reading body: " + err.Error()})
		return
	}
	if len(body) > MaxPublishBody {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body too large"})
		return
	}
	events, err := SplitEvents(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	for _, ev := range events {
		publish(ev)
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"accepted": len(events)})
}

// SplitEvents validates body (an object or an array of objects, each with
// a publishable eventType 1-9) and returns each event's bytes as
// published, sharing body's memory.
func SplitEvents(body []byte) ([][]byte, error) {
	body = bytes.TrimSpace(body)
	var raws []json.RawMessage
	if len(body) > 0 && body[0] == '[' {
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, fmt.Errorf("invalid JSON array: %w", err)
		}
	} else {
		raws = []json.RawMessage{body}
	}
	out := make([][]byte, 0, len(raws))
	for i, raw := range raws {
		_, et, reason := ParseEvent(raw)
		if reason == "" && (et < 1 || et > 9) {
			reason = fmt.Sprintf("eventType %d cannot be published", et)
		}
		if reason != "" {
			return nil, fmt.Errorf("event %d: %s", i, reason)
		}
		out = append(out, []byte(raw))
	}
	return out, nil
}

// ParseEvent decodes one event object. On failure it returns the
// eventType it could read (else 0) and a reason for the error event.
func ParseEvent(msg []byte) (map[string]json.RawMessage, int64, string) {
	if !json.Valid(msg) {
		return nil, 0, "invalid JSON"
	}
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(msg, &ev); err != nil || ev == nil {
		return nil, 0, "event must be a JSON object"
	}
	raw, ok := ev["eventType"]
	if !ok {
		return nil, 0, "missing eventType"
	}
	var et int64
	if err := json.Unmarshal(raw, &et); err != nil {
		return nil, 0, "eventType must be an integer"
	}
	return ev, et, ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// RaiseNoFile lifts the soft open-file limit to the hard limit so a peer
// can hold as many connections as the machine allows.
func RaiseNoFile() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
