package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify checks that no input panics any verifier, that every refusal
// wraps ErrInvalidToken, and that an accepted token always yields a
// non-empty username. Seeds are real tokens for each mode, so mutations
// land close to the signature and claim checks, not only in base64 errors.
func FuzzVerify(f *testing.F) {
	var vs []*Verifier
	for _, m := range modes(f) {
		v, err := New(m.cfg)
		if err != nil {
			f.Fatal(err)
		}
		vs = append(vs, v)
		f.Add(sign(f, m.method, m.key, claims(nil)))
		f.Add(sign(f, m.method, m.key, claims(jwt.MapClaims{"sub": 7, "exp": "x", "nbf": []any{1}})))
		f.Add(sign(f, m.method, m.other, claims(nil)))
	}
	f.Add(sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)))
	for _, s := range []string{"", ".", "..", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", "\xff\xfe.\x00.", strings.Repeat("A", 4096)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		for _, v := range vs {
			name, err := v.Verify(tok)
			switch {
			case err != nil && !errors.Is(err, ErrInvalidToken):
				t.Fatalf("Verify(%q) error %v does not wrap ErrInvalidToken", tok, err)
			case err != nil && name != "":
				t.Fatalf("Verify(%q) returned %q with error %v", tok, name, err)
			case err == nil && name == "":
				t.Fatalf("Verify(%q) accepted a token with an empty username", tok)
			}
			// The same string through Identify's header path must not panic
			// either; its answer may differ only by trimming.
			r := httptest.NewRequest(http.MethodGet, "/ws", nil)
			r.Header["Authorization"] = []string{"Bearer " + tok}
			_, _ = v.Identify(r)
		}
	})
}
