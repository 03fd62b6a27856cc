package broker

import (
	"errors"
	"fmt"
	"math"
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
	// DefaultRefreshWindow is how long before its token expires a
	// connection is told so ({"eventType":11,"expiresIn":N}).
	DefaultRefreshWindow = 30 * time.Second
	// DefaultDrainPeriod is how long a shutdown spreads its clients'
	// closes over, so their reconnects reach the other nodes as a ramp.
	DefaultDrainPeriod = 3 * time.Second
	// DefaultCloseTimeout is how long a connection may take to answer our
	// close frame before the TCP connection is dropped.
	DefaultCloseTimeout = 2 * time.Second
	// DefaultMessageRate is the per-connection inbound message rate (per
	// second) and DefaultMessageBurst its bucket size. A sender over it is
	// paced (its socket is read more slowly), never answered with errors:
	// the original server had no limit, so the default sits above what a
	// closed-loop client reaches on loopback and only bounds the share of
	// CPU one connection can take.
	DefaultMessageRate  = 10000
	DefaultMessageBurst = 1000
	// DefaultBroadcastRate limits echo broadcasts per connection per second
	// (one client could otherwise amplify traffic to every socket) and
	// DefaultBroadcastBurst is its bucket size. Paced like the message rate.
	DefaultBroadcastRate  = 5
	DefaultBroadcastBurst = 10
	// DefaultBroadcastBytes is each connection's echo broadcast budget in
	// bytes per second (its bucket holds MaxMessageSize by default): the
	// count limit alone let a client append 5 maximum-size messages a
	// second to the log every connection reads. Paced like the count.
	DefaultBroadcastBytes = 64 << 10
	// DefaultBroadcastNodeBytes is the budget, in bytes per second, that
	// every client's echo broadcasts share on one node, so that anonymous
	// traffic, however many sockets it comes from, leaves the fan-out to
	// the publishers: past it, broadcasters are held, publishers are not.
	DefaultBroadcastNodeBytes = 1 << 20
	// DefaultMetaInflight is how many MetaRequests one client may have
	// waiting for a backend; the request that reaches it is forwarded and
	// the client's further input waits until one is answered or expires.
	DefaultMetaInflight = 16
	// DefaultMetaInflightBytes bounds the bytes of one client's waiting
	// MetaRequests the same way, so that a client of large requests cannot
	// fill a backend's output.
	DefaultMetaInflightBytes = 256 << 10
	// DefaultMetaMaxPending caps the MetaRequests waiting for a backend on
	// one node, whoever sent them: beyond it requests are refused at once,
	// so that many clients together cannot exhaust memory.
	DefaultMetaMaxPending = 10000
	// DefaultBackendTimeout is how long a client's MetaRequest waits for a
	// backend's reply before the client gets an error.
	DefaultBackendTimeout = 5 * time.Second
	// DefaultPublishWait is how long a publish request waits for the
	// broker to catch up before it is refused with 503.
	DefaultPublishWait = 5 * time.Second
	// DefaultWriteWindow is the credit window per connection (16 KiB): the
	// most event bytes written to a socket and not yet confirmed read by
	// its client. It bounds the latency that buffers between the broker
	// and the client can add (window / the client's read rate) and the
	// memory a stalled client can hold. Chosen from the sweep in
	// BENCHMARKS.md.
	DefaultWriteWindow = 16 << 10
	// DefaultNotSentLowat is TCP_NOTSENT_LOWAT for every public socket: the
	// kernel holds at most this many unsent bytes per socket (on real
	// networks the send buffer would otherwise autotune to megabytes).
	DefaultNotSentLowat = 16 << 10
	// DefaultMaxLag is how far behind, in time, a connection may fall (its
	// oldest unread event was published this long ago) before it is closed
	// as a slow consumer with 1008.
	DefaultMaxLag = 5 * time.Second
	// DefaultPublishLag turns publisher backpressure on: while more than
	// one in ten of the audience is further behind than this (or has not
	// been written the head less a lead, hub.lead), publish requests wait
	// (up to PublishWait) and backend sockets are read more slowly.
	DefaultPublishLag = 100 * time.Millisecond
	// DefaultHistorySize is the event log's retained size (see eventlog).
	DefaultHistorySize = 8 << 20
	// DefaultMaxOutputMemory caps the broker's buffered output (the event
	// log plus what connections hold in nbio's buffers, 512 MiB): over it,
	// the connections holding the most are closed first.
	DefaultMaxOutputMemory = 512 << 20
	// DefaultMaxConnsPerIP caps the client connections from one public
	// address (an IPv4 address or an IPv6 /64). It is far above what one
	// household or office NAT opens to one service, and far below what one
	// host can open (some 28,000 sockets per destination port), so one
	// machine cannot take the broker's file descriptors alone. Loopback,
	// private and link-local sources are not capped (see
	// Config.MaxConnsPerIP): that is where reverse proxies and load
	// balancers connect from, one address standing for many clients.
	DefaultMaxConnsPerIP = 1000
)

