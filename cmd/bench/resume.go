package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/webinate/broker/bench"
	"github.com/webinate/broker/internal/commalist"
)

// resumeMain is "bench resume": resuming clients spread over the nodes of
// a cluster while they restart (scripts/rolling.sh). It exits 1 if any
// client missed an event silently or got one twice.
func resumeMain(args []string) int {
	fs := flag.NewFlagSet("bench resume", flag.ContinueOnError)
	var cfg bench.ResumeConfig
	addrs := fs.String("addr", "127.0.0.1:8080", "comma-separated public host:port of every node (loopback only); clients reconnect to one chosen at random")
	admins := fs.String("admin", "127.0.0.1:8081", "comma-separated admin host:port the publisher takes round robin, trying the next on a refusal")
	fs.StringVar(&cfg.Key, "key", "change-me", "socketApiKey for the publish API")
	fs.StringVar(&cfg.Origin, "origin", bench.DefaultOrigin, "Origin header sent on every upgrade")
	fs.IntVar(&cfg.Clients, "n", 100, "resuming clients")
	fs.DurationVar(&cfg.Duration, "duration", bench.DefaultDuration, "how long events are published")
	fs.Float64Var(&cfg.Rate, "rate", bench.DefaultResumeRate, "events per second (one request each)")
	fs.DurationVar(&cfg.Drain, "drain", bench.DefaultResumeDrain, "after publishing, the longest wait for every client to have the last event")
	fs.DurationVar(&cfg.Churn, "churn", 0, "each client leaves about this often on its own and resumes up to half of it later (0 = only when its node goes)")
	jsonFile := fs.String("json", "", "write the result as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Addrs = commalist.Split(*addrs)
	cfg.AdminAddrs = commalist.Split(*admins)
	if !*quiet {
		cfg.Progress = func(line string) { fmt.Fprintln(os.Stderr, line) }
	}
	return runBench("bench resume", *jsonFile,
		func(ctx context.Context) (*bench.ResumeResult, error) { return bench.RunResume(ctx, cfg) },
		func(res *bench.ResumeResult) {
			fmt.Printf("resume: %d clients over %d nodes, %d events confirmed (%d refused) in %.1fs\n",
				res.Clients, len(cfg.Addrs), res.Published, res.Refused, res.Seconds)
			fmt.Printf("  connects %d (resumes %d), gap events %d covering %d events, never received %d\n",
				res.Connects, res.Resumes, res.Gaps, res.Excused, res.NeverReceived)
			fmt.Printf("  missing %d (in %d clients), duplicates %d, unconfirmed seen %d\n",
				res.Missing, res.ClientsMissing, res.Duplicates, res.UnconfirmedSeen)
			for _, e := range res.Errors {
				fmt.Println("  error:", e)
			}
		},
		func(res *bench.ResumeResult) bool {
			return res.Missing == 0 && res.Duplicates == 0 && len(res.Errors) == 0
		})
}
