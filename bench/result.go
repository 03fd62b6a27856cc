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
	// StalledReconnectSeconds is Config.StalledReconnect (0: never).
	StalledReconnectSeconds float64 `json:"stalledReconnectSeconds"`
	// StalledForgeIntervalSeconds is Config.StalledForgeInterval (0: the
	// stalled subscribers send nothing); StalledForgeWindow the span of
	// the forged positions.
	StalledForgeIntervalSeconds float64 `json:"stalledForgeIntervalSeconds"`
	StalledForgeWindow          int     `json:"stalledForgeWindow"`
	// Compression and Mix are Config.Compression and Config.Mix;
	// InflateCache is set when the subscribers shared the inflate cache
	// (Compression without Config.NoInflateCache).
	Compression  bool `json:"compression"`
	Mix          bool `json:"mix"`
	InflateCache bool `json:"inflateCache"`
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
	Refused         int64 `json:"refused"`
	RefusedRequests int64 `json:"refusedRequests"`
	// PublishRequests is every publish request that ran to an end: answered
	// (202, 503 or another status) or failed; echo mode counts each batch
	// of frames written. Requests cut short by the run's own end are left
	// out.
	PublishRequests int64 `json:"publishRequests"`
	// PublishLatency is those requests' durations, from just before each
	// was sent to its response (or its failure), whatever the status: how
	// long the server held the publisher. In echo mode it is the time to
	// hand the frames to the socket (there is no response). Its MaxMs is
	// the slowest publish.
	PublishLatency Latency `json:"publishLatency"`
	PublishSeconds float64 `json:"publishSeconds"`
	PublishRate    float64 `json:"publishRate"`
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
	// ServerCPUMicrosPerDelivery is the server's CPU over publishing and
	// the drain (ServerStats.CPUSeconds) per delivery received, in µs.
	// Zero without Config.PID.
	ServerCPUMicrosPerDelivery float64 `json:"serverCpuUsPerDelivery"`
	// WireBytes is the text payload bytes the subscribers received as
	// they came, PlainBytes the same after inflating; both are counted
	// only with Config.Compression (zero otherwise, so that a plain run
	// costs the harness nothing more). CompressedReaders is the subscribers that negotiated
	// permessage-deflate (Config.Compression).
	WireBytes         int64 `json:"wireBytes"`
	PlainBytes        int64 `json:"plainBytes"`
	CompressedReaders int   `json:"compressedReaders"`
	// Inflations is the compressed messages the harness inflated, and
	// InflateCacheHits those its inflate cache had already inflated for
	// another subscriber (Params.InflateCache): with the cache, about one
	// inflation per event and client process.
	Inflations       int64 `json:"inflations"`
	InflateCacheHits int64 `json:"inflateCacheHits"`
}

// Undelivered counts expected deliveries (to reading subscribers) not yet
// received Seconds after publishing stopped.
type Undelivered struct {
	Seconds  float64 `json:"seconds"`
	Count    int64   `json:"count"`
	Fraction float64 `json:"fraction"`
}

