package broker

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	ltls "github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/webinate/broker/auth"
	"github.com/webinate/broker/eventlog"
	"github.com/webinate/broker/internal/monoclock"
	"github.com/webinate/broker/origin"
)

// Server is one broker node: the public WebSocket listener on an nbio
// reactor, the sharded subscriber table and the admin listener.
type Server struct {
	cfg    Config // as started; never changes (see current)
	log    zerolog.Logger
	hub    *hub
	events *eventlog.Log
	// deflater compresses events for the log's deflate variants; only the
	// log's appender uses it (see logVariants).
	deflater *deflater
	stats    stats
	meta     metaRouter
	bus      Bus // nil on a single node

	// What Reload may change (reload.go), each swapped whole.
	origins  atomic.Pointer[origin.Matcher]
	apiKey   atomic.Pointer[[]byte]
	auth     atomic.Pointer[auth.Verifier]
	limits   atomic.Pointer[limits]
	current  atomic.Pointer[Config] // cfg with the reloaded fields applied
	reloadMu sync.Mutex             // serialises Reload

	// bcastNode is the echo broadcast budget every connection shares
	// (Config.BroadcastNodeBytes), retuned on Reload.
	bcastNode *rate.Limiter
	// publishersWaiting counts publish requests held by backpressure:
	// while there are any, echo broadcasts wait (see broadcastEcho).
	publishersWaiting atomic.Int64

	// TLS, when Config.TLS is set: the certificate store and the
	// listener's configuration, which reads it at every handshake.
	certs   certStore
	tlsConf *ltls.Config

	// Admission limits (admission.go): open connections by source
	// address and by user, and the accept-rate bucket (swapped by Reload).
	perIP   connCounts
	perUser connCounts
	accept  atomic.Pointer[rate.Limiter]

	regMu  sync.RWMutex // see acceptLoop
	warn   warnLoggers  // sampled repetitive warnings (logsample.go)
	nextID atomic.Uint64
	// online counts the connections in the table by username (presence),
	// bans the users refused at the upgrade for now (identity.go).
	online    connCounts
	bans      banList
	draining  atomic.Bool
	upgrading atomic.Int64 // upgrade handlers running

	mu      sync.Mutex // guards the fields below and start/stop ordering
	started bool
	stopped bool
	engine  *nbhttp.Engine
	ln      net.Listener
	admin   *http.Server
	adminLn net.Listener
	done    chan struct{}
	wg      sync.WaitGroup // sweeper and admin server
}

// New validates cfg, compiles the approved origins and allocates the
// broker. It opens no socket and starts no goroutine; Start does.
func New(cfg Config, log zerolog.Logger) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := origin.New(origin.Config{Patterns: cfg.ApprovedOrigins})
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	v, err := auth.New(cfg.Auth)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	s := &Server{
		cfg:  cfg,
		log:  log.With().Str("component", "broker").Logger(),
		bus:  cfg.Bus,
		done: make(chan struct{}),
	}
	if cfg.TLS.Enabled() {
		cert, err := parseCert(cfg.TLS)
		if err != nil {
			return nil, err
		}
		s.certs.cur.Store(cert)
		s.tlsConf = s.certs.serverConfig()
	}
	s.origins.Store(m)
	var creditKey [16]byte // keys the credit pings' tags (hub.creditTag)
	if _, err := rand.Read(creditKey[:]); err != nil {
		return nil, fmt.Errorf("broker: credit key: %w", err)
	}
	key := []byte(cfg.APIKey)
	s.apiKey.Store(&key)
	s.auth.Store(v)
	lim := limitsOf(cfg, 0)
	s.limits.Store(lim)
	// Full from the start, like every bucket (SetBurst on an empty one
	// would leave it empty). Unused while the budget is off.
	nodeRate := cfg.BroadcastNodeBytes
	if nodeRate < 0 {
		nodeRate = DefaultBroadcastNodeBytes
	}
	s.bcastNode = rate.NewLimiter(rate.Limit(nodeRate), lim.nodeBurst(cfg.MaxMessageSize))
	s.accept.Store(newAcceptLimiter(cfg))
	cur := cfg
	s.current.Store(&cur)
	s.meta.s = s
	s.warn = newWarnLoggers(s.log, warnBurst, warnPeriod)
	s.stats.fanoutLatency = newFanoutLatency()
	epoch := newEpoch()
	if cfg.Bus != nil {
		epoch = cfg.Bus.Epoch() // numbers come from the cluster's stream
	}
	s.deflater = newDeflater(cfg.CompressionMin)
	s.events = eventlog.New(eventlog.Config{
		MaxBytes: cfg.HistorySize, MaxAge: cfg.HistoryAge, Epoch: epoch,
		Variants: s.logVariants(epoch),
	})
	s.hub = newHub(cfg.Shards, s.events, fanout{
		window:     int64(cfg.WriteWindow),
		maxLag:     newAtomicDuration(cfg.MaxLag),
		publishLag: newAtomicDuration(cfg.PublishLag),
		linger:     cfg.Linger,
		tick:       passTick(cfg.MaxLag, cfg.PublishLag),
	}, &s.stats, creditKey)
	return s, nil
}

