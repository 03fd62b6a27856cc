package broker

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Zero-downtime restart with SO_REUSEPORT (Config.ReusePort): a new broker
// process binds the same addresses while the old one still runs, the
// kernel spreads new connections over both, and the old one, on SIGTERM,
// hands over (handOver) and drains. Its clients get 1001 and reconnect to
// the new process.
//
// Connections that the kernel had queued on the old process's listener
// when it closes are moved to the new one only with the Linux sysctl
// net.ipv4.tcp_migrate_req=1 (Linux 5.14+; scripts/tune-linux.sh sets it);
// without it they are reset and the client has to retry.

// handOverGrace is how long a process handing over keeps serving upgrade
// requests on connections it accepted before closing its listener, so that
// a client caught in the swap gets a 101 (and later 1001) instead of 503.
// Handshakes from live clients take well under a millisecond on a LAN.
const handOverGrace = 500 * time.Millisecond

// listen opens a TCP listener on addr, with SO_REUSEPORT when configured.
func (s *Server) listen(addr string) (net.Listener, error) {
	if !s.cfg.ReusePort {
		return net.Listen("tcp", addr)
	}
	lc := net.ListenConfig{Control: reusePortControl}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("with SO_REUSEPORT: %w", err)
	}
	return ln, nil
}

// handOver is the first step of Shutdown with ReusePort: stop accepting on
// both listeners, so the kernel sends every new connection to the other
// process, then let the handshakes already accepted here finish before
// Shutdown sets draining (which would answer them 503).
func (s *Server) handOver(ctx context.Context) {
	s.log.Info().Dur("grace", handOverGrace).Msg("shutting down: closing listeners for the next process")
	start := time.Now()
	_ = s.ln.Close()
	if s.admin != nil {
		// Closes the admin listener and waits for requests in flight; the
		// call in Shutdown then has nothing left to do.
		_ = s.admin.Shutdown(ctx)
	}
	select {
	case <-time.After(handOverGrace - time.Since(start)):
	case <-ctx.Done():
	}
}
