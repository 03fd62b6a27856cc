// Command broker runs the WebSocket event broker.
//
//	broker -config config.json [flags]
//
// Flags override the config file; without -config the bundled
// config.example.json is used.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	project "github.com/webinate/broker" // the bundled example config (package project)
	"github.com/webinate/broker/broker"
	"github.com/webinate/broker/cluster"
	"github.com/webinate/broker/internal/commalist"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command: stdout takes -version (and nothing else),
// stderr the log.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configPath = fs.String("config", "", "config.json path (default: the bundled config.example.json)")
		check      = fs.Bool("check", false, "validate the configuration and exit")
		logLevel   = fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
		logFormat  = fs.String("log-format", "json", "log format: json or console")
		port       = fs.Int("port", 0, "public WebSocket port (overrides websocket.port)")
		listen     = fs.String("listen", "", "public WebSocket address host:port (overrides -port)")
		adminAddr  = fs.String("admin-addr", "", `admin listener address for the publish API and health ("-" disables; default `+broker.DefaultAdminAddr+`)`)
		shards     = fs.Int("shards", 0, "subscriber table shards, one fan-out worker each (default GOMAXPROCS)")
		pollers    = fs.Int("pollers", 0, "nbio epoll loops (default: one per CPU)")
		readBuf    = fs.Int("read-buffer", 0, "poller read buffer bytes (default 65536)")
		writeBuf   = fs.Int("write-buffer", 0, "SO_SNDBUF per connection in bytes (default: kernel autotuning)")
		maxMsg     = fs.Int("max-message", 0, "largest client message in bytes; larger closes with 1009 (default 65536)")
		maxPending = fs.Int("max-pending", 0, "outbound bytes queued per connection before it is dropped as a slow consumer (default 2 MiB)")
		maxPublish = fs.Int64("max-publish", 0, "largest publish API body in bytes; larger gets 413 (default 1 MiB)")
		maxConns   = fs.Int("max-conns", 0, "WebSocket connection cap; beyond it upgrades get 503 (default: no cap)")
		maxPerIP   = fs.Int("max-conns-per-ip", 0, fmt.Sprintf("client connections per public source address (IPv6: per /64); beyond it upgrades get 429; loopback, private and link-local sources and backends are not capped (default %d; negative: off)", broker.DefaultMaxConnsPerIP))
		maxPerUser = fs.Int("max-conns-per-user", 0, "connections per JWT username; beyond it upgrades get 429 (default: no cap)")
		acceptRate = fs.Float64("max-accept-rate", 0, "client upgrades per second on this node; beyond it upgrades get 503 with Retry-After; backends are not limited (default 0: no limit)")
		acceptBrst = fs.Int("max-accept-burst", 0, "burst of -max-accept-rate (default: one second's worth)")
		pingEvery  = fs.Duration("ping-interval", 0, "server ping interval (default 25s; negative disables)")
		idle       = fs.Duration("idle-timeout", 0, "close connections silent this long (default 60s; negative disables)")
		handshake  = fs.Duration("handshake-timeout", 0, "drop TCP connections that do not upgrade in time (default 10s)")
		closeWait  = fs.Duration("close-timeout", 0, "how long a closed connection may take to answer the close frame before its socket is dropped (default 2s)")
		drain      = fs.Duration("drain-period", 0, "on SIGTERM, spread the clients' 1001 closes (each with a reconnect hint) over this long, at most half of -shutdown-timeout less -close-timeout (default 3s; negative: all at once)")
		shutdown   = fs.Duration("shutdown-timeout", 0, "graceful drain limit on SIGINT/SIGTERM (default 10s)")
		msgRate    = fs.Float64("msg-rate", 0, "client messages per second per connection; a faster sender is paced (default 10000; negative disables)")
		msgBurst   = fs.Int("msg-burst", 0, "client message burst per connection (default 1000)")
		bcastRate  = fs.Float64("broadcast-rate", 0, "echo broadcasts per second per connection (default 5; negative disables)")
		bcastBurst = fs.Int("broadcast-burst", 0, "echo broadcast burst per connection (default 10)")
		bcastBytes = fs.Int("broadcast-bytes", 0, "echo broadcast bytes per second per connection (default 65536; negative disables)")
		bcastBBur  = fs.Int("broadcast-bytes-burst", 0, "echo broadcast byte burst per connection, at least -max-message (default: -max-message)")
		bcastNode  = fs.Int("broadcast-node-bytes", 0, "echo broadcast bytes per second shared by all connections of this node; past it broadcasters are held, publishers are not (default 1048576; negative disables)")
		metaInfl   = fs.Int("meta-inflight", 0, "MetaRequests one client may have waiting for a backend; past it its input is held (default 16; negative disables)")
		metaInflB  = fs.Int("meta-inflight-bytes", 0, "bytes of MetaRequests one client may have waiting for a backend, held the same way (default 262144; negative disables)")
		metaMaxPen = fs.Int("meta-max-pending", 0, "MetaRequests waiting for a backend on this node; beyond it requests are refused at once (default 10000; negative disables)")
		backendTO  = fs.Duration("backend-timeout", 0, "how long a MetaRequest waits for a backend reply (default 5s)")
		targeting  = fs.String("targeting", "", `"all" (every event to everyone, the default) or "user" (events with a username only to that user and backends)`)
		jwtSecret  = fs.String("jwt-secret", "", "HS256 secret: identify clients by JWT (token query parameter, Bearer header or cookie). Visible in the process list: prefer $"+envJWTSecret+" or -jwt-secret-file")
		jwtSecFile = fs.String("jwt-secret-file", "", "file holding the HS256 JWT secret (overrides $"+envJWTSecret+" and the config file)")
		apiKeyFile = fs.String("api-key-file", "", "file holding socketApiKey (overrides $"+envAPIKey+" and the config file)")
		reusePort  = fs.Bool("reuse-port", false, "SO_REUSEPORT on both listeners: a new broker can bind the same ports before this one stops (zero-downtime restart)")
		version    = fs.Bool("version", false, "print the version and exit")
		jwtKey     = fs.String("jwt-public-key", "", "PEM public key file for RS256 (RSA) or ES256 (P-256) JWTs")
		jwtClaim   = fs.String("jwt-claim", "", `JWT claim holding the username (default "sub")`)
		jwtCookie  = fs.String("jwt-cookie", "", `cookie that may carry the JWT (default "token")`)
		window     = fs.Int("write-window", 0, "credit window per connection: event bytes written and not yet confirmed read (default 16384)")
		lowat      = fs.Int("notsent-lowat", 0, "TCP_NOTSENT_LOWAT per socket, bytes (default 16384; negative: kernel default)")
		maxLag     = fs.Duration("max-lag", 0, "close a connection whose oldest unread event is older than this, 1008 (default 5s)")
		pubLag     = fs.Duration("publish-lag", 0, "publisher backpressure: publish requests wait while most connections are further behind than this (default 100ms; negative: off)")
		histSize   = fs.Int("history-size", 0, "event log size in bytes, shared by all connections (default 8388608)")
		histAge    = fs.Duration("history-age", 0, "drop logged events older than this (default 0: size only)")
		maxOutMem  = fs.Int64("max-output-memory", 0, "cap on buffered output (event log + socket buffers); over it the connections holding the most are closed (default 536870912; negative: off)")
		pubWait    = fs.Duration("publish-wait", 0, "longest a publish request waits for a saturated broker before 503 (default 5s)")
		linger     = fs.Duration("linger", 0, "delay before each fan-out pass so more events share one write (default 0: batching only under load)")
		compress   = fs.String("compression", "on", "permessage-deflate: on (negotiated when the client offers it) or off")
		compMin    = fs.Int("compression-min", 0, "smallest event payload deflated, bytes; smaller events go plain (default 256)")
		pprofOn    = fs.Bool("pprof", false, "serve /debug/pprof/ on the admin listener, to loopback clients with the API key only")
		jwtReq     = fs.Bool("jwt-required", false, "refuse clients without a token (401); otherwise they are anonymous")
		jwtReqExp  = fs.Bool("jwt-require-exp", false, "refuse tokens without an exp claim (401), so every identified connection ends unless refreshed")
		jwtAud     = fs.String("jwt-audience", "", "require this value in the token's aud claim, at the upgrade and at refresh")
		jwtIss     = fs.String("jwt-issuer", "", "require this iss claim, at the upgrade and at refresh")
		jwtRefresh = fs.Duration("jwt-refresh-window", 0, `tell a client this long before its token expires, once ({"eventType":11,"expiresIn":N}) (default 30s)`)
		tlsCert    = fs.String("tls-cert", "", "PEM certificate chain file: serve wss:// (TLS 1.2+) on the public port; reloaded on SIGHUP")
		tlsKey     = fs.String("tls-key", "", "PEM private key file for -tls-cert")
		natsURLs   = fs.String("nats", "", "NATS server URL[,URL...]: run as one node of a cluster (see README, Running a cluster)")
		natsSubj   = fs.String("nats-subject", "", `NATS subject prefix shared by the cluster's nodes (default "`+cluster.DefaultSubject+`")`)
		natsName   = fs.String("nats-name", "", "this node's name to NATS and to the other nodes (default host:port of -listen)")
		natsCreds  = fs.String("nats-creds", "", "NATS .creds file (or $"+envNATSUser+"/$"+envNATSPassword+", or $"+envNATSToken+")")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "broker: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *version {
		fmt.Fprint(stdout, versionString())
		return 0
	}

	log, err := newLogger(*logLevel, *logFormat, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "broker: %v\n", err)
		return 2
	}

	source := "bundled config.example.json"
	if *configPath != "" {
		source = *configPath
	}
	// load builds the whole configuration from the file, the environment,
	// the flags and the files they name, at start and again on SIGHUP.
	// It logs what is wrong and reports false.
	load := func(first bool) (options, bool) {
		opts := options{shutdownTimeout: 10 * time.Second}
		data := project.ExampleConfig
		if *configPath != "" {
			var err error
			if data, err = os.ReadFile(*configPath); err != nil {
				log.Error().Err(err).Msg("cannot read config")
				return opts, false
			}
		}
		warnings, err := parseConfig(data, &opts)
		if first {
			for _, w := range warnings {
				log.Warn().Str("config", source).Msg(w)
			}
		}
		if err != nil {
			log.Error().Str("config", source).Err(err).Msg("bad config")
			return opts, false
		}

		// Flags the operator set override the file, field by field.
		cfg := &opts.broker
		var secrets secretFlags
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "port":
				cfg.ListenAddr = fmt.Sprintf(":%d", *port)
			case "listen":
				cfg.ListenAddr = *listen
			case "admin-addr":
				cfg.AdminAddr = *adminAddr
			case "shards":
				cfg.Shards = *shards
			case "pollers":
				cfg.Pollers = *pollers
			case "read-buffer":
				cfg.ReadBufferSize = *readBuf
			case "write-buffer":
				cfg.SocketWriteBuffer = *writeBuf
			case "max-message":
				cfg.MaxMessageSize = *maxMsg
			case "max-pending":
				cfg.MaxPendingBytes = *maxPending
			case "max-publish":
				cfg.MaxPublishBytes = *maxPublish
			case "max-conns":
				cfg.MaxConns = *maxConns
			case "max-conns-per-ip":
				cfg.MaxConnsPerIP = *maxPerIP
			case "max-conns-per-user":
				cfg.MaxConnsPerUser = *maxPerUser
			case "max-accept-rate":
				cfg.MaxAcceptRate = *acceptRate
			case "max-accept-burst":
				cfg.MaxAcceptBurst = *acceptBrst
			case "ping-interval":
				cfg.PingInterval = *pingEvery
			case "idle-timeout":
				cfg.IdleTimeout = *idle
			case "handshake-timeout":
				cfg.HandshakeTimeout = *handshake
			case "drain-period":
				cfg.DrainPeriod = *drain
			case "close-timeout":
				cfg.CloseTimeout = *closeWait
			case "shutdown-timeout":
				opts.shutdownTimeout = *shutdown
			case "msg-rate":
				cfg.MessageRate = *msgRate
			case "msg-burst":
				cfg.MessageBurst = *msgBurst
			case "broadcast-rate":
				cfg.BroadcastRate = *bcastRate
			case "broadcast-burst":
				cfg.BroadcastBurst = *bcastBurst
			case "broadcast-bytes":
				cfg.BroadcastBytes = *bcastBytes
			case "broadcast-bytes-burst":
				cfg.BroadcastBytesBurst = *bcastBBur
			case "broadcast-node-bytes":
				cfg.BroadcastNodeBytes = *bcastNode
			case "meta-inflight":
				cfg.MetaInflight = *metaInfl
			case "meta-inflight-bytes":
				cfg.MetaInflightBytes = *metaInflB
			case "meta-max-pending":
				cfg.MetaMaxPending = *metaMaxPen
			case "backend-timeout":
				cfg.BackendTimeout = *backendTO
			case "targeting":
				cfg.Targeting = *targeting
			case "jwt-secret":
				secrets.jwtSecret = jwtSecret
			case "jwt-secret-file":
				secrets.jwtSecretFile = *jwtSecFile
			case "api-key-file":
				secrets.apiKeyFile = *apiKeyFile
			case "reuse-port":
				cfg.ReusePort = *reusePort
			case "jwt-public-key":
				opts.jwtKeyFile = *jwtKey
			case "jwt-claim":
				cfg.Auth.UsernameClaim = *jwtClaim
			case "jwt-cookie":
				cfg.Auth.Cookie = *jwtCookie
			case "write-window":
				cfg.WriteWindow = *window
			case "notsent-lowat":
				cfg.NotSentLowat = *lowat
			case "max-lag":
				cfg.MaxLag = *maxLag
			case "publish-lag":
				cfg.PublishLag = *pubLag
			case "history-size":
				cfg.HistorySize = *histSize
			case "history-age":
				cfg.HistoryAge = *histAge
			case "max-output-memory":
				cfg.MaxOutputMemory = *maxOutMem
			case "publish-wait":
				cfg.PublishWait = *pubWait
			case "linger":
				cfg.Linger = *linger
			case "compression":
				cfg.Compression = *compress
			case "compression-min":
				cfg.CompressionMin = *compMin
			case "pprof":
				cfg.Pprof = *pprofOn
			case "jwt-required":
				cfg.Auth.Required = *jwtReq
			case "jwt-require-exp":
				cfg.Auth.RequireExp = *jwtReqExp
			case "jwt-audience":
				cfg.Auth.Audience = *jwtAud
			case "jwt-issuer":
				cfg.Auth.Issuer = *jwtIss
			case "jwt-refresh-window":
				cfg.RefreshWindow = *jwtRefresh
			case "tls-cert":
				opts.tlsCertFile = *tlsCert
			case "tls-key":
				opts.tlsKeyFile = *tlsKey
			case "log-level":
				opts.logLevel = *logLevel
			case "nats":
				opts.cluster.URLs = commalist.Split(*natsURLs)
			case "nats-subject":
				opts.cluster.Subject = *natsSubj
			case "nats-creds":
				opts.cluster.CredsFile = *natsCreds
			case "nats-name":
				opts.cluster.Name = *natsName
			}
		})
		from, err := resolveSecrets(&opts, secrets, os.Getenv)
		if err != nil {
			log.Error().Err(err).Msg("cannot read secret")
			return opts, false
		}
		if first && secrets.jwtSecret != nil {
			log.Warn().Msg("-jwt-secret is visible to every local user in the process list (ps, /proc/PID/cmdline): use $" + envJWTSecret + " or -jwt-secret-file")
		}
		if first && (from.apiKey != "" || from.jwtSecret != "") {
			ev := log.Info()
			if from.apiKey != "" {
				ev.Str("apiKeyFrom", from.apiKey)
			}
			if from.jwtSecret != "" {
				ev.Str("jwtSecretFrom", from.jwtSecret)
			}
			ev.Msg("secrets loaded")
		}
		if opts.jwtKeyFile != "" {
			pem, err := os.ReadFile(opts.jwtKeyFile)
			if err != nil {
				log.Error().Err(err).Msg("cannot read JWT public key")
				return opts, false
			}
			cfg.Auth.PublicKeyPEM = string(pem)
		}
		if err := readTLSFiles(&opts); err != nil {
			log.Error().Err(err).Msg("cannot read TLS certificate")
			return opts, false
		}
		if _, err := parseLevel(opts.logLevel); err != nil {
			log.Error().Str("config", source).Err(err).Msg("bad config")
			return opts, false
		}
		if fs.Lookup("port") != nil && *port < 0 {
			log.Error().Int("port", *port).Msg("bad -port: must be 0..65535")
			return opts, false
		}
		if opts.shutdownTimeout <= 0 {
			log.Error().Dur("shutdown-timeout", opts.shutdownTimeout).Msg("bad -shutdown-timeout: must be positive")
			return opts, false
		}
		return opts, true
	}

	opts, ok := load(true)
	if !ok {
		return 1
	}
	setLevel(opts.logLevel)
	bridge, err := newBridge(&opts, log, os.Getenv)
	if err != nil {
		log.Error().Str("config", source).Err(err).Msg("bad cluster configuration")
		return 1
	}
	if bridge != nil {
		opts.broker.Bus = bridge
	}
	srv, err := broker.New(opts.broker, log)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			log.Error().Str("config", source).Msg(line)
		}
		return 1
	}
	if *check {
		log.Info().Str("config", source).Msg("configuration is valid")
		return 0
	}
	// SIGHUP is caught from before the start: its default action would
	// end the process.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	if err := srv.Start(); err != nil {
		log.Error().Err(err).Msg("cannot start")
		return 1
	}

	for {
		s := <-sig
		if s != syscall.SIGHUP {
			log.Info().Str("signal", s.String()).Dur("timeout", opts.shutdownTimeout).Msg("signal received, draining")
			break
		}
		log.Info().Str("config", source).Msg("SIGHUP: reloading the configuration")
		next, ok := load(false)
		// The cluster connection is made once, at start: cluster
		// settings change only with a restart.
		next.broker.Bus = opts.broker.Bus
		if ok {
			opts = reload(log, source, srv, opts, next)
			continue
		}
		log.Error().Str("config", source).Msg("reload refused: keeping the running configuration")
	}
	signal.Stop(sig)
	ctx, cancel := context.WithTimeout(context.Background(), opts.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("drain did not finish in time; remaining connections were cut")
	}
	return 0
}

