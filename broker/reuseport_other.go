//go:build !unix

package broker

import (
	"errors"
	"syscall"
)

// reusePortControl: SO_REUSEPORT is a Unix socket option.
func reusePortControl(_, _ string, _ syscall.RawConn) error {
	return errors.New("SO_REUSEPORT is not supported on this platform")
}
