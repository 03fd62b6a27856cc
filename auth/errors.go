package auth

import "errors"

var (
	// ErrMissingToken is returned by Identify when Config.Required is set and
	// the request carries no token in any of the places it looks.
	ErrMissingToken = errors.New("auth: missing token")

	// ErrInvalidToken wraps every reason a present token is refused: bad
	// signature, malformed, wrong algorithm, expired, not yet valid, or a
	// missing or unusable username claim. The wrapped jwt error (for example
	// jwt.ErrTokenExpired) stays reachable through errors.Is.
	ErrInvalidToken = errors.New("auth: invalid token")

	// ErrInvalidConfig wraps every reason New or Config.Validate refuses a
	// Config, such as two key sources or a PEM that does not hold a usable
	// public key.
	ErrInvalidConfig = errors.New("auth: invalid config")

	// ErrDisabled is returned by Verify on a Verifier built from a Config
	// with no key source: there is nothing to check a signature against, and
	// answering "valid" would let a tool believe a forged token is good.
	ErrDisabled = errors.New("auth: authentication disabled")
)