// reload applies next over the running broker (what can change live, see
// broker.Server.Reload) and returns the options now in force. An invalid
// next changes nothing: each bad value gets a log line.
func reload(log zerolog.Logger, source string, srv *broker.Server, cur, next options) options {
	applied, ignored, err := srv.Reload(next.broker)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			log.Error().Str("config", source).Str("error", line).Msg("reload refused: keeping the running configuration")
		}
		return cur
	}
	// Process-level settings: the log level and the drain limit apply at
	// once; the log format needs a restart (it is a flag only).
	if next.logLevel != cur.logLevel {
		setLevel(next.logLevel)
		applied = append(applied, "logLevel")
	}
	if next.shutdownTimeout != cur.shutdownTimeout {
		applied = append(applied, "shutdownTimeout")
	}
	cur.logLevel, cur.shutdownTimeout = next.logLevel, next.shutdownTimeout
	ev := log.Info()
	if len(ignored) > 0 {
		ev = log.Warn()
	}
	ev.Str("config", source).Strs("applied", applied).Strs("ignoredUntilRestart", ignored).Msg("config reloaded")
	return cur
}

// readTLSFiles reads the certificate and key named by -tls-cert/-tls-key
// or websocket.tls into the broker config.
func readTLSFiles(o *options) error {
	if (o.tlsCertFile == "") != (o.tlsKeyFile == "") {
		return errors.New("-tls-cert and -tls-key (websocket.tls.cert and .key) must be set together")
	}
	if o.tlsCertFile == "" {
		return nil
	}
	cert, err := os.ReadFile(o.tlsCertFile)
	if err != nil {
		return err
	}
	key, err := os.ReadFile(o.tlsKeyFile)
	if err != nil {
		return err
	}
	o.broker.TLS = broker.TLSConfig{CertPEM: cert, KeyPEM: key}
	return nil
}