// ExampleAPIKey is the socketApiKey of the bundled config.example.json.
// While it is the configured key, backend upgrades are accepted from
// loopback only, and an admin listener on a non-loopback address refuses
// to start: everyone can read the key in the repository.
const ExampleAPIKey = "change-me"

// exampleKeyFix names the ways to set a real key, for the messages that
// refuse the example one.
const exampleKeyFix = "set websocket.socketApiKey, -api-key-file or $BROKER_SOCKET_API_KEY"

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
	// MaxConnsPerIP caps the client connections from one source: an IPv4
	// address, or an IPv6 /64 (what one subscriber is usually given).
	// Upgrades beyond it get 429. Backends (which authenticate with the
	// key) and loopback, private (RFC 1918, fc00::/7) and link-local
	// sources are not capped: behind a reverse proxy or a load balancer
	// every client has the proxy's address, and the broker does not trust
	// X-Forwarded-For. Zero means DefaultMaxConnsPerIP; negative disables
	// the cap.
	MaxConnsPerIP int
	// MaxConnsPerUser caps the connections of one JWT username (needs
	// Auth); upgrades beyond it get 429. Anonymous clients and backends
	// are not counted. Zero means no cap.
	MaxConnsPerUser int
	// MaxAcceptRate bounds the client upgrades this node completes per
	// second, with bursts of MaxAcceptBurst; beyond it upgrades get 503
	// with Retry-After, so a reconnect storm (every client of a restarted
	// node at once) is spread out instead of taking the CPU from the
	// clients already connected. Backends are not limited. Zero means no
	// limit.
	MaxAcceptRate float64
	// MaxAcceptBurst is the accept-rate bucket; zero means one second's
	// worth of MaxAcceptRate (at least 1).
	MaxAcceptBurst int

	// PingInterval: zero means DefaultPingInterval; negative disables pings.
	PingInterval time.Duration
	// IdleTimeout: zero means DefaultIdleTimeout; negative disables it.
	IdleTimeout time.Duration
	// HandshakeTimeout: zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// CloseTimeout: zero means DefaultCloseTimeout.
	CloseTimeout time.Duration
	// RefreshWindow: a connection whose token expires is told so this long
	// before (once per token); zero means DefaultRefreshWindow.
	RefreshWindow time.Duration
	// DrainPeriod spreads Shutdown's closes (each with a reconnect hint)
	// over this long, at most half of what Shutdown's context allows:
	// zero means DefaultDrainPeriod, negative closes everyone at once.
	DrainPeriod time.Duration

	// MessageRate and MessageBurst limit inbound messages per connection;
	// zero means the defaults, a negative rate disables the limit.
	MessageRate  float64
	MessageBurst int
	// BroadcastRate and BroadcastBurst limit echo broadcasts per connection;
	// zero means the defaults, a negative rate disables the limit.
	BroadcastRate  float64
	BroadcastBurst int
	// BroadcastBytes and BroadcastBytesBurst limit echo broadcast bytes
	// per connection (per second, and the bucket); zero means
	// DefaultBroadcastBytes and MaxMessageSize, a negative rate disables
	// the limit. The burst must hold the largest message.
	BroadcastBytes      int
	BroadcastBytesBurst int
	// BroadcastNodeBytes is the echo broadcast budget in bytes per second
	// shared by every connection of the node (its bucket holds one second,
	// at least MaxMessageSize); zero means DefaultBroadcastNodeBytes,
	// negative disables it.
	BroadcastNodeBytes int

	// MetaInflight and MetaInflightBytes bound one client's MetaRequests
	// waiting for a backend (count and bytes); zero means the defaults,
	// negative disables the bound.
	MetaInflight      int
	MetaInflightBytes int
	// MetaMaxPending caps the MetaRequests waiting for a backend on this
	// node; zero means DefaultMetaMaxPending, negative disables the cap.
	MetaMaxPending int

	// BackendTimeout bounds the wait for a backend's MetaRequest reply;
	// zero means DefaultBackendTimeout.
	BackendTimeout time.Duration
	// Targeting is TargetAll (the zero value means it) or TargetUser.
	Targeting string
	// WriteWindow is the credit window per connection (see hub); zero
	// means DefaultWriteWindow.
	WriteWindow int
	// NotSentLowat sets TCP_NOTSENT_LOWAT on public sockets; zero means
	// DefaultNotSentLowat, negative leaves the kernel default.
	NotSentLowat int
	// MaxLag is how far behind a connection may fall before it is closed
	// as a slow consumer; zero means DefaultMaxLag.
	MaxLag time.Duration
	// PublishLag is the publisher backpressure threshold: while more than
	// half of the connections are further behind than this, the broker as
	// a whole is behind (CPU, or every reader), and publishers are held
	// instead of queueing without bound. A minority of stalled readers
	// never holds publishers back: MaxLag cuts them. Zero means
	// DefaultPublishLag; negative disables backpressure.
	PublishLag time.Duration
	// PublishWait bounds that wait; past it the request gets 503 and
	// nothing from it is published. Zero means DefaultPublishWait.
	PublishWait time.Duration
	// HistorySize bounds the event log in bytes; zero means
	// DefaultHistorySize.
	HistorySize int
	// HistoryAge drops logged events older than this; zero keeps them
	// until HistorySize pushes them out.
	HistoryAge time.Duration
	// MaxOutputMemory caps buffered output; zero means
	// DefaultMaxOutputMemory, negative disables the guard.
	MaxOutputMemory int64
	// Linger is how long a shard worker waits after being woken before it
	// takes its queue, so that more events share each write call. Zero
	// (the default) adds no delay: batching then comes only from load.
	Linger time.Duration
	// Compression is "on" (or empty) to negotiate permessage-deflate (RFC
	// 7692) with clients that offer it, "off" to decline every offer.
	// Each event is deflated once, for every compressed connection (see
	// deflate.go).
	Compression string
	// CompressionMin is the smallest event payload deflated, in bytes;
	// smaller events go to compressed connections plain (RSV1 clear).
	// Zero means DefaultCompressionMin.
	CompressionMin int
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
	// TLS serves wss:// on the public listener; the zero value serves
	// plain ws:// (see tls.go for the stack and its limits).
	TLS TLSConfig
	// Bus, when set, makes this broker one node of a cluster (see Bus and
	// package cluster); nil is a single node.
	Bus Bus
}

