//go:build !unix

package broker

import (
	"net"

	"github.com/lesismal/nbio/nbhttp"
)

// addConn hands an accepted socket to the reactor. Outside Unix, handles
// are not inherited by child processes unless asked for, so there is no
// close-on-exec fix-up to make (see addconn_unix.go).
func (s *Server) addConn(c net.Conn) {
	hc := &nbhttp.Conn{Conn: c}
	s.engine.AddConnNonTLSNonBlocking(hc, nil, func() {})
	if s.tlsConf != nil {
		s.wrapTLS(hc) // tls.go
	}
}
