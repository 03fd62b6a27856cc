// Command baseline runs the reference goroutine-per-connection server from
// bench/baseline, the comparison point for the broker's load tests.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/webinate/broker/bench/baseline"
	"github.com/webinate/broker/internal/commalist"
)

func main() {
	port := flag.Int("port", 8080, "public WebSocket port")
	adminAddr := flag.String("admin-addr", baseline.DefaultAdminAddr, "admin (publish API) listen address")
	key := flag.String("key", "change-me", "socketApiKey for backends and the publish API")
	origins := flag.String("origins", "localhost", "comma-separated approved Origin regular expressions")
	maxMessage := flag.Int64("max-message", baseline.DefaultMaxMessage, "largest accepted client frame in bytes")
	flag.Parse()

	pats := commalist.Split(*origins)
	raiseNoFile()
	s, err := baseline.New(baseline.Config{
		Addr: ":" + strconv.Itoa(*port), AdminAddr: *adminAddr, Key: *key,
		Origins: pats, MaxMessage: *maxMessage,
	})
	if err == nil {
		err = s.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "baseline: listening on %s, admin on %s\n", s.Addr(), s.AdminAddr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "baseline: shutdown:", err)
		os.Exit(1)
	}
}

// raiseNoFile lifts the soft open-file limit to the hard limit so the
// baseline can hold as many connections as the machine allows.
func raiseNoFile() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
