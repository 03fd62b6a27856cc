package broker

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"time"

	"github.com/webinate/broker/auth"
)

// Defaults applied by Config.withDefaults to fields left at their zero value.
const (
	// DefaultListenAddr is the public WebSocket listener of the original
	// users server (port 8080 on every interface).
	DefaultListenAddr = ":8080"
	// DefaultAdminAddr keeps the publish API on loopback unless an operator
	// opens it on purpose.
	DefaultAdminAddr = "127.0.0.1:8081"
	// DefaultMaxMessageSize is the largest client message accepted (64 KiB).
	DefaultMaxMessageSize = 64 << 10
	// DefaultMaxPendingBytes bounds the bytes queued for one connection that
	// the kernel has not yet accepted (2 MiB); beyond it the connection is a
	// slow consumer and is closed. It must hold the largest single frame.
	DefaultMaxPendingBytes = 2 << 20
	// DefaultMaxPublishBytes bounds a publish API request body (1 MiB).
	DefaultMaxPublishBytes = 1 << 20
	// DefaultReadBufferSize is the poller read buffer (nbio's default, 64 KiB).
	DefaultReadBufferSize = 64 << 10
	// DefaultPingInterval is how often the server pings every connection.
	DefaultPingInterval = 25 * time.Second
	// DefaultIdleTimeout closes connections silent for this long (pongs
	// count as traffic, so a live client never reaches it).
	DefaultIdleTimeout = 60 * time.Second
	// DefaultHandshakeTimeout drops TCP connections that do not complete the
	// upgrade in time (slowloris).
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultCloseTimeout is how long a connection may take to answer our
	// close frame before the TCP connection is dropped.
	DefaultCloseTimeout = 2 * time.Second
	// DefaultMessageRate is the per-connection inbound message rate (per
	// second) and DefaultMessageBurst its bucket size.
	DefaultMessageRate  = 100
	DefaultMessageBurst = 200
	// DefaultBroadcastRate limits echo broadcasts per connection per second
	// (one client could otherwise amplify traffic to every socket) and
	// DefaultBroadcastBurst is its bucket size.
	DefaultBroadcastRate  = 5
	DefaultBroadcastBurst = 10
	// DefaultBackendTimeout is how long a client's MetaRequest waits for a
	// backend's reply before the client gets an error.
	DefaultBackendTimeout = 5 * time.Second
	// DefaultPublishWait is how long a publish request waits for the
	// broker to catch up before it is refused with 503.
	DefaultPublishWait = 5 * time.Second
	// DefaultRateStrikes is how many consecutive rate-limited messages are
	// answered with an error event before the connection is closed (1008).
	DefaultRateStrikes = 20
)

// Targeting modes (Config.Targeting).
const (
	// TargetAll delivers every event to every connection: the original
	// server's behaviour.
	TargetAll = "all"
	// TargetUser delivers an event that has a "username" only to that
	// user's connections and to backends; events without one go to all.
	TargetUser = "user"
)

// DefaultShards is the shard count used when Config.Shards is zero: one
// per GOMAXPROCS, so each core runs one fan-out worker. The sweep in
// BENCHMARKS.md (2 cores, 10,000 subscribers) measured 2 shards ahead of 4
// and 8 in both throughput and p99: more workers than cores only add
// context switches, since each pass is a run of write system calls.
func DefaultShards() int { return runtime.GOMAXPROCS(0) }

