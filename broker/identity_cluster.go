package broker

import (
	"context"
	"encoding/json"
	"slices"
	"time"
)

// Identity across a cluster: the disconnect API and presence ask every
// node (ClusterQuery) and add up the answers. A node that does not answer
// within queryTimeout is left out and the answer says "partial": true, so
// a backend never mistakes a slow node for an empty one. A node that is
// down has no clients to count; one that is up but cut off from NATS is
// also unhealthy in its own /healthz (see BusStatus.Healthy).

// ClusterQuery is implemented by a Bus that can put a question to every
// other node of the cluster (package cluster does, over NATS request/reply
// to all nodes). Node.Answer answers it on each node.
type ClusterQuery interface {
	// Query sends req under kind to every other node and calls done once,
	// with the answers that came within timeout; complete reports whether
	// every node the Bus knows of answered. done must not block.
	Query(kind string, req []byte, timeout time.Duration, done func(answers [][]byte, complete bool))
}

// Kinds of cluster queries (Node.Answer).
const (
	queryDisconnect = "disconnect"
	queryOnline     = "online"
	queryPresence   = "presence"
)

// queryTimeout bounds how long the disconnect API and presence wait for
// other nodes (the disconnect API promises at most 1 s).
const queryTimeout = time.Second

type disconnectQuery struct {
	User string        `json:"u"`
	Ban  time.Duration `json:"ban,omitempty"`
}

type countAnswer struct {
	N int `json:"n"`
}

// presenceAnswer is one node's presence: every username, so that
// users connected to two nodes are counted once, and its connections.
type presenceAnswer struct {
	Users       []string `json:"users"`
	Connections int      `json:"connections"`
}

// Answer implements Node: this node's part of a cluster query.
func (n busNode) Answer(kind string, req []byte) []byte {
	s := n.s
	var out any
	switch kind {
	case queryDisconnect:
		var q disconnectQuery
		if json.Unmarshal(req, &q) != nil || q.User == "" {
			return nil
		}
		out = countAnswer{s.disconnectLocal(q.User, q.Ban)}
	case queryOnline:
		var q disconnectQuery
		if json.Unmarshal(req, &q) != nil || q.User == "" {
			return nil
		}
		out = countAnswer{s.userConnections(q.User)}
	case queryPresence:
		out = presenceAnswer{Users: s.usernames(), Connections: s.clientConnections()}
	default:
		return nil
	}
	b, _ := json.Marshal(out)
	return b
}

// query asks the other nodes, if this node has a Bus that can, and waits
// for the answers (at most queryTimeout, or until ctx ends).
func (s *Server) query(ctx context.Context, kind string, req any) (answers [][]byte, complete bool) {
	cq, ok := s.bus.(ClusterQuery)
	if !ok {
		return nil, true // a single node: this node's answer is the whole
	}
	b, _ := json.Marshal(req)
	type result struct {
		answers  [][]byte
		complete bool
	}
	ch := make(chan result, 1)
	cq.Query(kind, b, queryTimeout, func(a [][]byte, c bool) { ch <- result{a, c} })
	select {
	case r := <-ch:
		return r.answers, r.complete
	case <-ctx.Done():
		return nil, false
	}
}

// disconnectAll closes username's connections on every node (ban: and
// refuses her upgrades there) and returns how many were closed, and
// whether a node may have been left out.
func (s *Server) disconnectAll(ctx context.Context, username string, ban time.Duration) (n int, partial bool) {
	n = s.disconnectLocal(username, ban)
	answers, complete := s.query(ctx, queryDisconnect, disconnectQuery{User: username, Ban: ban})
	for _, a := range answers {
		var c countAnswer
		if json.Unmarshal(a, &c) == nil {
			n += c.N
		}
	}
	return n, !complete
}

// userOnline counts username's connections over the cluster.
func (s *Server) userOnline(ctx context.Context, username string) (n int, partial bool) {
	n = s.userConnections(username)
	answers, complete := s.query(ctx, queryOnline, disconnectQuery{User: username})
	for _, a := range answers {
		var c countAnswer
		if json.Unmarshal(a, &c) == nil {
			n += c.N
		}
	}
	return n, !complete
}

// presenceAll is the cluster's presence: distinct users and connections,
// and the page of usernames after after (at most limit).
func (s *Server) presenceAll(ctx context.Context, after string, limit int) (p Presence, partial bool) {
	names := s.usernames()
	p.Connections = s.clientConnections()
	answers, complete := s.query(ctx, queryPresence, struct{}{})
	for _, a := range answers {
		var pa presenceAnswer
		if json.Unmarshal(a, &pa) != nil {
			complete = false
			continue
		}
		p.Connections += pa.Connections
		names = append(names, pa.Users...)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	p.Users = len(names)
	i, _ := slices.BinarySearch(names, after)
	if i < len(names) && names[i] == after {
		i++ // after is exclusive
	}
	page := names[i:]
	if len(page) > limit {
		page, p.More = page[:limit], true
	}
	p.Usernames = append([]string{}, page...)
	return p, !complete
}

// usernames is every user with a connection on this node, in no order
// (presenceAll sorts the cluster's together).
func (s *Server) usernames() []string {
	s.online.mu.Lock()
	defer s.online.mu.Unlock()
	names := make([]string, 0, len(s.online.n))
	for u := range s.online.n {
		names = append(names, u)
	}
	return names
}

// clientConnections counts this node's client connections (backends are
// not clients).
func (s *Server) clientConnections() int {
	return int(s.hub.count.Load()) - s.meta.backendCount()
}
