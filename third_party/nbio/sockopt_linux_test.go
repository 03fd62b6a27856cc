//go:build linux

// broker patch: test for the closed check in the Set* socket options (see
// PATCHES.md).

package nbio

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// TestSockoptAfterCloseLeavesReusedFd closes a Conn, lets a new socket take
// its descriptor, and checks that SetWriteBuffer on the closed Conn fails
// with net.ErrClosed instead of changing the new socket's SO_SNDBUF.
func TestSockoptAfterCloseLeavesReusedFd(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := NBConn(nc)
	if err != nil {
		t.Fatal(err)
	}
	fd := c.fd
	_ = c.Close()

	// A new socket at the closed Conn's fd number, as accept would give it.
	s, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(s)
	if err := syscall.Dup3(s, fd, syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	other := fd
	defer syscall.Close(other)
	before, err := syscall.GetsockoptInt(other, syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	if err != nil {
		t.Fatal(err)
	}

	if err := c.SetWriteBuffer(before * 4); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetWriteBuffer on a closed Conn: %v, want net.ErrClosed", err)
	}
	if err := c.SetLinger(1, 0); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetLinger on a closed Conn: %v, want net.ErrClosed", err)
	}
	after, err := syscall.GetsockoptInt(other, syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("the socket that reused fd %d had its SO_SNDBUF changed: %d -> %d", fd, before, after)
	}
}
