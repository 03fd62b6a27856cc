package broker

import (
	"fmt"
	"reflect"
	"sync/atomic"
	"time"

	ltls "github.com/lesismal/llib/std/crypto/tls"
	"golang.org/x/time/rate"

	"github.com/webinate/broker/auth"
	"github.com/webinate/broker/origin"
)

// Live reload (cmd/broker calls Reload on SIGHUP).
//
// What Reload changes is read through atomics, so nothing is locked on
// the hot paths and every reader sees either the old or the new value:
//
//   - approvedSocketDomains: the origin matcher is swapped; the next
//     upgrade uses the new one.
//   - socketApiKey and jwt: the key and the JWT verifier are swapped;
//     connections already open stay, whoever they were let in by.
//   - messageRate/messageBurst, broadcastRate/broadcastBurst,
//     broadcastBytes/broadcastBytesBurst: new connections, and open ones
//     from their next message (each conn retunes its limiters when it sees
//     a new generation).
//   - broadcastNodeBytes: the node's shared bucket, at once.
//   - metaInflight, metaInflightBytes, metaMaxPending: the next
//     MetaRequest (requests already forwarded stay).
//   - maxLag, publishLag: the shard workers' next pass. How often a worker
//     passes when idle (passTick) stays as computed at start, at most
//     250 ms.
//   - maxPending: the next write of every connection. It may not grow
//     above its value at start, which also sized nbio's own write limit;
//     a larger value waits for a restart.
//   - tls: the certificate of new handshakes; open connections keep the
//     session they have. Turning TLS on or off needs a restart.
//   - maxConnsPerIP, maxConnsPerUser: the next upgrade. The counts are
//     kept whatever the caps (admission.go), so a lower cap refuses new
//     upgrades until enough of the open connections close, and none is
//     closed for it.
//   - maxAcceptRate/maxAcceptBurst: a new bucket, full, for the next
//     upgrade.
//
// Every other field only takes effect at start and is reported as
// ignored. Reload builds everything first and applies nothing unless the
// whole new configuration is valid.

// limits are the per-connection limits read on the hot paths.
type limits struct {
	gen            uint64 // changes with every reload that changes them
	messageRate    float64
	messageBurst   int
	broadcastRate  float64
	broadcastBurst int
	maxPending     int
	// Budgets (see Config): echo broadcast bytes per connection and per
	// node, MetaRequests waiting per client and per node.
	broadcastBytes      int
	broadcastBytesBurst int
	broadcastNodeBytes  int
	metaInflight        int
	metaInflightBytes   int
	metaMaxPending      int
}

func limitsOf(c Config, gen uint64) *limits {
	return &limits{
		gen:            gen,
		messageRate:    c.MessageRate,
		messageBurst:   c.MessageBurst,
		broadcastRate:  c.BroadcastRate,
		broadcastBurst: c.BroadcastBurst,
		maxPending:     c.MaxPendingBytes,

		broadcastBytes:      c.BroadcastBytes,
		broadcastBytesBurst: c.BroadcastBytesBurst,
		broadcastNodeBytes:  c.BroadcastNodeBytes,
		metaInflight:        c.MetaInflight,
		metaInflightBytes:   c.MetaInflightBytes,
		metaMaxPending:      c.MetaMaxPending,
	}
}

// nodeBurst is the node broadcast bucket's size: one second of the
// budget, and never less than the largest message.
func (l *limits) nodeBurst(maxMessage int) int { return max(l.broadcastNodeBytes, maxMessage) }

// atomicDuration is a time.Duration that may change while read.
type atomicDuration struct{ v atomic.Int64 }

func newAtomicDuration(d time.Duration) *atomicDuration {
	a := &atomicDuration{}
	a.v.Store(int64(d))
	return a
}

func (a *atomicDuration) Load() time.Duration   { return time.Duration(a.v.Load()) }
func (a *atomicDuration) Store(d time.Duration) { a.v.Store(int64(d)) }

