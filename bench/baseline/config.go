package baseline

import (
	"errors"
	"fmt"
	"time"

	"github.com/webinate/broker/bench/peerapi"
)

// Defaults applied by Config.setDefaults when a field is zero (and
// peerapi's for the fields every peer has).
const (
	// DefaultSendBuffer is the per-connection outbound channel capacity.
	DefaultSendBuffer = 1024
	// DefaultWriteTimeout bounds one WriteMessage to a client.
	DefaultWriteTimeout = 10 * time.Second
)

// Config configures a baseline Server. Zero fields take the Default* values.
type Config struct {
	// Config is what every peer has: addresses, key, origins, the largest
	// client frame (over it gorilla closes with 1009).
	peerapi.Config
	// SendBuffer is the outbound queue length per connection; zero means
	// DefaultSendBuffer. A full queue closes the connection (slow consumer).
	SendBuffer int
	// WriteTimeout bounds each frame write; zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
}

func (c *Config) setDefaults() {
	c.Config.SetDefaults()
	if c.SendBuffer == 0 {
		c.SendBuffer = DefaultSendBuffer
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
}

// Validate reports configuration errors; it compiles nothing it keeps.
func (c *Config) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if c.SendBuffer < 0 {
		return errors.New("baseline: SendBuffer must not be negative")
	}
	return nil
}
