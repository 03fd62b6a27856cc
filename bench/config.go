package bench

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/webinate/broker/internal/commalist"
)

// Scenario names accepted in Config.Scenario.
const (
	ScenarioFanout  = "fanout"
	ScenarioIdle    = "idle"
	ScenarioEcho    = "echo"
	ScenarioConnect = "connect"
)

// Publish modes for the fanout scenario (Config.Mode).
const (
	// ModeAPI publishes through POST /api/events on the admin address.
	ModeAPI = "api"
	// ModeEcho publishes by sending broadcast echo events from one client.
	ModeEcho = "echo"
)

// Defaults applied by Config.setDefaults when a field is zero.
const (
	DefaultOrigin          = "http://localhost"
	DefaultPath            = "/"
	DefaultSources         = 8
	DefaultDialConcurrency = 128
	DefaultDialTimeout     = 10 * time.Second
	DefaultDuration        = 10 * time.Second
	DefaultDrainIdle       = 5 * time.Second
	// DefaultSettle is the pause between the last handshake and the first
	// published event (see Config.Settle).
	DefaultSettle = 200 * time.Millisecond
	DefaultSize   = 100
	DefaultBatch  = 1
	// DefaultPublishers is the number of concurrent publishers.
	DefaultPublishers = 1
	// DefaultLateAfter is how long after publishing stopped the harness
	// counts what has not arrived yet (FanoutStats.UndeliveredAfter).
	DefaultLateAfter = 5 * time.Second
	// DefaultRetryAfterMax caps how long a publisher honours a 503's
	// Retry-After. Servers send whole seconds; waiting that long would let
	// the pressure off, and the point of a flood is to keep it on.
	DefaultRetryAfterMax = 100 * time.Millisecond
	// DefaultStalledReadTimeout bounds the final read of the stalled
	// subscribers' sockets, looking for the server's close.
	DefaultStalledReadTimeout = 3 * time.Second
	// MinStalledReconnect is the shortest Config.StalledReconnect: below
	// it the waves would be a handshake flood, not stalled subscribers.
	MinStalledReconnect = 100 * time.Millisecond
	// DefaultTimeoutSlack is added to twice the duration to get the hard
	// timeout when Config.Timeout is zero.
	DefaultTimeoutSlack = 2 * time.Minute
)

// WorkerFlag is the hidden first argument with which Run re-executes the
// current binary as a worker process; such a main must call WorkerMain.
const WorkerFlag = "-bench-worker"