// configKeys names each Config field the way the config file does, for
// the applied and ignored lists. TestConfigKeysComplete makes sure a new
// field gets a name (and a decision: live or not).
var configKeys = map[string]string{
	"ListenAddr": "listen", "AdminAddr": "adminAddr",
	"ApprovedOrigins": "approvedSocketDomains", "APIKey": "socketApiKey",
	"Shards": "shards", "Pollers": "pollers", "ReadBufferSize": "readBuffer",
	"SocketWriteBuffer": "writeBuffer", "MaxMessageSize": "maxMessage",
	"MaxPendingBytes": "maxPending", "MaxPublishBytes": "maxPublish",
	"MaxConns": "maxConns", "MaxConnsPerIP": "maxConnsPerIP",
	"MaxConnsPerUser": "maxConnsPerUser", "MaxAcceptRate": "maxAcceptRate",
	"MaxAcceptBurst": "maxAcceptBurst", "PingInterval": "pingInterval",
	"IdleTimeout": "idleTimeout", "HandshakeTimeout": "handshakeTimeout",
	"CloseTimeout": "closeTimeout", "DrainPeriod": "drainPeriod", "RefreshWindow": "jwt.refreshWindow", "MessageRate": "messageRate",
	"MessageBurst": "messageBurst", "BroadcastRate": "broadcastRate",
	"BroadcastBurst": "broadcastBurst", "BackendTimeout": "backendTimeout",
	"Targeting": "targeting", "WriteWindow": "writeWindow",
	"NotSentLowat": "notsentLowat", "MaxLag": "maxLag",
	"PublishLag": "publishLag", "PublishWait": "publishWait",
	"HistorySize": "historySize", "HistoryAge": "historyAge",
	"MaxOutputMemory": "maxOutputMemory", "Linger": "linger",
	"Pprof": "pprof", "ReusePort": "reusePort", "Auth": "jwt", "TLS": "tls", "Bus": "cluster",
	"BroadcastBytes": "broadcastBytes", "BroadcastBytesBurst": "broadcastBytesBurst",
	"BroadcastNodeBytes": "broadcastNodeBytes", "MetaInflight": "metaInflight",
	"MetaInflightBytes": "metaInflightBytes", "MetaMaxPending": "metaMaxPending",
	"Compression": "compression", "CompressionMin": "compressionMin",
}

// liveFields are the Config fields Reload applies (see above).
var liveFields = map[string]bool{
	"ApprovedOrigins": true, "APIKey": true, "Auth": true,
	"MessageRate": true, "MessageBurst": true,
	"BroadcastRate": true, "BroadcastBurst": true,
	"MaxLag": true, "PublishLag": true, "MaxPendingBytes": true,
	"TLS": true, "DrainPeriod": true, "RefreshWindow": true, "MaxConnsPerIP": true, "MaxConnsPerUser": true,
	"MaxAcceptRate": true, "MaxAcceptBurst": true,
	"BroadcastBytes": true, "BroadcastBytesBurst": true, "BroadcastNodeBytes": true,
	"MetaInflight": true, "MetaInflightBytes": true, "MetaMaxPending": true,
}

