package auth

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verifier checks tokens against one key with one algorithm. Build it with
// New; it is immutable and safe for concurrent use.
type Verifier struct {
	cfg    Config // with defaults applied
	key    any    // []byte for HS256, *rsa.PublicKey or *ecdsa.PublicKey; nil when disabled
	alg    string // the only algorithm accepted; "" when disabled
	parser *jwt.Parser
}

// New validates cfg, parses its key and returns a Verifier. A Config with no
// key source is not an error: the Verifier treats every request as
// anonymous. Errors wrap ErrInvalidConfig.
func New(cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Verifier{cfg: cfg.withDefaults()}
	switch {
	case cfg.HS256Secret != "":
		v.key, v.alg = []byte(cfg.HS256Secret), "HS256"
	case cfg.PublicKeyPEM != "":
		var err error
		if v.key, v.alg, err = parsePublicKey(cfg.PublicKeyPEM); err != nil {
			return nil, err
		}
	default:
		return v, nil
	}
	// jwt.Parser only reads its options after construction, so one shared
	// parser is safe for concurrent Parse calls. WithValidMethods is what
	// stops algorithm confusion and "none"; exp is deliberately not required
	// (see the package doc) but is checked when present.
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{v.alg}),
		jwt.WithLeeway(v.cfg.Leeway),
		jwt.WithIssuedAt(),
	}
	if v.cfg.RequireExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	if v.cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(v.cfg.Audience))
	}
	if v.cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.cfg.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Identity is what a verified token says about its bearer.
type Identity struct {
	// Username is the username claim; "" for an anonymous request.
	Username string
	// Expires is the token's exp claim; zero when it has none. A broker
	// ends the connection once it passes (plus Leeway), unless the client
	// presents a fresher token first.
	Expires time.Time
}

// Leeway is the clock skew this Verifier allows on exp, nbf and iat.
func (v *Verifier) Leeway() time.Duration { return v.cfg.Leeway }

// enabled reports whether v verifies tokens; when false Identify always
// returns "", nil.
func (v *Verifier) enabled() bool { return v.alg != "" }

// Identify finds the token in r and returns the username it carries. It looks
// at the query parameter "token", then "Authorization: Bearer <token>",
// then the cookie Config.Cookie; the first non-empty token found is the only
// one verified. With no token it returns ErrMissingToken if Config.Required
// is set and "", nil otherwise. A present token that fails verification is
// an error wrapping ErrInvalidToken even when Required is false, so a client
// with a broken token learns so instead of silently becoming anonymous.
func (v *Verifier) Identify(r *http.Request) (username string, err error) {
	id, err := v.IdentifyRequest(r)
	return id.Username, err
}

// IdentifyRequest is Identify, with the token's expiry.
func (v *Verifier) IdentifyRequest(r *http.Request) (Identity, error) {
	if !v.enabled() {
		return Identity{}, nil
	}
	token := v.tokenFrom(r)
	if token == "" {
		if v.cfg.Required {
			return Identity{}, ErrMissingToken
		}
		return Identity{}, nil
	}
	return v.VerifyIdentity(token)
}

// tokenFrom returns the first non-empty token in the documented order, or "".
func (v *Verifier) tokenFrom(r *http.Request) string {
	if r.URL != nil {
		if t := r.URL.Query().Get(queryParam); t != "" {
			return t
		}
	}
	if t, ok := bearer(r.Header.Get("Authorization")); ok {
		return t
	}
	if c, err := r.Cookie(v.cfg.Cookie); err == nil && c.Value != "" {
		return c.Value
	}
	return ""
}

// bearer extracts the token from an Authorization header value. The scheme
// is case-insensitive (RFC 7235 section 2.1); other schemes, such as Basic
// added by a proxy, are not ours and count as no token.
func bearer(h string) (string, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	t := strings.TrimSpace(h[len(scheme):])
	return t, t != ""
}

// Verify checks the signature, algorithm and time claims of token and
// returns its username claim. Identify calls it; it is exported for tools
// and tests. Errors wrap ErrInvalidToken, and ErrDisabled is returned when v
// has no key.
func (v *Verifier) Verify(token string) (string, error) {
	id, err := v.VerifyIdentity(token)
	return id.Username, err
}

// VerifyIdentity is Verify, with the token's expiry: for a token presented
// at the upgrade, and again for one presented to refresh a connection's
// identity.
func (v *Verifier) VerifyIdentity(token string) (Identity, error) {
	if !v.enabled() {
		return Identity{}, ErrDisabled
	}
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		// WithValidMethods already refused other algorithms; checking again
		// here keeps the key from ever reaching a different method if that
		// option is lost in a refactor.
		if t.Method.Alg() != v.alg {
			return nil, fmt.Errorf("unexpected signing method %s", t.Method.Alg())
		}
		return v.key, nil
	})
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	raw, ok := claims[v.cfg.UsernameClaim]
	if !ok {
		return Identity{}, fmt.Errorf("%w: missing claim %q", ErrInvalidToken, v.cfg.UsernameClaim)
	}
	name, ok := raw.(string)
	if !ok {
		return Identity{}, fmt.Errorf("%w: claim %q is %T, want a string", ErrInvalidToken, v.cfg.UsernameClaim, raw)
	}
	if name == "" {
		return Identity{}, fmt.Errorf("%w: claim %q is empty", ErrInvalidToken, v.cfg.UsernameClaim)
	}
	id := Identity{Username: name}
	// The parser has checked exp's type when present.
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		id.Expires = exp.Time
	}
	return id, nil
}