// Config is everything the broker needs; cmd/broker builds it from the
// config file and flags. Zero values mean "use the default" where a Default
// constant exists.
type Config struct {
	// ListenAddr is the public WebSocket address, e.g. ":8080" or
	// "127.0.0.1:0". Zero means DefaultListenAddr.
	ListenAddr string
	// AdminAddr is the internal listener for the publish API and health.
	// Zero means DefaultAdminAddr; "-" disables it.
	AdminAddr string
	// ApprovedOrigins are the approvedSocketDomains patterns.
	ApprovedOrigins []string
	// APIKey is socketApiKey: backends present it to publish. Empty refuses
	// every backend connection and every publish request.
	APIKey string

	// Shards is the number of subscriber-table shards; zero means
	// DefaultShards().
	Shards int
	// Pollers is the number of nbio epoll loops; zero means one per CPU.
	Pollers int
	// ReadBufferSize is each poller's read buffer; zero means
	// DefaultReadBufferSize.
	ReadBufferSize int
	// SocketWriteBuffer sets SO_SNDBUF on each accepted connection; zero
	// keeps the kernel's default (autotuned).
	SocketWriteBuffer int
	// MaxMessageSize is the largest client message, after reassembly; zero
	// means DefaultMaxMessageSize.
	MaxMessageSize int
	// MaxPendingBytes bounds outbound bytes queued per connection; zero
	// means DefaultMaxPendingBytes.
	MaxPendingBytes int
	// MaxPublishBytes bounds a publish API body; zero means
	// DefaultMaxPublishBytes.
	MaxPublishBytes int64
	// MaxConns caps WebSocket connections (upgrade answered 503 beyond it);
	// zero means no cap.
	MaxConns int

	// PingInterval: zero means DefaultPingInterval; negative disables pings.
	PingInterval time.Duration
	// IdleTimeout: zero means DefaultIdleTimeout; negative disables it.
	IdleTimeout time.Duration
	// HandshakeTimeout: zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// CloseTimeout: zero means DefaultCloseTimeout.
	CloseTimeout time.Duration

	// MessageRate and MessageBurst limit inbound messages per connection;
	// zero means the defaults, a negative rate disables the limit.
	MessageRate  float64
	MessageBurst int
	// BroadcastRate and BroadcastBurst limit echo broadcasts per connection;
	// zero means the defaults, a negative rate disables the limit.
	BroadcastRate  float64
	BroadcastBurst int
	// RateStrikes: zero means DefaultRateStrikes.
	RateStrikes int

	// BackendTimeout bounds the wait for a backend's MetaRequest reply;
	// zero means DefaultBackendTimeout.
	BackendTimeout time.Duration
	// Targeting is TargetAll (the zero value means it) or TargetUser.
	Targeting string
	// PublishBacklog enables publisher backpressure: when more than half of
	// the connections each have more than this many bytes queued, the
	// broker as a whole is behind (CPU, or every reader is slow) and
	// publish API requests wait, so publishers slow down to the delivery
	// rate instead of growing memory towards MaxPendingBytes per
	// connection. Zero (the default) disables it: publishing never waits,
	// and readers that fall MaxPendingBytes behind are dropped as slow
	// consumers, even when they are the majority.
	PublishBacklog int
	// PublishWait bounds that wait; past it the request gets 503 and
	// nothing from it is published. Zero means DefaultPublishWait.
	PublishWait time.Duration
	// Linger is how long a shard worker waits after being woken before it
	// takes its queue, so that more events share each write call. Zero
	// (the default) adds no delay: batching then comes only from load.
	Linger time.Duration
	// Pprof serves net/http/pprof under /debug/pprof/ on the admin
	// listener, to loopback clients presenting the API key only.
	Pprof bool
	// ReusePort sets SO_REUSEPORT on the public and admin listeners, so a
	// new broker process can bind the same addresses before the old one
	// stops (zero-downtime restart, see reuseport.go). Unix only.
	ReusePort bool
	// Auth configures JWT identity at the handshake; the zero value
	// disables it (every client is anonymous).
	Auth auth.Config
}