// Reload applies the fields of cfg that can change while the broker runs
// (see the list above) and reports, by config key, which changed and were
// applied and which changed but wait for a restart. An invalid cfg (every
// bad value named, as from New) changes nothing. Live connections stay
// open either way. Safe to call concurrently with everything, including
// itself; calls are serialised.
func (s *Server) Reload(cfg Config) (applied, ignored []string, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := *s.current.Load()
	next := old
	nv, ov := reflect.ValueOf(&next).Elem(), reflect.ValueOf(cfg)
	var fields []string
	for i := 0; i < ov.NumField(); i++ {
		name := ov.Type().Field(i).Name
		if reflect.DeepEqual(nv.Field(i).Interface(), ov.Field(i).Interface()) {
			continue
		}
		key := configKeys[name]
		switch {
		case !liveFields[name]:
			ignored = append(ignored, key)
			continue
		case name == "TLS" && old.TLS.Enabled() != cfg.TLS.Enabled():
			ignored = append(ignored, key+" (turning TLS on or off)")
			continue
		case name == "MaxPendingBytes" && cfg.MaxPendingBytes > s.cfg.MaxPendingBytes:
			ignored = append(ignored, fmt.Sprintf("%s (above its value at start, %d)", key, s.cfg.MaxPendingBytes))
			continue
		}
		nv.Field(i).Set(ov.Field(i))
		fields = append(fields, name)
		applied = append(applied, key)
	}
	if len(fields) == 0 {
		return nil, ignored, nil
	}
	// The mix of new live values and old start-only ones must hold
	// together too (max-pending against max-message, for one).
	if err := next.Validate(); err != nil {
		return nil, nil, err
	}
	// Build everything before changing anything.
	var (
		m      *origin.Matcher
		v      *auth.Verifier
		cert   *ltls.Certificate
		accept *rate.Limiter
	)
	for _, f := range fields {
		switch f {
		case "MaxAcceptRate", "MaxAcceptBurst":
			accept = newAcceptLimiter(next)
		case "ApprovedOrigins":
			if m, err = origin.New(origin.Config{Patterns: next.ApprovedOrigins}); err != nil {
				return nil, nil, fmt.Errorf("broker: %w", err)
			}
		case "Auth":
			if v, err = auth.New(next.Auth); err != nil {
				return nil, nil, fmt.Errorf("broker: %w", err)
			}
		case "TLS":
			if cert, err = parseCert(next.TLS); err != nil {
				return nil, nil, err
			}
		}
	}
	if m != nil {
		s.origins.Store(m)
	}
	if v != nil {
		s.auth.Store(v)
	}
	if cert != nil {
		s.certs.cur.Store(cert)
		s.logCert("tls certificate reloaded", cert)
	}
	if accept != nil {
		s.accept.Store(accept)
	}
	if next.APIKey != old.APIKey && next.APIKey == ExampleAPIKey {
		s.warnExampleKey()
	}
	key := []byte(next.APIKey)
	s.apiKey.Store(&key)
	if next.APIKey != old.APIKey {
		// Every backend proved the old key: it holds it no longer.
		s.meta.closeBackends(reasonKeyRotated, &s.stats.keyRotated)
	}
	lim := limitsOf(next, s.limits.Load().gen+1)
	s.limits.Store(lim)
	s.retuneNode(lim)
	s.hub.fo.maxLag.Store(next.MaxLag)
	s.hub.fo.publishLag.Store(next.PublishLag)
	s.current.Store(&next)
	return applied, ignored, nil
}

// retune brings c's rate limiters to the current limits. Called with
// rmu held, from dispatch, when the limits' generation changed.
func (c *conn) retune(l *limits) {
	c.limGen = l.gen
	if c.msgLimit != nil && l.messageRate >= 0 {
		c.msgLimit.SetLimit(rate.Limit(l.messageRate))
		c.msgLimit.SetBurst(l.messageBurst)
	}
	if c.bcastLimit != nil && l.broadcastRate >= 0 {
		c.bcastLimit.SetLimit(rate.Limit(l.broadcastRate))
		c.bcastLimit.SetBurst(l.broadcastBurst)
	}
	if c.bcastBytes != nil && l.broadcastBytes >= 0 {
		c.bcastBytes.SetLimit(rate.Limit(l.broadcastBytes))
		c.bcastBytes.SetBurst(l.broadcastBytesBurst)
	}
}

// retuneNode brings the node's broadcast bucket to l. rate.Limiter is
// safe for concurrent use, so broadcasters need no lock for it. Turned
// off, the budget is not consulted (echoGate) and the bucket is left as
// it was.
func (s *Server) retuneNode(l *limits) {
	if l.broadcastNodeBytes < 0 {
		return
	}
	s.bcastNode.SetLimit(rate.Limit(l.broadcastNodeBytes))
	s.bcastNode.SetBurst(l.nodeBurst(s.cfg.MaxMessageSize))
}
