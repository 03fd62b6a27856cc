package bench

import "time"

// Result is one scenario's report. Every section is always present in the
// JSON (zero when the scenario does not fill it) so scripts can rely on the
// shape.
type Result struct {
	Scenario    string       `json:"scenario"`
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
	// Errors lists run-level problems (publish failures, timeouts); never nil.
	Errors []string `json:"errors"`
}

// Target is where the run pointed.
type Target struct {
	Addr      string `json:"addr"`
	AdminAddr string `json:"adminAddr"`
	Path      string `json:"path"`
	Origin    string `json:"origin"`
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

// FanoutStats covers publishing and delivery.
type FanoutStats struct {
	Subscribers    int     `json:"subscribers"`
	Published      int64   `json:"published"`
	PublishFailed  int64   `json:"publishFailed"`
	PublishSeconds float64 `json:"publishSeconds"`
	PublishRate    float64 `json:"publishRate"`
	Expected       int64   `json:"expected"`
	Received       int64   `json:"received"`
	Lost           int64   `json:"lost"`
	LossPct        float64 `json:"lossPct"`
	OutOfOrder     int64   `json:"outOfOrder"`
	// Unparsed is frames without seq/ts (e.g. error events).
	Unparsed int64 `json:"unparsed"`
	// DeliveriesPerSec is received over the span from first publish to last
	// delivery.
	DeliveriesPerSec float64 `json:"deliveriesPerSec"`
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
