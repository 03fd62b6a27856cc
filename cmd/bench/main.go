// Command bench load-tests a Users WebSocket API server (the broker or the
// baseline) on loopback. See bench.Config for what each scenario measures.
//
//	bench -scenario fanout -n 10000 -rate 100 -duration 30s -pid $(pidof broker) -json out.json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/webinate/broker/bench"
)

// connsPerProc is how many connections one client process takes by default:
// well under the 20,000 open-file hard limit, leaving room for the runtime.
const connsPerProc = 15000

func main() {
	bench.WorkerMain() // never returns when re-executed as a worker
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var cfg bench.Config
	scenario := fs.String("scenario", "", "fanout, idle, echo or connect (may also be the first argument)")
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "public WebSocket host:port, or a comma-separated list of nodes that subscribers are spread over round robin (loopback only)")
	fs.StringVar(&cfg.AdminAddr, "admin", "127.0.0.1:8081", "admin host:port for POST /api/events, or a comma-separated list the publishers take round robin (loopback only)")
	fs.StringVar(&cfg.Key, "key", "change-me", "socketApiKey for the publish API")
	fs.StringVar(&cfg.Origin, "origin", bench.DefaultOrigin, "Origin header sent on every upgrade")
	fs.StringVar(&cfg.Path, "path", bench.DefaultPath, "upgrade request path")
	fs.IntVar(&cfg.Conns, "n", 1000, "subscribers (fanout), held connections (idle), clients (echo) or handshakes (connect)")
	fs.IntVar(&cfg.Procs, "procs", 0, fmt.Sprintf("client processes; 0 = one per %d connections", connsPerProc))
	fs.IntVar(&cfg.Sources, "sources", bench.DefaultSources, "loopback source addresses 127.0.0.1..127.0.0.K to spread clients over")
	fs.IntVar(&cfg.DialConcurrency, "dial-concurrency", bench.DefaultDialConcurrency, "handshakes in flight (total)")
	fs.DurationVar(&cfg.DialTimeout, "dial-timeout", bench.DefaultDialTimeout, "timeout of one handshake")
	fs.BoolVar(&cfg.Hold, "hold", true, "connect: keep connections open until the end (false closes each after its handshake)")
	fs.DurationVar(&cfg.Duration, "duration", bench.DefaultDuration, "publish (fanout), hold (idle) or loop (echo) time")
	fs.DurationVar(&cfg.Timeout, "timeout", 0, "hard bound on the whole run; 0 = 2×duration + 2m")
	fs.DurationVar(&cfg.DrainIdle, "drain", bench.DefaultDrainIdle, "fanout: stop waiting for deliveries after this long without one")
	fs.Float64Var(&cfg.Rate, "rate", 0, "fanout: events per second; 0 = as fast as accepted")
	fs.IntVar(&cfg.Batch, "batch", bench.DefaultBatch, "fanout: most events per publish request (api mode)")
	fs.IntVar(&cfg.Size, "size", bench.DefaultSize, "event size in bytes")
	fs.StringVar(&cfg.Mode, "mode", bench.ModeAPI, "fanout publish path: api (POST /api/events) or echo (broadcast echo from one client)")
	fs.IntVar(&cfg.Publishers, "publishers", bench.DefaultPublishers, "fanout: concurrent publishers, each with its own connection; a fixed -rate is split between them")
	fs.DurationVar(&cfg.RetryAfterMax, "retry-after-max", bench.DefaultRetryAfterMax, "fanout: longest pause after a 503 (Retry-After is honoured up to this; negative: retry at once)")
	fs.BoolVar(&cfg.Compression, "compression", false, "subscribers offer permessage-deflate and inflate what arrives compressed (reported: wireBytes vs plainBytes)")
	inflateCache := fs.Bool("inflate-cache", true, "with -compression: the subscribers of one process share a cache of inflated events keyed by the exact compressed bytes, "+
		"so each event is inflated once per process, not once per subscriber (false: each inflates every message itself, as real clients would)")
	fs.BoolVar(&cfg.Mix, "mix", false, "fanout: publish a realistic event mix (100-4000 bytes of protocol-shaped JSON) instead of -size events")
	fs.Float64Var(&cfg.StalledFraction, "stalled", 0, "fanout: fraction (0..1) of subscribers that never read after their handshake")
	fs.DurationVar(&cfg.StalledReadTimeout, "stalled-read", bench.DefaultStalledReadTimeout, "fanout: how long the final read of the stalled sockets looks for the server's close")
	fs.DurationVar(&cfg.StalledReconnect, "stalled-reconnect", 0, "fanout: every D each stalled subscriber resets its connection and dials again, never reading the new one either; "+
		"all in one wave, each at D ± 5 % (0 = never; at least 100ms). The stalled report then counts reconnects (and failed ones) and connections the server had "+
		"closed before their reconnect (closedBeforeReconnect, …1008: the close frame or FIN/RST among what had arrived, read without waiting just before the reset); "+
		"closed1008 etc. are the final read of each socket's last connection; "+
		"-lag-bound counts from each connection's own start (its handshake, or the first publish) and expects a cut only of those that lived that long (boundEligible)")
	fs.DurationVar(&cfg.StalledForgeInterval, "stalled-forge-pongs", 0, "fanout: every D each stalled subscriber, still never reading, sends a masked pong shaped like a credit pong it was never sent "+
		"(the 25-byte shape: 'b', position, cursor, tag; and the older 17-byte one, in turn), positions cycling through the first -stalled-forge-window bytes, a huge cursor, a random tag; "+
		"until the server closes it (0 = never; at least 1ms). The stalled report counts forgedPongs, forgeBlocked (send buffer full: turn skipped) and forgeFailed")
	fs.IntVar(&cfg.StalledForgeWindow, "stalled-forge-window", bench.DefaultStalledForgeWindow, "fanout: span in bytes of the forged pongs' positions (the broker's -write-window)")
	fs.DurationVar(&cfg.LagBound, "lag-bound", 0, "fanout: count stalled subscribers closed within this of the first publish (e.g. the broker's -max-lag plus slack; 0 = don't)")
	fs.DurationVar(&cfg.LateAfter, "late-after", bench.DefaultLateAfter, "fanout: count deliveries still missing this long after publishing stopped")
	fs.StringVar(&cfg.Label, "label", "", "series name for charts (e.g. broker, baseline); copied into the JSON")
	fs.IntVar(&cfg.PID, "pid", 0, "server pid to sample RSS and CPU from /proc (0 = skip)")
	jsonFile := fs.String("json", "", "write the result as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress on stderr and no summary (use with -json)")
	cpuProfile := fs.String("cpuprofile", "", "write the harness's CPU profile here (the in-process worker when -procs 1)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bench [fanout|idle|echo|connect] [flags]\n       bench chart -out DIR result.json...\n       bench resume -addr A,B,C -admin A,B,C [flags] (resuming clients across restarting nodes; -h for its flags)\n"+
			"       bench presence -addr A,B,C -admin A,B,C -jwt-secret-file F [flags] (GET /api/online over many identified connections; -h for its flags)\n")
		fs.PrintDefaults()
	}
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "chart" {
		return chartMain(args[1:])
	}
	if len(args) > 0 && args[0] == "resume" {
		return resumeMain(args[1:])
	}
	if len(args) > 0 && args[0] == "presence" {
		return presenceMain(args[1:])
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		*scenario, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Scenario = *scenario
	cfg.NoInflateCache = !*inflateCache
	if cfg.Procs == 0 {
		cfg.Procs = (cfg.Conns + connsPerProc - 1) / connsPerProc
	}
	tty := isTerminal(os.Stderr)
	if !*quiet {
		cfg.Progress = progressPrinter(tty)
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	return runBench("bench", *jsonFile,
		func(ctx context.Context) (*bench.Result, error) {
			res, err := bench.Run(ctx, cfg)
			if cfg.Progress != nil && tty {
				fmt.Fprint(os.Stderr, "\r\033[K")
			}
			return res, err
		},
		func(res *bench.Result) {
			if !*quiet {
				printSummary(res)
			}
		},
		func(*bench.Result) bool { return true })
}

// runBench runs one bench command (name, for its error line) until it
// ends or Ctrl-C or SIGTERM cancels it, writes its result as JSON to
// jsonFile (if set) and prints it. The exit status is 2 without a result
// (a bad configuration), 1 when the run failed or its result is not ok,
// and 0 otherwise.
func runBench[R any](name, jsonFile string, run func(context.Context) (*R, error), print func(*R), ok func(*R) bool) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx)
	if res == nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if jsonFile != "" {
		if werr := writeJSON(jsonFile, res); werr != nil {
			fmt.Fprintln(os.Stderr, werr)
			return 1
		}
	}
	print(res)
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	if !ok(res) {
		return 1
	}
	return 0
}