// StalledStats is what became of the subscribers that never read
// (Config.StalledFraction), seen from their side. With
// Config.StalledReconnect each stalled socket has several connections in
// turn: the close figures from the final read (Closed … Open) are about
// the last one of each, the reconnect figures about the ones before, and
// the close times and the bound about all of them.
type StalledStats struct {
	// Count is the stalled sockets (subscribers).
	Count int64 `json:"count"`
	// Closed is those whose last connection showed any sign of the
	// server closing it.
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
	// ReconnectSeconds is Config.StalledReconnect (0: they never
	// reconnect). Connections is every connection the stalled sockets
	// made: Count + Reconnects. Reconnects is successful re-dials after
	// closing the previous connection unread; ReconnectFailed the re-dials
	// that failed (ReconnectErrors by kind: a server refusing them is
	// shedding, not losing). Unconnected is stalled sockets left without a
	// connection at the end because their last re-dial failed.
	ReconnectSeconds float64          `json:"reconnectSeconds"`
	Connections      int64            `json:"connections"`
	Reconnects       int64            `json:"reconnects"`
	ReconnectFailed  int64            `json:"reconnectFailed"`
	ReconnectErrors  map[string]int64 `json:"reconnectErrors"`
	Unconnected      int64            `json:"unconnected"`
	// ClosedBeforeReconnect is connections the server had closed by the
	// time the harness replaced them: its close frame was among what the
	// kernel held for them (read then without waiting, the only read
	// before the final one), or their TCP state showed its FIN or RST.
	// ClosedBeforeReconnect1008 is those with a 1008 close frame.
	ClosedBeforeReconnect     int64 `json:"closedBeforeReconnect"`
	ClosedBeforeReconnect1008 int64 `json:"closedBeforeReconnect1008"`
	// ForgeIntervalSeconds is Config.StalledForgeInterval (0: no forged
	// pongs). ForgedPongs is forged credit pongs handed whole to the
	// kernel, over all stalled connections; ForgeBlocked is turns skipped
	// because a socket's send buffer was full (the server not reading
	// them); ForgeFailed is connections whose forging ended with a failed
	// write (reset or closed by the server) rather than by the watcher
	// seeing the server's FIN or RST first.
	ForgeIntervalSeconds float64 `json:"forgeIntervalSeconds"`
	ForgedPongs          int64   `json:"forgedPongs"`
	ForgeBlocked         int64   `json:"forgeBlocked"`
	ForgeFailed          int64   `json:"forgeFailed"`
	// ClosedDuringRun is connections whose close showed before the final read:
	// their TCP state left ESTABLISHED (FIN or RST), or the close frame the
	// final read found had already arrived by then. Both come from polling
	// TCP_INFO every 200 ms (state, bytes received), which reads nothing.
	// CloseSecondsP50/Max are when, in seconds since the connection's
	// start (upper bounds, to the poll interval). A connection's start is
	// the first publish, or its handshake if that came later (a
	// reconnect's).
	ClosedDuringRun int64   `json:"closedDuringRun"`
	CloseSecondsP50 float64 `json:"closeSecondsP50"`
	CloseSecondsMax float64 `json:"closeSecondsMax"`
	// ClosedWithinBound is connections closed during the run no later than
	// LagBoundSeconds (Config.LagBound) after their start. BoundEligible
	// is those a server cutting at that bound had to close within it:
	// closed within it, or still held by the harness LagBoundSeconds after
	// their start (a connection replaced sooner by a reconnect is not).
	// Every one was cut in time when the two are equal. Both are zero
	// when no bound was given.
	ClosedWithinBound int64   `json:"closedWithinBound"`
	BoundEligible     int64   `json:"boundEligible"`
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
	// ServerCPUMicrosPerRoundTrip is the server's CPU over the echo loop
	// (ServerStats.CPUSeconds) per round trip, in µs: what a round trip
	// costs the server, comparable across servers and client counts.
	// Zero without Config.PID.
	ServerCPUMicrosPerRoundTrip float64 `json:"serverCpuUsPerRoundTrip"`
}

// IdleStats covers held idle connections.
type IdleStats struct {
	Held        int64   `json:"held"`
	Dropped     int64   `json:"dropped"`
	HoldSeconds float64 `json:"holdSeconds"`
}

// ServerStats is sampled from /proc/PID when Config.PID is set.
type ServerStats struct {
	PID            int   `json:"pid"`
	RSSBeforeBytes int64 `json:"rssBeforeBytes"`
	RSSAfterBytes  int64 `json:"rssAfterBytes"`
	// RSSPeakBytes is the process's peak RSS over its life (VmHWM).
	RSSPeakBytes    int64 `json:"rssPeakBytes"`
	RSSPerConnBytes int64 `json:"rssPerConnBytes"`
	// RSSConnectedBytes is RSS just after the connect phase, before the
	// measured phase (publish and drain, echo, hold); RSSRunPeakBytes the
	// peak from then to the end of that phase, and RSSGrowthBytes the
	// difference: what the measured phase made the server hold. The peak
	// is the kernel's (VmHWM, reset at the start of the phase through
	// /proc/PID/clear_refs: RSSRunPeakFrom "hwm") or, where that reset is
	// refused, the largest of samples every 100 ms ("samples").
	RSSConnectedBytes int64  `json:"rssConnectedBytes"`
	RSSRunPeakBytes   int64  `json:"rssRunPeakBytes"`
	RSSGrowthBytes    int64  `json:"rssGrowthBytes"`
	RSSRunPeakFrom    string `json:"rssRunPeakFrom"`
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