// Config describes one scenario run. The target is only addresses and a key,
// so the same run works against the broker or the baseline.
type Config struct {
	// Scenario is one of the Scenario* names.
	Scenario string
	// Addr is the public WebSocket host:port, or several separated by
	// commas (nodes of one cluster); each must be a loopback address.
	// Subscribers are spread over them round robin, and the report has a
	// section per node. Addrs, if set, is used instead.
	Addr string
	// Addrs is the node list; zero means Addr split at commas.
	Addrs []string
	// Path is the upgrade request path; zero means DefaultPath.
	Path string
	// AdminAddr is the admin host:port serving POST /api/events (fanout in
	// ModeAPI only), or several separated by commas, which the publishers
	// take round robin; each must be a loopback address.
	AdminAddr string
	// Key is the socketApiKey sent as "Authorization: Bearer" to publish.
	Key string
	// Origin is sent on every upgrade; zero means DefaultOrigin.
	Origin string

	// Conns is the number of subscribers (fanout), held connections (idle),
	// closed-loop clients (echo) or handshakes (connect).
	Conns int
	// Procs is the number of client processes; zero or one runs the clients
	// inside this process. More re-executes WorkerCommand.
	Procs int
	// WorkerCommand starts one worker; zero means this executable with
	// WorkerFlag.
	WorkerCommand []string
	// Sources is how many loopback source addresses (127.0.0.1 …
	// 127.0.0.Sources) the clients spread over; zero means DefaultSources.
	Sources int
	// DialConcurrency bounds handshakes in flight over all processes; zero
	// means DefaultDialConcurrency.
	DialConcurrency int
	// DialTimeout bounds one handshake; zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// Hold keeps connect-scenario connections open until the end; false
	// closes each right after its handshake (measures handshake rate
	// without holding file descriptors on either side).
	Hold bool

	// Duration is how long fanout publishes, idle holds and echo loops;
	// zero means DefaultDuration.
	Duration time.Duration
	// Timeout is the hard bound on the whole run; zero means twice Duration
	// plus DefaultTimeoutSlack.
	Timeout time.Duration
	// Settle is how long fanout waits after connecting before it publishes:
	// many servers (the baseline among them) add a connection to their
	// subscriber set just after writing the 101, so an event published the
	// instant the client sees 101 can miss it, which would count as loss.
	// Zero means DefaultSettle.
	Settle time.Duration
	// DrainIdle ends the fanout drain once no delivery arrived for this
	// long; zero means DefaultDrainIdle.
	DrainIdle time.Duration
	// Rate is published events per second; zero publishes as fast as the
	// server accepts.
	Rate float64
	// Batch is the events per publish request at the maximum rate; zero
	// means DefaultBatch. At a fixed Rate each request carries the events
	// due, so a publisher that fell behind catches up with one larger
	// request (at most 1000 events) instead of lowering the offered rate.
	// ModeEcho sends one event per frame and ignores it.
	Batch int
	// Size is the encoded size of each event in bytes; zero means
	// DefaultSize. Events never shrink below their fixed fields.
	Size int
	// Mode is ModeAPI (zero) or ModeEcho.
	Mode string
	// Publishers is how many publishers run concurrently, each with its own
	// connection (HTTP client or echo client) and its own sequence numbers,
	// carried in every event with its publisher id so receivers check order
	// per publisher. A fixed Rate is split evenly between them. Zero means
	// DefaultPublishers.
	Publishers int
	// RetryAfterMax caps the pause a publisher takes after a 503 (which is
	// counted as refused, not as an error): it waits Retry-After or this,
	// whichever is shorter. Zero means DefaultRetryAfterMax; negative
	// retries at once.
	RetryAfterMax time.Duration
	// StalledFraction (0..1) of the subscribers never read after their
	// handshake: they are dialled as plain sockets that are left alone
	// until the end, when the harness reads what is there looking for the
	// server's close. They are spread evenly over the connection indexes.
	StalledFraction float64
	// StalledReadTimeout bounds that final read; zero means
	// DefaultStalledReadTimeout.
	StalledReadTimeout time.Duration
	// StalledReconnect, if set, makes every stalled subscriber reset its
	// connection and dial a new one (left unread too) every period, so
	// a server that cuts slow consumers only after they have lagged that
	// long never gets to: the reconnecting attacker. The reconnects come
	// in waves, each socket at its own random point within ±5 % of the
	// period, so they are together but not in one millisecond. They go on
	// until the final read, which reads each socket's last connection;
	// see StalledStats for what is counted. At least MinStalledReconnect.
	StalledReconnect time.Duration
	// StalledForgeInterval, if set, makes every stalled subscriber send,
	// every interval until the server closes it, a masked pong shaped
	// like a credit pong it was never sent: the broker's 25-byte tagged
	// shape and the older 17-byte one in turn, positions cycling through
	// the first StalledForgeWindow bytes, a huge cursor and a random tag
	// (see forge.go). They still never read, so a server that checks its
	// credit pongs cuts them as it cuts any stalled subscriber; one that
	// takes them at their word keeps writing to them. At least
	// MinStalledForgeInterval; StalledStats counts what was sent.
	StalledForgeInterval time.Duration
	// StalledForgeWindow is the span of the forged positions; zero means
	// DefaultStalledForgeWindow (the broker's default write window).
	StalledForgeWindow int
	// Compression makes the subscribers offer permessage-deflate (no
	// context takeover both ways) and inflate what arrives compressed,
	// each message on its own; FanoutStats reports the bytes received on
	// the wire against those inflated.
	Compression bool
	// NoInflateCache makes every subscriber inflate each compressed
	// message itself. By default (with Compression) the subscribers of
	// one process share a cache keyed by the exact compressed bytes: a
	// server compressing each event once with no context takeover sends
	// them all the same bytes, so the process inflates each event once
	// and its CPU stays near a plain run's (see inflateCache). Off, the
	// harness pays what real clients would, each on its own.
	NoInflateCache bool
	// Mix publishes a realistic event mix instead of events of Size bytes:
	// sizes from 100 to 4,000 bytes, padded with protocol-shaped JSON
	// (records of users and statuses) rather than one repeated byte, so
	// that compression ratios mean something.
	Mix bool
	// LateAfter is when, after publishing stopped, the harness counts the
	// deliveries still missing (FanoutStats.UndeliveredAfter); the drain
	// lasts at least this long unless everything arrived. Zero means
	// DefaultLateAfter.
	LateAfter time.Duration
	// LagBound, if set, is the server's slow-consumer bound (e.g. the
	// broker's -max-lag) plus any slack: stalled subscribers closed no later
	// than this after the first publish are counted in
	// StalledStats.ClosedWithinBound.
	LagBound time.Duration
	// Label names the series this run belongs to in charts (e.g. "broker"
	// or "baseline"); it is only copied into the result.
	Label string

	// PID is the server process to sample for RSS and CPU; zero skips it.
	PID int
	// Progress, if set, receives a one-line status about twice a second.
	Progress func(line string)
}

