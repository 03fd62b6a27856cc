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
	s.engine.AddConnNonTLSNonBlocking(&nbhttp.Conn{Conn: c}, nil, func() {})
}
