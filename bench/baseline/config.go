package baseline

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Defaults applied by Config.setDefaults when a field is zero.
const (
	// DefaultAddr is the public WebSocket listen address.
	DefaultAddr = ":8080"
	// DefaultAdminAddr is the admin (publish API) listen address.
	DefaultAdminAddr = "127.0.0.1:8081"
	// DefaultMaxMessage is the largest client frame accepted (PROTOCOL.md).
	DefaultMaxMessage = 64 << 10
	// DefaultSendBuffer is the per-connection outbound channel capacity.
	DefaultSendBuffer = 1024
	// DefaultWriteTimeout bounds one WriteMessage to a client.
	DefaultWriteTimeout = 10 * time.Second
)

// Config configures a baseline Server. Zero fields take the Default* values.
type Config struct {
	// Addr is the public WebSocket listener; zero means DefaultAddr.
	Addr string
	// AdminAddr is the publish API listener; zero means DefaultAdminAddr.
	AdminAddr string
	// Key is the socketApiKey for backends and the publish API. Empty
	// refuses every backend and publish request.
	Key string
	// Origins are regular expressions matched unanchored against the
	// Origin header, like JavaScript's String.match.
	Origins []string
	// MaxMessage is the largest accepted client frame in bytes; zero means
	// DefaultMaxMessage.
	MaxMessage int64
	// SendBuffer is the outbound queue length per connection; zero means
	// DefaultSendBuffer. A full queue closes the connection (slow consumer).
	SendBuffer int
	// WriteTimeout bounds each frame write; zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.AdminAddr == "" {
		c.AdminAddr = DefaultAdminAddr
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.SendBuffer == 0 {
		c.SendBuffer = DefaultSendBuffer
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
}

// Validate reports configuration errors; it compiles nothing it keeps.
func (c *Config) Validate() error {
	if c.MaxMessage < 0 {
		return errors.New("baseline: MaxMessage must not be negative")
	}
	if c.SendBuffer < 0 {
		return errors.New("baseline: SendBuffer must not be negative")
	}
	for _, p := range c.Origins {
		if _, err := regexp.Compile(p); err != nil {
			return fmt.Errorf("baseline: origin pattern %q: %w", p, err)
		}
	}
	return nil
}
