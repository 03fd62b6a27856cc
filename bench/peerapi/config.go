package peerapi

import (
	"errors"
	"fmt"
	"regexp"
)

// Defaults applied by Config.SetDefaults when a field is zero.
const (
	// DefaultAddr is the public WebSocket listen address.
	DefaultAddr = ":8080"
	// DefaultAdminAddr is the admin (publish API) listen address.
	DefaultAdminAddr = "127.0.0.1:8081"
	// DefaultMaxMessage is the largest client frame accepted (PROTOCOL.md).
	DefaultMaxMessage = 64 << 10
)

// Config is what every reference peer is configured with. Zero fields
// take the Default* values.
type Config struct {
	// Addr is the public WebSocket listener.
	Addr string
	// AdminAddr is the publish API listener.
	AdminAddr string
	// Key is the socketApiKey for backends and the publish API. Empty
	// refuses every backend and publish request.
	Key string
	// Origins are regular expressions matched unanchored against the
	// Origin header, like JavaScript's String.match.
	Origins []string
	// MaxMessage is the largest accepted client message in bytes.
	MaxMessage int64
}

// SetDefaults fills the zero fields.
func (c *Config) SetDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.AdminAddr == "" {
		c.AdminAddr = DefaultAdminAddr
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
	}
}

// Validate reports configuration errors; it compiles nothing it keeps.
func (c *Config) Validate() error {
	if c.MaxMessage < 0 {
		return errors.New("MaxMessage must not be negative")
	}
	for _, p := range c.Origins {
		if _, err := regexp.Compile(p); err != nil {
			return fmt.Errorf("origin pattern %q: %w", p, err)
		}
	}
	return nil
}
