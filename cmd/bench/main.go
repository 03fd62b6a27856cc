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
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "public WebSocket host:port (loopback only)")
	fs.StringVar(&cfg.AdminAddr, "admin", "127.0.0.1:8081", "admin host:port for POST /api/events (loopback only)")
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
	fs.IntVar(&cfg.PID, "pid", 0, "server pid to sample RSS and CPU from /proc (0 = skip)")
	jsonFile := fs.String("json", "", "write the result as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress line and no summary (use with -json)")
	cpuProfile := fs.String("cpuprofile", "", "write the harness's CPU profile here (the in-process worker when -procs 1)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bench [fanout|idle|echo|connect] [flags]\n")
		fs.PrintDefaults()
	}
	args := os.Args[1:]
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		*scenario, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Scenario = *scenario
	if cfg.Procs == 0 {
		cfg.Procs = (cfg.Conns + connsPerProc - 1) / connsPerProc
	}
	if !*quiet && isTerminal(os.Stderr) {
		cfg.Progress = func(line string) { fmt.Fprintf(os.Stderr, "\r\033[K%s", line) }
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, cfg)
	if cfg.Progress != nil {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
	if res == nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if *jsonFile != "" {
		if werr := writeJSON(*jsonFile, res); werr != nil {
			fmt.Fprintln(os.Stderr, werr)
			return 1
		}
	}
	if !*quiet {
		printSummary(res)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func writeJSON(path string, res *bench.Result) error {
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
		fmt.Printf("published %d events (%d failed) in %.2fs = %.1f/s to %d subscribers\n",
			f.Published, f.PublishFailed, f.PublishSeconds, f.PublishRate, f.Subscribers)
		fmt.Printf("deliveries %d/%d expected, lost %d (%.3f%%), out of order %d, unparsed %d, %.0f deliveries/s\n",
			f.Received, f.Expected, f.Lost, f.LossPct, f.OutOfOrder, f.Unparsed, f.DeliveriesPerSec)
		printLatency("publish→receive", r.Latency)
	case bench.ScenarioEcho:
		e := r.Echo
		fmt.Printf("echo: %d clients, %d round trips in %.2fs = %.0f/s\n", e.Clients, e.RoundTrips, e.Seconds, e.RoundTripsSec)
		printLatency("round trip", r.Latency)
	case bench.ScenarioIdle:
		fmt.Printf("idle: held %d, dropped %d over %.1fs\n", r.Idle.Held, r.Idle.Dropped, r.Idle.HoldSeconds)
	}
	if s := r.Server; s.PID != 0 {
		fmt.Printf("server pid %d: RSS %.1f → %.1f MiB (peak %.1f), %d B/conn, CPU %.2fs (%.2f cores), %d threads %s\n",
			s.PID, mib(s.RSSBeforeBytes), mib(s.RSSAfterBytes), mib(s.RSSPeakBytes), s.RSSPerConnBytes, s.CPUSeconds, s.CPUCores, s.Threads, s.Error)
	}
	h := r.Harness
	fmt.Printf("harness: %d procs, CPU %.2fs user + %.2fs sys (%.2f cores) over %.1fs\n",
		h.Procs, h.CPUUserSeconds, h.CPUSysSeconds, h.CPUCores, r.WallSeconds)
	for _, e := range r.Errors {
		fmt.Printf("error: %s\n", e)
	}
}

func printLatency(name string, l bench.Latency) {
	fmt.Printf("%s ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (n=%d)\n",
		name, l.P50Ms, l.P90Ms, l.P99Ms, l.P999Ms, l.MaxMs, l.Count)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
