package cluster

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Defaults for Config fields left at zero.
const (
	// DefaultSubject is the subject prefix: events on broker.events,
	// MetaRequests on broker.meta.
	DefaultSubject = "broker"
	// DefaultPublishTimeout bounds how long an accepted event may wait for
	// JetStream's acknowledgement, an outage included, before its
	// publisher is told it was not published (the publish API's 503).
	DefaultPublishTimeout = 5 * time.Second
	// DefaultMaxQueued bounds the events waiting for NATS on one node;
	// more are refused at once.
	DefaultMaxQueued = 10000
	// DefaultUnhealthyAfter is how long a node may be disconnected from
	// NATS before /healthz answers 503.
	DefaultUnhealthyAfter = 10 * time.Second
	// DefaultStreamMaxAge and DefaultStreamMaxBytes bound the stream's
	// retention (what a late or reconnecting node can still catch up on).
	DefaultStreamMaxAge   = time.Hour
	DefaultStreamMaxBytes = 1 << 30
	// DefaultMaxBatch is the most events one stream message holds, and
	// so one publish request (MaxEvents: see SeqBits).
	DefaultMaxBatch = MaxEvents
	// DefaultDuplicateWindow is the stream's Nats-Msg-Id window; it must
	// outlast PublishTimeout, since retries happen within it.
	DefaultDuplicateWindow = 2 * time.Minute
)

// Config configures a Bridge. cmd/broker fills it from -nats flags, the
// "cluster" config section and the environment (credentials).
type Config struct {
	// URLs are the NATS servers, e.g. nats://127.0.0.1:4222. Required.
	URLs []string
	// Subject is the subject prefix shared by the nodes of one cluster;
	// zero means DefaultSubject.
	Subject string
	// Stream is the JetStream stream name; zero derives it from Subject
	// (upper case, other characters as "_").
	Stream string
	// Name is this node's NATS connection name (shown by NATS monitoring);
	// zero means "broker".
	Name string

	// CredsFile is a NATS .creds file (JWT and NKey seed). User and
	// Password, or Token, are the alternatives; at most one kind is set.
	CredsFile string
	User      string
	Password  string
	Token     string

	// PublishTimeout: zero means DefaultPublishTimeout.
	PublishTimeout time.Duration
	// MaxQueued: zero means DefaultMaxQueued.
	MaxQueued int
	// UnhealthyAfter: zero means DefaultUnhealthyAfter.
	UnhealthyAfter time.Duration
	// StreamMaxAge, StreamMaxBytes: zero means the defaults.
	StreamMaxAge   time.Duration
	StreamMaxBytes int64
	// Replicas of the stream in a NATS cluster; zero means 1.
	Replicas int
	// MaxBatch caps the events in one stream message (and so in one
	// publish request); zero means DefaultMaxBatch, at most MaxEvents.
	MaxBatch int
}

var subjectToken = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

func (c Config) withDefaults() Config {
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.Stream == "" {
		c.Stream = strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z':
				return r - 'a' + 'A'
			case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
				return r
			}
			return '_'
		}, c.Subject)
	}
	if c.Name == "" {
		c.Name = "broker"
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.MaxQueued == 0 {
		c.MaxQueued = DefaultMaxQueued
	}
	if c.UnhealthyAfter == 0 {
		c.UnhealthyAfter = DefaultUnhealthyAfter
	}
	if c.StreamMaxAge == 0 {
		c.StreamMaxAge = DefaultStreamMaxAge
	}
	if c.StreamMaxBytes == 0 {
		c.StreamMaxBytes = DefaultStreamMaxBytes
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	return c
}

// Validate reports every bad value at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.URLs) == 0 {
		bad("cluster: no NATS URL")
	}
	for _, u := range c.URLs {
		if strings.TrimSpace(u) == "" {
			bad("cluster: empty NATS URL in %q", strings.Join(c.URLs, ","))
		}
	}
	if !subjectToken.MatchString(c.Subject) {
		bad("cluster: subject %q: want dot-separated tokens of letters, digits, _ and -", c.Subject)
	}
	kinds := 0
	if c.CredsFile != "" {
		kinds++
	}
	if c.User != "" || c.Password != "" {
		kinds++
	}
	if c.Token != "" {
		kinds++
	}
	if kinds > 1 {
		bad("cluster: set one of a creds file, user/password or a token")
	}
	if c.PublishTimeout < 0 {
		bad("cluster: publish timeout %v: must be positive", c.PublishTimeout)
	}
	if c.PublishTimeout >= DefaultDuplicateWindow {
		bad("cluster: publish timeout %v: must be under the stream's duplicate window %v", c.PublishTimeout, DefaultDuplicateWindow)
	}
	if c.MaxQueued < 1 {
		bad("cluster: max queued %d: must be at least 1", c.MaxQueued)
	}
	if c.UnhealthyAfter < 0 {
		bad("cluster: unhealthy-after %v: must be positive", c.UnhealthyAfter)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		bad("cluster: replicas %d: must be 1..5", c.Replicas)
	}
	if c.MaxBatch < 1 || c.MaxBatch > MaxEvents {
		bad("cluster: max batch %d: must be 1..%d", c.MaxBatch, MaxEvents)
	}
	return errors.Join(errs...)
}
