package auth

import (
	"fmt"
	"time"
)

// DefaultLeeway is the clock skew allowed on exp, nbf and iat when
// Config.Leeway is zero.
const DefaultLeeway = 30 * time.Second

// DefaultUsernameClaim is the claim read for the username when
// Config.UsernameClaim is empty.
const DefaultUsernameClaim = "sub"

// DefaultCookie is the cookie read for the token when Config.Cookie is empty.
const DefaultCookie = "token"

// queryParam is the URL query parameter Identify reads the token from. It
// is fixed, not configurable, because clients hard-code it.
const queryParam = "token"

// Config selects how tokens are verified. Set exactly one key source
// (HS256Secret or PublicKeyPEM), or none to disable authentication.
type Config struct {
	// HS256Secret is the shared secret for HS256 tokens. Empty means no
	// shared secret.
	HS256Secret string
	// PublicKeyPEM is a PEM-encoded public key ("PUBLIC KEY", "RSA PUBLIC
	// KEY" or a "CERTIFICATE"). The key type fixes the algorithm: RSA means
	// RS256 only and ECDSA P-256 means ES256 only. Empty means no public key.
	PublicKeyPEM string
	// UsernameClaim names the claim holding the username; empty means
	// DefaultUsernameClaim.
	UsernameClaim string
	// Cookie names the cookie the token may be read from; empty means
	// DefaultCookie.
	Cookie string
	// Leeway is the clock skew allowed on exp, nbf and iat; zero means
	// DefaultLeeway. Negative is an error.
	Leeway time.Duration
	// Required makes a request without a token fail with ErrMissingToken.
	// When false such a request is anonymous (username ""). A token that is
	// present but invalid is an error either way.
	Required bool
	// RequireExp refuses tokens without an exp claim: a connection's
	// identity then always ends (see Identity.Expires).
	RequireExp bool
	// Audience, when set, must be one of the token's aud values.
	Audience string
	// Issuer, when set, must equal the token's iss.
	Issuer string
}

// Enabled reports whether c names a key source, that is whether tokens are
// verified at all. It says nothing about whether the key is usable; New and
// Validate check that.
func (c Config) Enabled() bool {
	return c.HS256Secret != "" || c.PublicKeyPEM != ""
}

// Validate checks the fields against each other without parsing the key, so
// a -check run can report it quickly; New calls it and then parses the key.
// Errors wrap ErrInvalidConfig.
func (c Config) Validate() error {
	if c.HS256Secret != "" && c.PublicKeyPEM != "" {
		return fmt.Errorf("%w: both HS256Secret and PublicKeyPEM are set; choose one key source", ErrInvalidConfig)
	}
	if c.Leeway < 0 {
		return fmt.Errorf("%w: Leeway %v is negative", ErrInvalidConfig, c.Leeway)
	}
	return nil
}

// withDefaults returns c with every zero field that has a default filled in.
func (c Config) withDefaults() Config {
	if c.UsernameClaim == "" {
		c.UsernameClaim = DefaultUsernameClaim
	}
	if c.Cookie == "" {
		c.Cookie = DefaultCookie
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	return c
}
