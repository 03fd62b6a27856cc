package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/webinate/broker/bench"
	"github.com/webinate/broker/internal/commalist"
)

// presenceMain is "bench presence": GET /api/online's answers and cost
// with many identified connections held over the nodes
// (scripts/presence.sh). It exits 1 unless every connection was made and
// counted and every call answered right.
func presenceMain(args []string) int {
	fs := flag.NewFlagSet("bench presence", flag.ContinueOnError)
	var cfg bench.PresenceConfig
	addrs := fs.String("addr", "127.0.0.1:8080", "comma-separated public host:port of every node (loopback only); connections go round robin")
	admins := fs.String("admin", "127.0.0.1:8081", "comma-separated admin host:port of every node asked (loopback only)")
	fs.StringVar(&cfg.Key, "key", "change-me", "socketApiKey for the admin API")
	fs.StringVar(&cfg.Origin, "origin", bench.DefaultOrigin, "Origin header sent on every upgrade")
	fs.StringVar(&cfg.Path, "path", bench.DefaultPath, "upgrade request path (the token is added as ?token=)")
	secret := fs.String("jwt-secret", "", "HS256 secret the brokers verify tokens with (visible in the process list: prefer -jwt-secret-file)")
	secretFile := fs.String("jwt-secret-file", "", "file holding the HS256 secret (trailing newline dropped)")
	fs.IntVar(&cfg.Conns, "n", bench.DefaultPresenceConns, "connections held, each with a JWT")
	fs.IntVar(&cfg.Users, "users", bench.DefaultPresenceUsers, "distinct usernames (sub) among them, round robin")
	fs.IntVar(&cfg.Calls, "calls", bench.DefaultPresenceCalls, "calls of GET /api/online, and of ?username=, on each node")
	fs.IntVar(&cfg.Sources, "sources", bench.DefaultSources, "loopback source addresses 127.0.0.1..127.0.0.K to spread connections over")
	fs.IntVar(&cfg.DialConcurrency, "dial-concurrency", bench.DefaultDialConcurrency, "handshakes in flight")
	fs.DurationVar(&cfg.DialTimeout, "dial-timeout", bench.DefaultDialTimeout, "timeout of one handshake")
	fs.DurationVar(&cfg.Settle, "settle", bench.DefaultPresenceSettle, "longest wait, after connecting, for every node to count every connection")
	fs.DurationVar(&cfg.Idle, "idle", bench.DefaultPresenceIdle, "window measuring the servers' idle CPU with the connections open (negative: none)")
	fs.DurationVar(&cfg.Timeout, "timeout", bench.DefaultPresenceTimeout, "hard bound on the whole run")
	pids := fs.String("pids", "", "server processes whose CPU is read from /proc during the calls: NAME=PID or PID, comma-separated (e.g. A=123,B=124,C=125,natsd=122)")
	jsonFile := fs.String("json", "", "write the result as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Addrs = commalist.Split(*addrs)
	cfg.AdminAddrs = commalist.Split(*admins)
	switch {
	case *secret != "" && *secretFile != "":
		fmt.Fprintln(os.Stderr, "bench presence: -jwt-secret and -jwt-secret-file: give one")
		return 2
	case *secretFile != "":
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench presence: -jwt-secret-file:", err)
			return 2
		}
		cfg.Secret = []byte(strings.TrimRight(string(b), "\r\n"))
	default:
		cfg.Secret = []byte(*secret)
	}
	var err error
	if cfg.PIDs, err = bench.ParseNamedPIDs(*pids); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if !*quiet {
		cfg.Progress = func(line string) { fmt.Fprintln(os.Stderr, line) }
	}
	return runBench("bench presence", *jsonFile,
		func(ctx context.Context) (*bench.PresenceResult, error) { return bench.RunPresence(ctx, cfg) },
		printPresence, (*bench.PresenceResult).OK)
}

func printPresence(r *bench.PresenceResult) {
	fmt.Printf("presence: %d/%d connections of %d users over %d nodes in %.1fs (%d failed%s), %d closed by the servers; "+
		"settled %v after %.1fs\n", r.Connected, r.Conns, r.Users, len(r.Nodes), r.ConnectSeconds, r.Failed,
		errSummary(toInt64(r.ConnectErrors)), r.Disconnected, r.Settled, r.SettleSeconds)
	for _, ph := range r.Phases {
		l := ph.Latency
		fmt.Printf("  %-8s %d calls in %.2fs: wrong %d (partial %d), failed %d; ms per call p50 %.3f  p99 %.3f  max %.3f\n",
			ph.Kind, ph.Calls, ph.Seconds, ph.Wrong, ph.Partial, ph.Failed, l.P50Ms, l.P99Ms, l.MaxMs)
		for _, n := range ph.Nodes {
			fmt.Printf("    node %s: %d calls, wrong %d, failed %d; p50 %.3f  p99 %.3f  max %.3f ms\n",
				n.Admin, n.Calls, n.Wrong, n.Failed, n.Latency.P50Ms, n.Latency.P99Ms, n.Latency.MaxMs)
		}
		for _, c := range ph.CPU {
			fmt.Printf("    %s (pid %d): CPU %.2fs during the calls (10 ms ticks), %.2fs of it at the idle rate: %.3f ms per call beyond idle\n",
				c.Name, c.PID, c.Seconds, c.IdleSeconds, c.PerCallMs)
		}
	}
	for _, p := range r.Procs {
		fmt.Printf("  %s (pid %d): idle CPU %.2fs over %.1fs, RSS %.1f MiB %s\n", p.Name, p.PID, p.IdleCPUSeconds, r.IdleSeconds, mib(p.RSSBytes), p.Error)
	}
	for _, e := range r.Errors {
		fmt.Println("  error:", e)
	}
	verdict := "met"
	if !r.OK() {
		verdict = "NOT met"
	}
	fmt.Printf("every connection counted and every answer right: %s\n", verdict)
}

func toInt64(m map[string]int) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = int64(v)
	}
	return out
}