// newLogger builds the process logger. Its level is zerolog's global
// level (setLevel), so that SIGHUP can change it for every component.
func newLogger(level, format string, w io.Writer) (zerolog.Logger, error) {
	lvl, err := parseLevel(level)
	if err != nil || level == "" {
		return zerolog.Logger{}, fmt.Errorf("bad -log-level %q: want trace, debug, info, warn or error", level)
	}
	zerolog.SetGlobalLevel(lvl)
	switch format {
	case "json":
	case "console":
		// Colours only on a terminal: in a file or the journal the escape
		// codes are noise. NO_COLOR turns them off everywhere.
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: !isTerminal(w)}
	default:
		return zerolog.Logger{}, fmt.Errorf("bad -log-format %q: want json or console", format)
	}
	return zerolog.New(w).Level(zerolog.TraceLevel).With().Timestamp().Logger(), nil
}

// parseLevel reads a log level; "" is info.
func parseLevel(s string) (zerolog.Level, error) {
	if s == "" {
		return zerolog.InfoLevel, nil
	}
	lvl, err := zerolog.ParseLevel(s)
	if err != nil {
		return 0, fmt.Errorf("log level %q: want trace, debug, info, warn or error", s)
	}
	return lvl, nil
}

// setLevel sets the level of every logger in the process (load has
// checked it).
func setLevel(s string) {
	if lvl, err := parseLevel(s); err == nil {
		zerolog.SetGlobalLevel(lvl)
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