// Config returns the effective configuration, defaults filled in, with
// the fields changed by Reload since.
func (s *Server) Config() Config { return *s.current.Load() }

// Start opens the listeners and starts the reactor, the shard workers and
// the keepalive sweeper. It returns once the broker accepts connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("broker: already started")
	}
	s.started = true
	setNbioLogger(s.log)
	if s.bus != nil {
		// First: deliveries only append to the log, which needs nothing
		// else running, and a node that cannot join fails before it
		// opens a port.
		if err := s.bus.Start(busNode{s}); err != nil {
			s.stopped = true
			return fmt.Errorf("broker: %w", err) // the Bus names itself
		}
	}

	ln, err := s.listen(s.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("broker: listen %s: %w", s.cfg.ListenAddr, err)
	}
	s.ln = ln
	maxLoad := nbhttp.DefaultMaxLoad
	if s.cfg.MaxConns > 0 {
		// nbio drops sockets silently past MaxLoad; keep it above our own
		// cap so that the refusal is our 503, with a reason.
		maxLoad = s.cfg.MaxConns + 1024
	}
	s.engine = nbhttp.NewEngine(nbhttp.Config{
		Name:    "broker",
		Network: "tcp",
		// No Addrs: the broker runs its own accept loop (acceptLoop).
		SupportServerOnly: true,
		NPoller:           s.cfg.Pollers,
		ReadBufferSize:    s.cfg.ReadBufferSize,
		// Our own bound (conn.send) closes slow consumers with a 1008
		// close frame; nbio's limit is the backstop, with room for that
		// frame and the pings and replies that race with it.
		MaxWriteBufferSize: s.cfg.MaxPendingBytes + 64<<10,
		// The handshake deadline: nbio sets it on accept and we clear it
		// once the connection is upgraded. nbio also re-arms it after
		// each answered keep-alive request; serveUpgrade closes the
		// socket after every answer instead (r.Close), so it counts from
		// accept.
		KeepaliveTime:   s.cfg.HandshakeTimeout,
		MaxLoad:         maxLoad,
		MaxHTTPBodySize: 4 << 10, // upgrade requests have no body
		// Bytes buffered while parsing a request: caps request headers
		// (nbio's default is 64 MiB) so a slow, huge handshake cannot hold
		// memory until the handshake timeout.
		ReadLimit: 64 << 10,
		// Handshakes and close callbacks run on this pool; they are short,
		// so a small pool bounds goroutines without queueing for long.
		MessageHandlerPoolSize: 64,
		Handler:                http.HandlerFunc(s.serveUpgrade),
	})
	if err := s.engine.Start(); err != nil {
		_ = ln.Close()
		return fmt.Errorf("broker: start reactor: %w", err)
	}
	// Every read first passes regMu, which acceptLoop holds while it
	// registers a socket: see acceptLoop.
	s.engine.Engine.OnWrittenSize(func(nc *nbio.Conn, _ []byte, n int) {
		if c, ok := nc.Session().(*conn); ok {
			c.onWritten(n)
		}
	})
	s.engine.Engine.OnData(func(c *nbio.Conn, data []byte) {
		s.regMu.RLock()
		//lint:ignore SA2001 the empty critical section is the point: it orders this read after acceptLoop's registration
		s.regMu.RUnlock()
		c.DataHandler()(c, data)
	})
	s.hub.start()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.acceptLoop()
	}()

	if s.cfg.AdminAddr != "-" {
		aln, err := s.listen(s.cfg.AdminAddr)
		if err != nil {
			s.draining.Store(true) // acceptLoop exits on the close below
			_ = s.ln.Close()
			close(s.done)
			s.wg.Wait()
			s.hub.stop()
			s.engine.Stop()
			if s.bus != nil {
				_ = s.bus.Close()
			}
			s.stopped = true
			return fmt.Errorf("broker: listen admin %s: %w", s.cfg.AdminAddr, err)
		}
		s.adminLn = aln
		s.admin = &http.Server{
			Handler:           s.adminHandler(),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			IdleTimeout:       120 * time.Second,
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.admin.Serve(aln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error().Err(err).Msg("admin listener stopped")
			}
		}()
	}
	if s.cfg.MaxOutputMemory > 0 || s.cfg.HistoryAge > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.guard()
		}()
	}
	if s.cfg.PingInterval > 0 || s.cfg.IdleTimeout > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.sweep()
		}()
	}
	s.log.Info().
		Str("addr", s.Addr()).
		Str("admin", s.AdminAddr()).
		Int("shards", s.cfg.Shards).
		Int("pollers", s.engine.NPoller).
		Int("maxMessage", s.cfg.MaxMessageSize).
		Int("maxPending", s.cfg.MaxPendingBytes).
		Int("writeWindow", s.cfg.WriteWindow).
		Int("notsentLowat", s.cfg.NotSentLowat).
		Dur("maxLag", s.cfg.MaxLag).
		Dur("publishLag", s.cfg.PublishLag).
		Int("historySize", s.cfg.HistorySize).
		Int64("maxOutputMemory", s.cfg.MaxOutputMemory).
		Int("maxConns", s.cfg.MaxConns).
		Int("maxConnsPerIP", s.cfg.MaxConnsPerIP).
		Int("maxConnsPerUser", s.cfg.MaxConnsPerUser).
		Float64("maxAcceptRate", s.cfg.MaxAcceptRate).
		Dur("linger", s.cfg.Linger).
		Int("origins", s.origins.Load().Len()).
		Bool("publishEnabled", len(s.key()) > 0).
		Bool("tls", s.tlsConf != nil).
		Str("targeting", s.cfg.Targeting).
		Bool("jwt", s.cfg.Auth.Enabled()).
		Bool("cluster", s.bus != nil).
		Msg("broker started")
	if s.tlsConf != nil {
		s.logCert("tls certificate loaded", s.certs.cur.Load())
	}
	if string(s.key()) == ExampleAPIKey {
		s.warnExampleKey()
	}
	return nil
}