func (c *Config) setDefaults() {
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if c.Origin == "" {
		c.Origin = DefaultOrigin
	}
	if c.Procs <= 0 {
		c.Procs = 1
	}
	if c.Sources == 0 {
		c.Sources = DefaultSources
	}
	if c.DialConcurrency == 0 {
		c.DialConcurrency = DefaultDialConcurrency
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Timeout == 0 {
		c.Timeout = 2*c.Duration + DefaultTimeoutSlack
	}
	if c.Settle == 0 {
		c.Settle = DefaultSettle
	}
	if c.DrainIdle == 0 {
		c.DrainIdle = DefaultDrainIdle
	}
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.Mode == "" {
		c.Mode = ModeAPI
	}
	if len(c.Addrs) == 0 {
		c.Addrs = commalist.Split(c.Addr)
	}
	if c.Publishers == 0 {
		c.Publishers = DefaultPublishers
	}
	if c.RetryAfterMax == 0 {
		c.RetryAfterMax = DefaultRetryAfterMax
	}
	if c.StalledReadTimeout == 0 {
		c.StalledReadTimeout = DefaultStalledReadTimeout
	}
	if c.LateAfter == 0 {
		c.LateAfter = DefaultLateAfter
	}
	if c.StalledForgeWindow == 0 {
		c.StalledForgeWindow = DefaultStalledForgeWindow
	}
	if len(c.WorkerCommand) == 0 && c.Procs > 1 {
		if exe, err := os.Executable(); err == nil {
			c.WorkerCommand = []string{exe, WorkerFlag}
		}
	}
}

// Validate reports an unusable configuration, including any target that is
// not a loopback address.
func (c *Config) Validate() error {
	switch c.Scenario {
	case ScenarioFanout, ScenarioIdle, ScenarioEcho, ScenarioConnect:
	default:
		return fmt.Errorf("bench: unknown scenario %q (want fanout, idle, echo or connect)", c.Scenario)
	}
	if len(c.Addrs) == 0 {
		return errors.New("bench: no target address")
	}
	for _, a := range c.Addrs {
		if err := CheckLoopback(a); err != nil {
			return err
		}
	}
	if c.Scenario == ScenarioFanout && c.Mode == ModeAPI {
		admins := commalist.Split(c.AdminAddr)
		if len(admins) == 0 {
			return errors.New("bench: fanout through the publish API needs an admin address")
		}
		for _, a := range admins {
			if err := CheckLoopback(a); err != nil {
				return err
			}
		}
		if c.Key == "" {
			return errors.New("bench: fanout through the publish API needs a key")
		}
	}
	if c.Mode != ModeAPI && c.Mode != ModeEcho {
		return fmt.Errorf("bench: unknown publish mode %q (want api or echo)", c.Mode)
	}
	if c.Conns <= 0 {
		return errors.New("bench: Conns must be positive")
	}
	if c.Procs > c.Conns {
		return fmt.Errorf("bench: %d processes for %d connections", c.Procs, c.Conns)
	}
	if c.Procs > 1 && len(c.WorkerCommand) == 0 {
		return errors.New("bench: Procs > 1 needs a WorkerCommand")
	}
	if c.Sources < 1 || c.Sources > 254 {
		return errors.New("bench: Sources must be between 1 and 254")
	}
	if c.DialConcurrency < 1 || c.Batch < 1 || c.Size < 1 || c.Rate < 0 {
		return errors.New("bench: DialConcurrency, Batch and Size must be positive and Rate not negative")
	}
	if c.Publishers < 1 {
		return errors.New("bench: Publishers must be positive")
	}
	if c.StalledFraction < 0 || c.StalledFraction > 1 {
		return errors.New("bench: StalledFraction must be between 0 and 1")
	}
	if c.StalledReconnect != 0 {
		if c.StalledReconnect < MinStalledReconnect {
			return fmt.Errorf("bench: stalled reconnect period %v: must be at least %v (or 0 for none)", c.StalledReconnect, MinStalledReconnect)
		}
		if c.StalledFraction == 0 || c.Scenario != ScenarioFanout {
			return fmt.Errorf("bench: stalled reconnect period %v needs stalled subscribers (a fanout with StalledFraction > 0)", c.StalledReconnect)
		}
	}
	if c.StalledForgeInterval != 0 {
		if c.StalledForgeInterval < MinStalledForgeInterval {
			return fmt.Errorf("bench: stalled forge-pong interval %v: must be at least %v (or 0 for none)", c.StalledForgeInterval, MinStalledForgeInterval)
		}
		if c.StalledFraction == 0 || c.Scenario != ScenarioFanout {
			return fmt.Errorf("bench: stalled forge-pong interval %v needs stalled subscribers (a fanout with StalledFraction > 0)", c.StalledForgeInterval)
		}
	}
	if c.StalledForgeWindow < 1 {
		return fmt.Errorf("bench: stalled forge window %d: must be positive", c.StalledForgeWindow)
	}
	if c.LateAfter < 0 || c.StalledReadTimeout < 0 {
		return errors.New("bench: LateAfter and StalledReadTimeout must not be negative")
	}
	return nil
}

// isStalled reports whether connection index i is one of the fraction f of
// stalled subscribers, spread evenly. Callers pass the index within the
// connection's node (global index / nodes), so every node gets its share,
// and every worker process too.
func isStalled(i int, f float64) bool {
	if f <= 0 {
		return false
	}
	return int(float64(i+1)*f) > int(float64(i)*f)
}

// CheckLoopback returns an error unless addr is host:port with a loopback
// host (127.0.0.0/8, ::1 or "localhost"). Load tests never leave the machine.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bench: target %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("bench: refusing target %q: only loopback addresses (127.0.0.0/8, ::1, localhost) may be load-tested", addr)
	}
	return nil
}
