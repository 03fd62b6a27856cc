// Command baseline runs one of the bench's reference servers, the
// comparison points for the broker's load tests: the goroutine-per-
// connection server from bench/baseline (-impl gorilla, the default), or
// the one-write fan-out floor from bench/rawpeer (-impl raw).
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
	"github.com/webinate/broker/bench/peerapi"
	"github.com/webinate/broker/bench/rawpeer"
	"github.com/webinate/broker/internal/commalist"
)

// server is what both implementations offer.
type server interface {
	Start() error
	Shutdown(context.Context) error
	Addr() string
	AdminAddr() string
}

func main() {
	impl := flag.String("impl", "gorilla", "gorilla (bench/baseline: a reader and a writer goroutine per connection) or raw (bench/rawpeer: one write(2) per socket per event)")
	port := flag.Int("port", 8080, "public WebSocket port")
	adminAddr := flag.String("admin-addr", peerapi.DefaultAdminAddr, "admin (publish API) listen address")
	key := flag.String("key", "change-me", "socketApiKey for backends and the publish API")
	origins := flag.String("origins", "localhost", "comma-separated approved Origin regular expressions")
	maxMessage := flag.Int64("max-message", peerapi.DefaultMaxMessage, "largest accepted client frame in bytes")
	flag.Parse()

	pats := commalist.Split(*origins)
	peerapi.RaiseNoFile()
	addr := ":" + strconv.Itoa(*port)
	cfg := peerapi.Config{Addr: addr, AdminAddr: *adminAddr, Key: *key, Origins: pats, MaxMessage: *maxMessage}
	var s server
	var err error
	switch *impl {
	case "gorilla":
		s, err = baseline.New(baseline.Config{Config: cfg})
	case "raw":
		s, err = rawpeer.New(cfg)
	default:
		err = fmt.Errorf("unknown -impl %q (want gorilla or raw)", *impl)
	}
	if err == nil {
		err = s.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "baseline (%s): listening on %s, admin on %s\n", *impl, s.Addr(), s.AdminAddr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	if r, ok := s.(*rawpeer.Server); ok {
		fmt.Fprintf(os.Stderr, "baseline (raw): %d clients dropped for a frame the kernel did not take whole\n", r.Dropped())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "baseline: shutdown:", err)
		os.Exit(1)
	}
}
