// Package auth identifies the user behind a WebSocket upgrade request from a
// JSON Web Token. It owns token lookup in the request, signature and claim
// verification, and the choice of which algorithm a configured key may be
// used with. It does not decide what an identified (or anonymous) user may
// do; that is the broker's business.
//
// # Keys and algorithms
//
// A Config holds at most one key source. HS256Secret selects HS256.
// PublicKeyPEM selects the algorithm from the key type: an RSA key allows
// RS256 only and an ECDSA P-256 key allows ES256 only. Each Verifier accepts
// exactly one algorithm, so "none", an HMAC token signed with the bytes of a
// public key (algorithm confusion), or any other algorithm is rejected
// before the signature is looked at. A Config with no key source disables
// authentication: every request is anonymous.
//
// # Where the token is found
//
// Identify looks, in this order, at the query parameter "token", the
// header "Authorization: Bearer <token>", and the cookie named by
// Config.Cookie. The first non-empty one wins and the others are ignored,
// even if the winner turns out to be invalid; a request is never identified
// by falling back to a second token. The query parameter exists because
// browsers cannot set headers on a WebSocket handshake; be aware that URLs
// tend to end up in access logs.
//
// # Claims
//
// exp, nbf and iat are checked when present, each with Config.Leeway of
// clock skew allowed. exp is not required, so a token without one never
// expires; issuers that want short-lived sessions must set it. (A zero
// exp or nbf counts as absent, as in github.com/golang-jwt/jwt/v5.) The
// username claim, "sub" unless Config.UsernameClaim says otherwise, must be
// a non-empty string.
//
// # Concurrency
//
// New does all parsing of configuration. A Verifier is immutable after New
// returns and is safe for concurrent use by any number of goroutines.
// Identify and Verify do no I/O and never block; their cost is one
// signature check (an RSA or ECDSA verification is tens of microseconds),
// so they are fine to call on the upgrade path. The package never logs.
package auth