// warnExampleKey says what the example socketApiKey restricts and how to
// replace it (the refusal itself is in serveUpgrade and Config.Validate).
func (s *Server) warnExampleKey() {
	s.log.Warn().Str("socketApiKey", ExampleAPIKey).
		Msg("socketApiKey is the example value from config.example.json, which anyone can read: backend upgrades are accepted from loopback only and the admin listener must stay on loopback; " + exampleKeyFix)
}

// Addr is the bound public address (useful with port 0).
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// AdminAddr is the bound admin address, or "" when disabled.
func (s *Server) AdminAddr() string {
	if s.adminLn == nil {
		return ""
	}
	return s.adminLn.Addr().String()
}

// Shutdown stops accepting connections and publishes, writes every event
// already accepted, closes each client with 1001 and stops. It returns
// ctx.Err() if ctx ends first (the remaining sockets are then cut). It is
// safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.started || s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.mu.Unlock()

	if s.cfg.ReusePort {
		s.handOver(ctx) // reuseport.go
	}
	s.draining.Store(true)
	s.log.Info().Int64("connections", s.hub.count.Load()).Msg("shutting down: draining")
	// Stop taking new sockets at once; upgrades already in flight see
	// draining and get 503.
	_ = s.ln.Close()
	if s.admin != nil {
		_ = s.admin.Shutdown(ctx)
	}
	// In a cluster, what this node confirmed is in the log only once it
	// has come back from the stream.
	s.waitDelivered(ctx.Done())
	// Each connection gets its 1001 once it has been sent every event
	// accepted so far; wait for them to answer (or CloseTimeout to cut
	// them), and past ctx close whoever is left.
	s.hub.beginDrain(s.events.Head(), s.drainPeriod(ctx))
	var err error
	for s.hub.count.Load() > 0 && err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err != nil {
		s.hub.each(func(c *conn) { c.closeWith(reasonShutdown, "") })
	}
	if s.bus != nil {
		_ = s.bus.Close()
	}
	// Upgrades that raced the drain answer 503 (see serveUpgrade); let
	// them finish writing it.
	for s.upgrading.Load() > 0 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	close(s.done)
	s.hub.stop()
	s.engine.Stop()
	s.wg.Wait()
	s.log.Info().Err(err).Msg("broker stopped")
	return err
}