func (c Config) withDefaults() Config {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if c.AdminAddr == "" {
		c.AdminAddr = DefaultAdminAddr
	}
	if c.Shards == 0 {
		c.Shards = DefaultShards()
	}
	if c.ReadBufferSize == 0 {
		c.ReadBufferSize = DefaultReadBufferSize
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.MaxPendingBytes == 0 {
		c.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if c.MaxPublishBytes == 0 {
		c.MaxPublishBytes = DefaultMaxPublishBytes
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.MessageRate == 0 {
		c.MessageRate = DefaultMessageRate
	}
	if c.MessageBurst == 0 {
		c.MessageBurst = DefaultMessageBurst
	}
	if c.BroadcastRate == 0 {
		c.BroadcastRate = DefaultBroadcastRate
	}
	if c.BroadcastBurst == 0 {
		c.BroadcastBurst = DefaultBroadcastBurst
	}
	if c.RateStrikes == 0 {
		c.RateStrikes = DefaultRateStrikes
	}
	if c.BackendTimeout == 0 {
		c.BackendTimeout = DefaultBackendTimeout
	}
	if c.PublishWait == 0 {
		c.PublishWait = DefaultPublishWait
	}
	if c.Targeting == "" {
		c.Targeting = TargetAll
	}
	return c
}

// Validate reports every bad value at once, each named the way an operator
// would write it.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	checkAddr := func(name, addr string) {
		if _, port, err := net.SplitHostPort(addr); err != nil {
			bad("broker: %s %q: %v", name, addr, err)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad("broker: %s %q: port must be 0..65535", name, addr)
		}
	}
	checkAddr("listen address", c.ListenAddr)
	if c.AdminAddr != "-" {
		checkAddr("admin address", c.AdminAddr)
	}
	if c.Shards < 1 || c.Shards > 4096 {
		bad("broker: shards %d: must be 1..4096", c.Shards)
	}
	if c.Pollers < 0 || c.Pollers > 1024 {
		bad("broker: pollers %d: must be 0..1024", c.Pollers)
	}
	if c.ReadBufferSize < 512 {
		bad("broker: read buffer %d: must be at least 512 bytes", c.ReadBufferSize)
	}
	if c.SocketWriteBuffer < 0 {
		bad("broker: write buffer %d: must not be negative", c.SocketWriteBuffer)
	}
	if c.MaxMessageSize < 64 {
		bad("broker: max message %d: must be at least 64 bytes", c.MaxMessageSize)
	}
	if c.MaxPendingBytes < 1024 {
		bad("broker: max pending bytes %d: must be at least 1024", c.MaxPendingBytes)
	} else if need := frameSize(max(c.MaxMessageSize, int(min(c.MaxPublishBytes, 1<<40)))); c.MaxPendingBytes < need {
		bad("broker: max pending bytes %d: must hold the largest frame (%d bytes, from max message %d and max publish %d)",
			c.MaxPendingBytes, need, c.MaxMessageSize, c.MaxPublishBytes)
	}
	if c.MaxPublishBytes < 64 {
		bad("broker: max publish bytes %d: must be at least 64", c.MaxPublishBytes)
	}
	if c.MaxConns < 0 {
		bad("broker: max conns %d: must not be negative", c.MaxConns)
	}
	if c.PingInterval > 0 && c.IdleTimeout > 0 && c.IdleTimeout <= c.PingInterval {
		bad("broker: idle timeout %v must be longer than ping interval %v, or live clients would be dropped", c.IdleTimeout, c.PingInterval)
	}
	if c.HandshakeTimeout < 0 {
		bad("broker: handshake timeout %v: must be positive", c.HandshakeTimeout)
	}
	if c.CloseTimeout < 0 {
		bad("broker: close timeout %v: must be positive", c.CloseTimeout)
	}
	if c.MessageRate > 0 && c.MessageBurst < 1 {
		bad("broker: message burst %d: must be at least 1", c.MessageBurst)
	}
	if c.BroadcastRate > 0 && c.BroadcastBurst < 1 {
		bad("broker: broadcast burst %d: must be at least 1", c.BroadcastBurst)
	}
	if c.RateStrikes < 1 {
		bad("broker: rate strikes %d: must be at least 1", c.RateStrikes)
	}
	if c.PublishBacklog < 0 {
		bad("broker: publish backlog %d: must not be negative", c.PublishBacklog)
	}
	if c.PublishWait < 0 {
		bad("broker: publish wait %v: must be positive", c.PublishWait)
	}
	if c.Linger < 0 || c.Linger > time.Second {
		bad("broker: linger %v: must be 0..1s", c.Linger)
	}
	if c.BackendTimeout < 0 {
		bad("broker: backend timeout %v: must be positive", c.BackendTimeout)
	}
	if c.Targeting != TargetAll && c.Targeting != TargetUser {
		bad("broker: targeting %q: must be %q or %q", c.Targeting, TargetAll, TargetUser)
	}
	return errors.Join(errs...)
}
