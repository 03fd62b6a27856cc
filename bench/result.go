package bench

import "time"

// Result is one scenario's report. Every section is always present in the
// JSON (zero when the scenario does not fill it) so scripts can rely on the
// shape.
type Result struct {
	Scenario string `json:"scenario"`
	// Label is Config.Label: the series this run belongs to in charts.
	Label       string       `json:"label"`
	Target      Target       `json:"target"`
	Params      Params       `json:"params"`
	Start       time.Time    `json:"start"`
	WallSeconds float64      `json:"wallSeconds"`
	Connect     ConnectStats `json:"connect"`
	Fanout      FanoutStats  `json:"fanout"`
	Echo        EchoStats    `json:"echo"`
	Idle        IdleStats    `json:"idle"`
	// Latency is publish-to-receive (fanout) or round trip (echo).
	Latency Latency      `json:"latency"`
	Server  ServerStats  `json:"server"`
	Harness HarnessStats `json:"harness"`
	// Nodes has one entry per target address (Config.Addrs), in order;
	// never nil.
	Nodes []NodeStats `json:"nodes"`
	// Errors lists run-level problems (publish failures, timeouts); never nil.
	Errors []string `json:"errors"`
}

// Target is where the run pointed.
type Target struct {
	// Addr is the node addresses joined with commas.
	Addr      string   `json:"addr"`
	Addrs     []string `json:"addrs"`
	AdminAddr string   `json:"adminAddr"`
	Path      string   `json:"path"`
	Origin    string   `json:"origin"`
}

// Params echoes the knobs that shaped the run.
type Params struct {
	Conns           int     `json:"conns"`
	Procs           int     `json:"procs"`
	Sources         int     `json:"sources"`
	DialConcurrency int     `json:"dialConcurrency"`
	DurationSeconds float64 `json:"durationSeconds"`
	Rate            float64 `json:"rate"`
	Batch           int     `json:"batch"`
	Size            int     `json:"size"`
	Mode            string  `json:"mode"`
	Hold            bool    `json:"hold"`
	PID             int     `json:"pid"`
	Publishers      int     `json:"publishers"`
	StalledFraction float64 `json:"stalledFraction"`
	// LateAfterSeconds is Config.LateAfter.
	LateAfterSeconds float64 `json:"lateAfterSeconds"`
	// RetryAfterMaxSeconds is the cap on honouring Retry-After (0: none).
	RetryAfterMaxSeconds float64 `json:"retryAfterMaxSeconds"`
	LagBoundSeconds      float64 `json:"lagBoundSeconds"`
}

// ConnectStats covers the connection phase every scenario starts with.
type ConnectStats struct {
	Attempted int     `json:"attempted"`
	Connected int     `json:"connected"`
	Failed    int     `json:"failed"`
	Seconds   float64 `json:"seconds"`
	// PerSec is successful handshakes per second of the phase.
	PerSec float64 `json:"perSec"`
	// Errors counts failures by kind, e.g. "HTTP 403" or "connection
	// refused"; never nil.
	Errors map[string]int `json:"errors"`
	// Disconnected is connections the server closed after the handshake.
	Disconnected int64 `json:"disconnected"`
}

// FanoutStats covers publishing and delivery. Delivery figures (Expected,
// Received, Lost, latency, UndeliveredAfter) count reading subscribers only;
// the stalled ones have their own section.
type FanoutStats struct {
	// Subscribers is every connected subscriber: Readers + StalledSubscribers.
	Subscribers        int `json:"subscribers"`
	Readers            int `json:"readers"`
	StalledSubscribers int `json:"stalledSubscribers"`
	Publishers         int `json:"publishers"`
	// Published is events the server accepted (202 and its count).
	Published int64 `json:"published"`
	// PublishFailed is events whose request failed otherwise (errors
	// listed in Result.Errors).
	PublishFailed int64 `json:"publishFailed"`
	// Refused is events answered 503 (the server shedding load, not an
	// error), in RefusedRequests requests; they are not in Published.
	Refused         int64   `json:"refused"`
	RefusedRequests int64   `json:"refusedRequests"`
	PublishSeconds  float64 `json:"publishSeconds"`
	PublishRate     float64 `json:"publishRate"`
	// Expected is Published × Readers.
	Expected   int64   `json:"expected"`
	Received   int64   `json:"received"`
	Lost       int64   `json:"lost"`
	LossPct    float64 `json:"lossPct"`
	OutOfOrder int64   `json:"outOfOrder"`
	// UndeliveredAfter is what an outside observer still missed
	// LateAfter after publishing stopped.
	UndeliveredAfter Undelivered `json:"undeliveredAfter"`
	// ReceivedAfterStop is deliveries that arrived after publishing
	// stopped; ReceivedAfterStopPct is their share of Received.
	ReceivedAfterStop    int64        `json:"receivedAfterStop"`
	ReceivedAfterStopPct float64      `json:"receivedAfterStopPct"`
	Stalled              StalledStats `json:"stalled"`
	// Unparsed is frames without seq/ts (e.g. error events).
	Unparsed int64 `json:"unparsed"`
	// DeliveriesPerSec is received over the span from first publish to last
	// delivery.
	DeliveriesPerSec float64 `json:"deliveriesPerSec"`
}

