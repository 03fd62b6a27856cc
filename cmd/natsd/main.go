// Command natsd runs an embedded nats-server with JetStream, for running a
// broker cluster locally where no nats-server binary is installed:
//
//	natsd -addr 127.0.0.1:4222 -store /tmp/natsd
//
// It is a convenience for development and load tests (scripts/cluster-bench.sh),
// not a production NATS deployment: use the real nats-server there.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	fs := flag.NewFlagSet("natsd", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:4222", "client listen address host:port")
	store := fs.String("store", "", "JetStream store directory (default: a new temporary directory)")
	mem := fs.Int64("max-mem", 1<<30, "JetStream memory limit, bytes")
	file := fs.Int64("max-file", 8<<30, "JetStream file storage limit, bytes")
	verbose := fs.Bool("v", false, "log the server's notices")
	_ = fs.Parse(os.Args[1:])

	host, p, err := net.SplitHostPort(*addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "natsd: -addr %q: %v\n", *addr, err)
		os.Exit(2)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		fmt.Fprintf(os.Stderr, "natsd: -addr %q: bad port\n", *addr)
		os.Exit(2)
	}
	dir := *store
	if dir == "" {
		if dir, err = os.MkdirTemp("", "natsd-"); err != nil {
			fmt.Fprintf(os.Stderr, "natsd: %v\n", err)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
	}
	ns, err := server.NewServer(&server.Options{
		Host: host, Port: port, NoSigs: true,
		JetStream: true, StoreDir: dir, JetStreamMaxMemory: *mem, JetStreamMaxStore: *file,
		MaxPayload: 8 << 20,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "natsd: %v\n", err)
		os.Exit(1)
	}
	if *verbose {
		ns.ConfigureLogger()
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "natsd: not ready after 10s")
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "natsd: listening on %s, JetStream store %s\n", ns.ClientURL(), dir)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	ns.Shutdown()
	ns.WaitForShutdown()
}
