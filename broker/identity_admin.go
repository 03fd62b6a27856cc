package broker

import (
	"encoding/json"
	"errors"

	"net/http"
	"strconv"
	"time"
)

// maxBan bounds the ban of POST /api/disconnect: a ban is for cooling a
// user off, not a user database (the backend owns that).
const maxBan = 7 * 24 * time.Hour

// serveDisconnect is POST /api/disconnect {"username":"alice","ban":S}:
// every connection of that user, on every node, is closed with 4002, and
// with a positive ban (seconds) her upgrades are refused (403) that long.
// It answers {"disconnected":N}, N counted over the cluster (see
// disconnectAll for a node that does not answer).
func (s *Server) serveDisconnect(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		httpError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	var req struct {
		Username *string  `json:"username"`
		Ban      *float64 `json:"ban"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httpError(w, http.StatusRequestEntityTooLarge, "body exceeds 4096 bytes")
			return
		}
		httpError(w, http.StatusBadRequest, "body must be {\"username\":string,\"ban\":seconds}: "+err.Error())
		return
	}
	if dec.More() {
		httpError(w, http.StatusBadRequest, "body must be one JSON object")
		return
	}
	if req.Username == nil || *req.Username == "" {
		httpError(w, http.StatusBadRequest, "username is required")
		return
	}
	var ban time.Duration
	if req.Ban != nil {
		if *req.Ban < 0 || *req.Ban > maxBan.Seconds() {
			httpError(w, http.StatusBadRequest, "ban must be between 0 and "+strconv.Itoa(int(maxBan.Seconds()))+" seconds")
			return
		}
		ban = time.Duration(*req.Ban * float64(time.Second))
	}
	n, partial := s.disconnectAll(r.Context(), *req.Username, ban)
	w.Header().Set("Content-Type", "application/json")
	b := strconv.AppendInt([]byte(`{"disconnected":`), int64(n), 10)
	if partial {
		b = append(b, `,"partial":true`...)
	}
	_, _ = w.Write(append(b, "}\n"...))
}

// serveOnline is GET /api/online: with ?username=alice,
// {"username":"alice","connections":N}; otherwise the counts and one page
// of usernames (?limit=, default 100, at most 1000; ?after= the last name
// of the previous page). Counted over the cluster.
func (s *Server) serveOnline(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		httpError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	q := r.URL.Query()
	w.Header().Set("Content-Type", "application/json")
	if q.Has("username") {
		u := q.Get("username")
		if u == "" {
			httpError(w, http.StatusBadRequest, "username must not be empty")
			return
		}
		n, partial := s.userOnline(r.Context(), u)
		_ = json.NewEncoder(w).Encode(struct {
			Username    string `json:"username"`
			Connections int    `json:"connections"`
			Partial     bool   `json:"partial,omitempty"`
		}{u, n, partial})
		return
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			httpError(w, http.StatusBadRequest, "limit must be an integer from 1 to 1000")
			return
		}
		limit = n
	}
	p, partial := s.presenceAll(r.Context(), q.Get("after"), limit)
	_ = json.NewEncoder(w).Encode(struct {
		Presence
		Partial bool `json:"partial,omitempty"`
	}{p, partial})
}