// progressPrinter rewrites one status line on a terminal; elsewhere (a
// log file, a script) it prints a line when the phase changes and every
// 5 s, so long runs show they are alive without flooding the log.
func progressPrinter(tty bool) func(string) {
	if tty {
		return func(line string) { fmt.Fprintf(os.Stderr, "\r\033[K%s", line) }
	}
	var lastPhase string
	var n int
	return func(line string) {
		f := strings.Fields(line)
		phase := ""
		if len(f) > 1 {
			phase = f[1]
		}
		n++
		if phase != lastPhase || n%10 == 0 {
			lastPhase = phase
			fmt.Fprintln(os.Stderr, line)
		}
	}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func writeJSON(path string, res any) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func printSummary(r *bench.Result) {
	c := r.Connect
	fmt.Printf("%s against %s: %d/%d connected, %d failed in %.2fs (%.0f handshakes/s), %d disconnected\n",
		r.Scenario, r.Target.Addr, c.Connected, c.Attempted, c.Failed, c.Seconds, c.PerSec, c.Disconnected)
	if len(c.Errors) > 0 {
		keys := make([]string, 0, len(c.Errors))
		for k := range c.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Printf("  connect error %-30s x%d\n", k, c.Errors[k])
		}
	}
	switch r.Scenario {
	case bench.ScenarioFanout:
		f := r.Fanout
		fmt.Printf("published %d events (%d failed, %d refused with 503 in %d requests) by %d publishers in %.2fs = %.1f/s to %d subscribers (%d reading, %d stalled)\n",
			f.Published, f.PublishFailed, f.Refused, f.RefusedRequests, f.Publishers, f.PublishSeconds, f.PublishRate,
			f.Subscribers, f.Readers, f.StalledSubscribers)
		pl := f.PublishLatency
		fmt.Printf("publish request ms: p50 %.3f  p99 %.3f  p99.9 %.3f  (n=%d); slowest publish %.1f ms\n",
			pl.P50Ms, pl.P99Ms, pl.P999Ms, f.PublishRequests, pl.MaxMs)
		fmt.Printf("deliveries to readers %d/%d expected, lost %d (%.3f%%), out of order %d, unparsed %d, %.0f deliveries/s\n",
			f.Received, f.Expected, f.Lost, f.LossPct, f.OutOfOrder, f.Unparsed, f.DeliveriesPerSec)
		u := f.UndeliveredAfter
		fmt.Printf("not yet received %.1fs after publishing stopped: %d (%.4f%%); %.2f%% of deliveries arrived after the stop\n",
			u.Seconds, u.Count, 100*u.Fraction, f.ReceivedAfterStopPct)
		if st := f.Stalled; st.Count > 0 {
			fmt.Printf("stalled: %d, closed %d (1008: %d, other code: %d, reset %d, EOF %d), open %d; closed during run %d, at %.2fs p50 / %.2fs max after their start (first publish or later handshake)",
				st.Count, st.Closed, st.Closed1008, st.ClosedOther, st.Reset, st.EOF, st.Open, st.ClosedDuringRun, st.CloseSecondsP50, st.CloseSecondsMax)
			if st.LagBoundSeconds > 0 {
				fmt.Printf(", %d of %d eligible within %.1fs", st.ClosedWithinBound, st.BoundEligible, st.LagBoundSeconds)
			}
			fmt.Println()
			if st.ForgeIntervalSeconds > 0 {
				fmt.Printf("stalled forging credit pongs every %gs: %d sent, %d turns skipped (send buffer full), %d connections left after a failed write\n",
					st.ForgeIntervalSeconds, st.ForgedPongs, st.ForgeBlocked, st.ForgeFailed)
			}
			if st.ReconnectSeconds > 0 {
				fmt.Printf("stalled reconnecting every %gs: %d reconnects (%d failed%s), %d connections, %d closed by the server before their reconnect (1008: %d), %d without a connection at the end\n",
					st.ReconnectSeconds, st.Reconnects, st.ReconnectFailed, errSummary(st.ReconnectErrors), st.Connections, st.ClosedBeforeReconnect, st.ClosedBeforeReconnect1008, st.Unconnected)
			}
		}
		if r.Params.Compression {
			cache := "off"
			if r.Params.InflateCache {
				cache = fmt.Sprintf("%d hits", f.InflateCacheHits)
			}
			fmt.Printf("compression: %d readers negotiated it; %d wire bytes for %d plain (%.3f); %d messages inflated, inflate cache %s\n",
				f.CompressedReaders, f.WireBytes, f.PlainBytes, float64(f.WireBytes)/float64(max(f.PlainBytes, 1)), f.Inflations, cache)
		}
		if f.ServerCPUMicrosPerDelivery > 0 {
			fmt.Printf("server CPU per delivery: %.3f µs\n", f.ServerCPUMicrosPerDelivery)
		}
		printLatency("publish→receive", r.Latency)
		if len(r.Nodes) > 1 {
			for _, n := range r.Nodes {
				fmt.Printf("  node %s: %d connected (%d stalled, %d closed), %d failed; received %d/%d, lost %d, late %d, p50 %.3f p99 %.3f ms\n",
					n.Addr, n.Connected, n.Stalled, n.StalledClosed, n.Failed, n.Received, n.Expected, n.Lost, n.UndeliveredAfter, n.Latency.P50Ms, n.Latency.P99Ms)
			}
		}
	case bench.ScenarioEcho:
		e := r.Echo
		fmt.Printf("echo: %d clients, %d round trips in %.2fs = %.0f/s\n", e.Clients, e.RoundTrips, e.Seconds, e.RoundTripsSec)
		if e.ServerCPUMicrosPerRoundTrip > 0 {
			fmt.Printf("server CPU per round trip: %.3f µs\n", e.ServerCPUMicrosPerRoundTrip)
		}
		printLatency("round trip", r.Latency)
	case bench.ScenarioIdle:
		fmt.Printf("idle: held %d, dropped %d over %.1fs\n", r.Idle.Held, r.Idle.Dropped, r.Idle.HoldSeconds)
	}
	if len(r.Nodes) > 1 && r.Scenario != bench.ScenarioFanout {
		for _, n := range r.Nodes {
			fmt.Printf("  node %s: %d connected, %d failed\n", n.Addr, n.Connected, n.Failed)
		}
	}
	if s := r.Server; s.PID != 0 {
		fmt.Printf("server pid %d: RSS %.1f → %.1f MiB (peak %.1f), %d B/conn, CPU %.2fs (%.2f cores), %d threads %s\n",
			s.PID, mib(s.RSSBeforeBytes), mib(s.RSSAfterBytes), mib(s.RSSPeakBytes), s.RSSPerConnBytes, s.CPUSeconds, s.CPUCores, s.Threads, s.Error)
		fmt.Printf("server RSS after connecting %.2f MiB, peak after that %.2f MiB (%s): growth %.2f MiB\n",
			mib(s.RSSConnectedBytes), mib(s.RSSRunPeakBytes), s.RSSRunPeakFrom, mib(s.RSSGrowthBytes))
	}
	h := r.Harness
	fmt.Printf("harness: %d procs, CPU %.2fs user + %.2fs sys (%.2f cores) over %.1fs\n",
		h.Procs, h.CPUUserSeconds, h.CPUSysSeconds, h.CPUCores, r.WallSeconds)
	for _, e := range r.Errors {
		fmt.Printf("error: %s\n", e)
	}
}

// errSummary lists counts by kind, ": kind xN, …", or nothing.
func errSummary(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s x%d", k, m[k])
	}
	return b.String()
}

func printLatency(name string, l bench.Latency) {
	fmt.Printf("%s ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (n=%d)\n",
		name, l.P50Ms, l.P90Ms, l.P99Ms, l.P999Ms, l.MaxMs, l.Count)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