// drainPeriod is how long Shutdown spreads its closes over: the
// configured period, but at most half of what ctx leaves after one
// CloseTimeout, so that the last clients closed still have time to answer
// their close frame (or be cut for not answering) before ctx ends.
func (s *Server) drainPeriod(ctx context.Context) time.Duration {
	d := s.current.Load().DrainPeriod
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, (time.Until(dl)-s.cfg.CloseTimeout)/2)
	}
	return max(d, 0)
}

// now is the clock for activity timestamps (monotonic: see monoclock).
func (s *Server) now() int64 { return monoclock.Now() }

// keyOK compares a presented key with socketApiKey in constant time. An
// empty configured key matches nothing.
func (s *Server) keyOK(k string) bool {
	key := s.key()
	return len(key) > 0 && subtle.ConstantTimeCompare([]byte(k), key) == 1
}

// key is the current socketApiKey.
func (s *Server) key() []byte { return *s.apiKey.Load() }

// removeConn is called once per connection when its socket is gone.
func (s *Server) removeConn(c *conn, err error) {
	if !s.hub.remove(c) {
		return
	}
	s.releaseSlots(slotsOf(c.remote, c.backend, c.username))
	if c.username != "" {
		s.online.release(c.username)
		c.stopExpiry()
	}
	if c.backend {
		s.meta.removeBackend(c)
	}
	label := "peer_gone"
	code := 0
	switch r := c.reason.Load(); {
	case r != nil:
		label, code = r.label, r.code
	case isOverflow(err):
		label, code = reasonSlow.label, reasonSlow.code
	case isTimeout(err):
		label = "read_timeout"
	}
	s.stats.closedBy(label)
	ev := s.log.Debug()
	ev.Uint64("conn", c.id).Str("remote", c.remote).Bool("backend", c.backend).
		Str("reason", label).Int("code", code).AnErr("err", err).Msg("connection closed")
}

// slowConsumer counts and logs a connection dropped for falling behind:
// more than MaxLag, off the end of the event log, or (for replies written
// directly) past MaxPendingBytes. Slow consumers come in herds (a stalled
// network segment), so the warning is sampled (logsample.go) and says how
// many it stands for.
func (s *Server) slowConsumer(c *conn, why string) {
	s.stats.slowConsumers.Add(1)
	s.warn.slow.Warn().Uint64("conn", c.id).Str("remote", c.remote).Str("why", why).
		Dur("maxLag", s.hub.fo.maxLag.Load()).Int64("pendingBytes", c.pending()).Msg("slow consumer: closing with 1008")
}

// sweep pings connections and closes idle ones. One goroutine walks the
// whole table once per tick: cheaper than a timer per connection.
func (s *Server) sweep() {
	tick := time.Second
	for _, d := range []time.Duration{s.cfg.PingInterval / 2, s.cfg.IdleTimeout / 4} {
		if d > 0 && d < tick {
			tick = d
		}
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	var idle []*conn
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		now := s.now()
		ping := int64(s.cfg.PingInterval)
		idleNs := int64(s.cfg.IdleTimeout)
		idle = idle[:0]
		s.hub.each(func(c *conn) {
			if c.closing.Load() {
				return
			}
			last := c.lastRead.Load()
			if idleNs > 0 && now-last > idleNs {
				idle = append(idle, c)
				return
			}
			if ping > 0 && now-last >= ping && now-c.lastPing.Load() >= ping {
				c.lastPing.Store(now)
				c.writeControl(opPing, nil)
			}
		})
		for _, c := range idle {
			c.closeWith(reasonIdle, "")
		}
		clear(idle)
	}
}

// acceptLoop accepts public connections and hands each to nbio.
//
// nbio's own accept loop hands a socket to a poller through epoll, which
// the race detector cannot see, so every test run under -race reported
// nbio's fields as racing. Registering under regMu, which every read
// passes first, makes the hand-off visible at the cost of one uncontended
// read-lock per read event.
func (s *Server) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.draining.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off like
			// net/http does instead of spinning.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff < time.Second {
				backoff *= 2
			}
			s.log.Error().Err(err).Dur("retryIn", backoff).Msg("accept failed")
			select {
			case <-time.After(backoff):
			case <-s.done:
				return
			}
			continue
		}
		backoff = 0
		// Socket options go on the accepted socket before nbio takes it
		// (nbio works on a dup of it; options belong to the socket), so
		// they can never reach a socket that later reuses the number.
		s.tuneSocket(c)
		s.regMu.Lock()
		s.addConn(c) // addconn_unix.go: close-on-exec
		s.regMu.Unlock()
	}
}