// Undelivered counts expected deliveries (to reading subscribers) not yet
// received Seconds after publishing stopped.
type Undelivered struct {
	Seconds  float64 `json:"seconds"`
	Count    int64   `json:"count"`
	Fraction float64 `json:"fraction"`
}

// StalledStats is what became of the subscribers that never read
// (Config.StalledFraction), seen from their side.
type StalledStats struct {
	Count int64 `json:"count"`
	// Closed is those with any sign of the server closing them.
	Closed int64 `json:"closed"`
	// Closed1008 and ClosedOther saw a close frame at the final read, with
	// code 1008 or another (CloseCodes has them by code).
	Closed1008  int64            `json:"closed1008"`
	ClosedOther int64            `json:"closedOther"`
	CloseCodes  map[string]int64 `json:"closeCodes"`
	// Reset and EOF ended without a close frame; Open is still open after
	// the final read (Config.StalledReadTimeout).
	Reset int64 `json:"reset"`
	EOF   int64 `json:"eof"`
	Open  int64 `json:"open"`
	// ClosedDuringRun is those whose close showed before the final read:
	// their TCP state left ESTABLISHED (FIN or RST), or the close frame the
	// final read found had already arrived by then. Both come from polling
	// TCP_INFO every 200 ms (state, bytes received), which reads nothing.
	// CloseSecondsP50/Max are when, in seconds since the first publish
	// (upper bounds, to the poll interval).
	ClosedDuringRun int64   `json:"closedDuringRun"`
	CloseSecondsP50 float64 `json:"closeSecondsP50"`
	CloseSecondsMax float64 `json:"closeSecondsMax"`
	// ClosedWithinBound is those closed during the run no later than
	// LagBoundSeconds (Config.LagBound) after the first publish; zero when
	// no bound was given.
	ClosedWithinBound int64   `json:"closedWithinBound"`
	LagBoundSeconds   float64 `json:"lagBoundSeconds"`
}

// NodeStats is one target address's share of a run (fanout fills the
// delivery fields).
type NodeStats struct {
	Addr          string  `json:"addr"`
	Connected     int     `json:"connected"`
	Failed        int     `json:"failed"`
	Readers       int     `json:"readers"`
	Stalled       int     `json:"stalled"`
	StalledClosed int64   `json:"stalledClosed"`
	Expected      int64   `json:"expected"`
	Received      int64   `json:"received"`
	Lost          int64   `json:"lost"`
	LossPct       float64 `json:"lossPct"`
	OutOfOrder    int64   `json:"outOfOrder"`
	// UndeliveredAfter is the count as in FanoutStats.UndeliveredAfter.
	UndeliveredAfter int64   `json:"undeliveredAfter"`
	Latency          Latency `json:"latency"`
}

// EchoStats covers closed-loop echo clients.
type EchoStats struct {
	Clients       int     `json:"clients"`
	RoundTrips    int64   `json:"roundTrips"`
	Seconds       float64 `json:"seconds"`
	RoundTripsSec float64 `json:"roundTripsPerSec"`
}

// IdleStats covers held idle connections.
type IdleStats struct {
	Held        int64   `json:"held"`
	Dropped     int64   `json:"dropped"`
	HoldSeconds float64 `json:"holdSeconds"`
}

// ServerStats is sampled from /proc/PID when Config.PID is set.
type ServerStats struct {
	PID             int   `json:"pid"`
	RSSBeforeBytes  int64 `json:"rssBeforeBytes"`
	RSSAfterBytes   int64 `json:"rssAfterBytes"`
	RSSPeakBytes    int64 `json:"rssPeakBytes"`
	RSSPerConnBytes int64 `json:"rssPerConnBytes"`
	// CPUSeconds is user+system time during the measured phase (publish
	// and drain, echo loop, hold, or connect).
	CPUSeconds float64 `json:"cpuSeconds"`
	// CPUCores is CPUSeconds divided by the phase's wall time.
	CPUCores float64 `json:"cpuCores"`
	Threads  int     `json:"threads"`
	Error    string  `json:"error"`
}

// HarnessStats is the harness's own CPU (getrusage of this process and its
// worker processes), to show the client side was not the bottleneck.
type HarnessStats struct {
	Procs          int     `json:"procs"`
	CPUUserSeconds float64 `json:"cpuUserSeconds"`
	CPUSysSeconds  float64 `json:"cpuSysSeconds"`
	CPUSeconds     float64 `json:"cpuSeconds"`
	// CPUCores is CPUSeconds over the run's wall time.
	CPUCores float64 `json:"cpuCores"`
	// InProcessServer is set when the server shares this process (tests), so
	// CPU numbers include it.
	InProcessServer bool `json:"inProcessServer"`
}
