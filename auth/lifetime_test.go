package auth

import (
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// VerifyIdentity returns the token's expiry, so that a broker can end the
// connection when it passes; a token without exp has none.
func TestVerifyIdentityExpires(t *testing.T) {
	t.Parallel()
	v, err := New(Config{HS256Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Minute).Truncate(time.Second)
	id, err := v.VerifyIdentity(sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims(jwt.MapClaims{"exp": exp.Unix()})))
	if err != nil || id.Username != "alice" || !id.Expires.Equal(exp) {
		t.Fatalf("got %+v, %v; want alice expiring %v", id, err, exp)
	}
	noExp := claims(nil)
	delete(noExp, "exp")
	id, err = v.VerifyIdentity(sign(t, jwt.SigningMethodHS256, []byte(testSecret), noExp))
	if err != nil || !id.Expires.IsZero() {
		t.Fatalf("token without exp: %+v, %v; want no expiry", id, err)
	}
}

// RequireExp, Audience and Issuer each refuse a token that lacks or
// contradicts the claim, with an error naming it.
func TestRequiredClaims(t *testing.T) {
	t.Parallel()
	noExp := claims(nil)
	delete(noExp, "exp")
	cases := []struct {
		name   string
		cfg    Config
		claims jwt.MapClaims
		ok     bool
	}{
		{"exp required, present", Config{RequireExp: true}, claims(nil), true},
		{"exp required, absent", Config{RequireExp: true}, noExp, false},
		{"exp not required, absent", Config{}, noExp, true},
		{"audience matches", Config{Audience: "broker"}, claims(jwt.MapClaims{"aud": []string{"other", "broker"}}), true},
		{"audience differs", Config{Audience: "broker"}, claims(jwt.MapClaims{"aud": "other"}), false},
		{"audience absent", Config{Audience: "broker"}, claims(nil), false},
		{"issuer matches", Config{Issuer: "https://id.example"}, claims(jwt.MapClaims{"iss": "https://id.example"}), true},
		{"issuer differs", Config{Issuer: "https://id.example"}, claims(jwt.MapClaims{"iss": "https://evil.example"}), false},
		{"issuer absent", Config{Issuer: "https://id.example"}, claims(nil), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.HS256Secret = testSecret
			v, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.VerifyIdentity(sign(t, jwt.SigningMethodHS256, []byte(testSecret), tc.claims))
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("got %v, want ErrInvalidToken", err)
			}
		})
	}
}