// TLSConfig is the public listener's certificate. cmd/broker reads the
// files; the broker only sees PEM.
type TLSConfig struct {
	// CertPEM is the certificate chain, leaf first.
	CertPEM []byte
	// KeyPEM is the leaf's private key (ECDSA, RSA or Ed25519).
	KeyPEM []byte
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return len(t.CertPEM) > 0 || len(t.KeyPEM) > 0 }

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
	if c.Compression == "" {
		c.Compression = "on"
	}
	if c.CompressionMin == 0 {
		c.CompressionMin = DefaultCompressionMin
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
	if c.DrainPeriod == 0 {
		c.DrainPeriod = DefaultDrainPeriod
	}
	if c.RefreshWindow == 0 {
		c.RefreshWindow = DefaultRefreshWindow
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
	if c.BroadcastBytes == 0 {
		c.BroadcastBytes = DefaultBroadcastBytes
	}
	if c.BroadcastBytesBurst == 0 {
		c.BroadcastBytesBurst = c.MaxMessageSize
	}
	if c.BroadcastNodeBytes == 0 {
		c.BroadcastNodeBytes = DefaultBroadcastNodeBytes
	}
	if c.MetaInflight == 0 {
		c.MetaInflight = DefaultMetaInflight
	}
	if c.MetaInflightBytes == 0 {
		c.MetaInflightBytes = DefaultMetaInflightBytes
	}
	if c.MetaMaxPending == 0 {
		c.MetaMaxPending = DefaultMetaMaxPending
	}
	if c.BackendTimeout == 0 {
		c.BackendTimeout = DefaultBackendTimeout
	}
	if c.PublishWait == 0 {
		c.PublishWait = DefaultPublishWait
	}
	if c.WriteWindow == 0 {
		c.WriteWindow = DefaultWriteWindow
	}
	if c.NotSentLowat == 0 {
		c.NotSentLowat = DefaultNotSentLowat
	}
	if c.MaxLag == 0 {
		c.MaxLag = DefaultMaxLag
	}
	if c.PublishLag == 0 {
		c.PublishLag = DefaultPublishLag
	}
	if c.HistorySize == 0 {
		c.HistorySize = DefaultHistorySize
	}
	if c.MaxOutputMemory == 0 {
		c.MaxOutputMemory = DefaultMaxOutputMemory
	}
	if c.Targeting == "" {
		c.Targeting = TargetAll
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if c.MaxAcceptRate > 0 && c.MaxAcceptBurst == 0 {
		c.MaxAcceptBurst = max(1, int(math.Ceil(min(c.MaxAcceptRate, 1<<30))))
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
	// Counts whose zero means off or the default: only a negative one is
	// wrong.
	notNegative := func(name string, v int) {
		if v < 0 {
			bad("broker: %s %d: must not be negative", name, v)
		}
	}
	// Durations whose zero took the default (withDefaults): what is left
	// to catch is a negative one.
	positive := func(name string, d time.Duration) {
		if d < 0 {
			bad("broker: %s %v: must be positive", name, d)
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
	notNegative("write buffer", c.SocketWriteBuffer)
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
	notNegative("max conns", c.MaxConns)
	if c.MaxConnsPerUser < 0 {
		bad("broker: max conns per user %d: must not be negative", c.MaxConnsPerUser)
	} else if c.MaxConnsPerUser > 0 && !c.Auth.Enabled() {
		bad("broker: max conns per user %d: needs JWT identity (jwt, -jwt-secret or -jwt-public-key); without it every client is anonymous", c.MaxConnsPerUser)
	}
	if !(c.MaxAcceptRate >= 0) || math.IsInf(c.MaxAcceptRate, 1) {
		bad("broker: max accept rate %v: must be a finite number of upgrades per second, 0 for no limit", c.MaxAcceptRate)
	}
	notNegative("max accept burst", c.MaxAcceptBurst)
	if c.APIKey == ExampleAPIKey && c.AdminAddr != "-" && !loopbackHost(c.AdminAddr) {
		bad("broker: admin address %q is not loopback and socketApiKey is the example value %q from config.example.json: anyone could publish and read /stats; %s, or keep the admin listener on 127.0.0.1",
			c.AdminAddr, ExampleAPIKey, exampleKeyFix)
	}
	if c.PingInterval > 0 && c.IdleTimeout > 0 && c.IdleTimeout <= c.PingInterval {
		bad("broker: idle timeout %v must be longer than ping interval %v, or live clients would be dropped", c.IdleTimeout, c.PingInterval)
	}
	positive("handshake timeout", c.HandshakeTimeout)
	positive("close timeout", c.CloseTimeout)
	positive("jwt refresh window", c.RefreshWindow)
	if c.MessageRate > 0 && c.MessageBurst < 1 {
		bad("broker: message burst %d: must be at least 1", c.MessageBurst)
	}
	if c.BroadcastRate > 0 && c.BroadcastBurst < 1 {
		bad("broker: broadcast burst %d: must be at least 1", c.BroadcastBurst)
	}
	if c.BroadcastBytes > 0 && c.BroadcastBytes < 1024 {
		bad("broker: broadcast bytes %d: must be at least 1024 bytes a second (negative disables the limit)", c.BroadcastBytes)
	}
	if c.BroadcastBytes > 0 && c.BroadcastBytesBurst < c.MaxMessageSize {
		bad("broker: broadcast bytes burst %d: must be at least max message %d, or a message that large could never be broadcast",
			c.BroadcastBytesBurst, c.MaxMessageSize)
	}
	if c.BroadcastNodeBytes > 0 && c.BroadcastNodeBytes < 1024 {
		bad("broker: broadcast node bytes %d: must be at least 1024 bytes a second (negative disables the budget)", c.BroadcastNodeBytes)
	}
	if c.MetaInflightBytes > 0 && c.MetaInflightBytes < 1024 {
		bad("broker: meta inflight bytes %d: must be at least 1024 (negative disables the bound)", c.MetaInflightBytes)
	}
	if c.MetaInflight > 1<<20 {
		bad("broker: meta inflight %d: must be at most 1048576 (negative disables the bound)", c.MetaInflight)
	}
	if c.MetaMaxPending > 1<<24 {
		bad("broker: meta max pending %d: must be at most 16777216 (negative disables the cap)", c.MetaMaxPending)
	}
	if c.WriteWindow < 4<<10 || c.WriteWindow > 64<<20 {
		bad("broker: write window %d: must be 4 KiB..64 MiB", c.WriteWindow)
	}
	positive("max lag", c.MaxLag)
	if c.PublishLag > 0 && c.PublishLag >= c.MaxLag {
		bad("broker: publish lag %v must be shorter than max lag %v, or most connections would be cut before publishers wait", c.PublishLag, c.MaxLag)
	}
	if c.HistorySize < 64<<10 {
		bad("broker: history size %d: must be at least 64 KiB", c.HistorySize)
	}
	if c.Compression != "on" && c.Compression != "off" {
		bad("broker: compression %q: must be on or off", c.Compression)
	}
	notNegative("compression min", c.CompressionMin)
	if c.HistoryAge < 0 { // zero: no age bound
		bad("broker: history age %v: must not be negative", c.HistoryAge)
	}
	positive("publish wait", c.PublishWait)
	if c.Linger < 0 || c.Linger > time.Second {
		bad("broker: linger %v: must be 0..1s", c.Linger)
	}
	positive("backend timeout", c.BackendTimeout)
	if c.TLS.Enabled() && (len(c.TLS.CertPEM) == 0 || len(c.TLS.KeyPEM) == 0) {
		bad("broker: tls: a certificate and its key are both needed")
	}
	if c.Targeting != TargetAll && c.Targeting != TargetUser {
		bad("broker: targeting %q: must be %q or %q", c.Targeting, TargetAll, TargetUser)
	}
	return errors.Join(errs...)
}
