//go:build unix

package broker

import (
	"net"
	"syscall"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
)

// addConn hands an accepted socket to the reactor.
//
// nbio takes the socket over by dup(2), which clears close-on-exec, so
// without the fix-up below every client socket leaks into any process that
// this process starts (os/exec). Worse than the leak: a child that holds a
// copy keeps the socket's epoll registration alive after the broker closes
// its fd, and the stale registration's events, tagged with the fd number,
// land on whichever new connection reuses that number, which nbio then
// closes. Holding syscall.ForkLock for reading from the dup to the fix-up is
// how the standard library closes the same window: os/exec forks under the
// write lock.
func (s *Server) addConn(c net.Conn) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	hc := &nbhttp.Conn{Conn: c}
	s.engine.AddConnNonTLSNonBlocking(hc, nil, func() {})
	if nc, ok := hc.Conn.(*nbio.Conn); ok {
		if rc, err := nc.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { syscall.CloseOnExec(int(fd)) })
		}
	}
	if s.tlsConf != nil {
		s.wrapTLS(hc) // tls.go
	}
}
