package baseline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxPublishBody bounds one publish request body.
const maxPublishBody = 16 << 20

// servePublish implements POST /api/events: one event or an array, all
// validated before any is broadcast.
func (s *Server) servePublish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
		return
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "Bearer ") || !s.keyOK(strings.TrimPrefix(auth, "Bearer ")) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPublishBody+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "reading body: " + err.Error()})
		return
	}
	if len(body) > maxPublishBody {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body too large"})
		return
	}
	events, err := splitEvents(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	for _, ev := range events {
		s.hub.broadcast(ev)
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"accepted": len(events)})
}

// splitEvents validates body (an object or an array of objects) and returns
// each event's bytes as published.
func splitEvents(body []byte) ([][]byte, error) {
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
		_, et, reason := parseEvent(raw)
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
