package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Keys are generated once per test binary: RSA generation is slow under
// -race and no test mutates them.
var testKeys = sync.OnceValue(func() (k struct {
	rsa, rsaOther *rsa.PrivateKey
	ec, ecOther   *ecdsa.PrivateKey
}) {
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.rsaOther, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if k.ecOther, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	return k
})

const (
	testSecret  = "correct horse battery staple, long enough for HS256"
	otherSecret = "a different secret of similar length for HS256 tests"
)

// pkixPEM PEM-encodes pub as a "PUBLIC KEY" block.
func pkixPEM(t testing.TB, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// sign returns claims signed with method and key, failing the test on error.
func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("signing %s: %v", method.Alg(), err)
	}
	return s
}

// claims returns a valid claim set for alice plus extra, where a nil value
// in extra deletes the key.
func claims(extra jwt.MapClaims) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"sub": "alice",
		"iat": now.Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// mode is one way of configuring a Verifier, with what it takes to sign a
// token it accepts and one it must refuse.
type mode struct {
	name   string
	cfg    Config
	method jwt.SigningMethod
	key    any // signs tokens the verifier accepts
	other  any // same algorithm, wrong key
}

func modes(t testing.TB) []mode {
	k := testKeys()
	return []mode{
		{"HS256", Config{HS256Secret: testSecret}, jwt.SigningMethodHS256, []byte(testSecret), []byte(otherSecret)},
		{"RS256", Config{PublicKeyPEM: pkixPEM(t, &k.rsa.PublicKey)}, jwt.SigningMethodRS256, k.rsa, k.rsaOther},
		{"ES256", Config{PublicKeyPEM: pkixPEM(t, &k.ec.PublicKey)}, jwt.SigningMethodES256, k.ec, k.ecOther},
	}
}

// tokenCase is one token and what Verify must make of it.
type tokenCase struct {
	name   string
	cfg    func(*Config) // optional change to the mode's Config
	token  string
	want   string
	wantIs []error // each must match with errors.Is; empty means success
}

// tokenCases builds the cases shared by every mode, plus the algorithm
// attacks that only make sense against m.
func tokenCases(t testing.TB, m mode) []tokenCase {
	k := testKeys()
	now := time.Now()
	valid := sign(t, m.method, m.key, claims(nil))
	parts := strings.Split(valid, ".")
	forgedPayload := sign(t, m.method, m.key, claims(jwt.MapClaims{"sub": "mallory"}))
	tampered := parts[0] + "." + strings.Split(forgedPayload, ".")[1] + "." + parts[2]
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil))
	// "none" header over a payload, keeping the real signature: still refused.
	noneWithSig := strings.Split(none, ".")[0] + "." + parts[1] + "." + parts[2]

	cases := []tokenCase{
		{name: "valid", token: valid, want: "alice"},
		{name: "no exp is accepted", token: sign(t, m.method, m.key, claims(jwt.MapClaims{"exp": nil})), want: "alice"},
		{name: "expired within default leeway", token: sign(t, m.method, m.key, claims(jwt.MapClaims{"exp": now.Add(-10 * time.Second).Unix()})), want: "alice"},
		{name: "expired", token: sign(t, m.method, m.key, claims(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix()})), wantIs: []error{ErrInvalidToken, jwt.ErrTokenExpired}},
		{
			name:   "expired beyond custom leeway",
			cfg:    func(c *Config) { c.Leeway = time.Second },
			token:  sign(t, m.method, m.key, claims(jwt.MapClaims{"exp": now.Add(-10 * time.Second).Unix()})),
			wantIs: []error{ErrInvalidToken, jwt.ErrTokenExpired},
		},
		{name: "nbf in future", token: sign(t, m.method, m.key, claims(jwt.MapClaims{"nbf": now.Add(time.Hour).Unix()})), wantIs: []error{ErrInvalidToken, jwt.ErrTokenNotValidYet}},
		{name: "iat in future", token: sign(t, m.method, m.key, claims(jwt.MapClaims{"iat": now.Add(time.Hour).Unix()})), wantIs: []error{ErrInvalidToken, jwt.ErrTokenUsedBeforeIssued}},
		{name: "exp not a number", token: sign(t, m.method, m.key, claims(jwt.MapClaims{"exp": "tomorrow"})), wantIs: []error{ErrInvalidToken}},
		{name: "wrong key", token: sign(t, m.method, m.other, claims(nil)), wantIs: []error{ErrInvalidToken, jwt.ErrTokenSignatureInvalid}},
		{name: "tampered payload", token: tampered, wantIs: []error{ErrInvalidToken, jwt.ErrTokenSignatureInvalid}},
		{name: "alg none", token: none, wantIs: []error{ErrInvalidToken}},
		{name: "alg none with signature", token: noneWithSig, wantIs: []error{ErrInvalidToken}},
		{name: "missing username claim", token: sign(t, m.method, m.key, claims(jwt.MapClaims{"sub": nil})), wantIs: []error{ErrInvalidToken}},
		{name: "empty username claim", token: sign(t, m.method, m.key, claims(jwt.MapClaims{"sub": ""})), wantIs: []error{ErrInvalidToken}},
		{name: "non-string username claim", token: sign(t, m.method, m.key, claims(jwt.MapClaims{"sub": 42})), wantIs: []error{ErrInvalidToken}},
		{
			name:  "custom username claim",
			cfg:   func(c *Config) { c.UsernameClaim = "preferred_username" },
			token: sign(t, m.method, m.key, claims(jwt.MapClaims{"preferred_username": "bob"})),
			want:  "bob",
		},
		{
			name:   "custom username claim missing, sub ignored",
			cfg:    func(c *Config) { c.UsernameClaim = "preferred_username" },
			token:  valid,
			wantIs: []error{ErrInvalidToken},
		},
		{name: "empty string", token: "", wantIs: []error{ErrInvalidToken, jwt.ErrTokenMalformed}},
		{name: "garbage", token: "not-a-jwt", wantIs: []error{ErrInvalidToken, jwt.ErrTokenMalformed}},
		{name: "three garbage segments", token: "a.b.c", wantIs: []error{ErrInvalidToken, jwt.ErrTokenMalformed}},
		{name: "truncated signature", token: valid[:len(valid)-4], wantIs: []error{ErrInvalidToken}},
	}

	// Algorithm attacks: a token under any algorithm other than the one the
	// key implies must be refused even when its signature checks out under
	// that other algorithm.
	switch m.name {
	case "HS256":
		cases = append(cases,
			tokenCase{name: "HS384 with same secret", token: sign(t, jwt.SigningMethodHS384, []byte(testSecret), claims(nil)), wantIs: []error{ErrInvalidToken, jwt.ErrTokenSignatureInvalid}},
			tokenCase{name: "RS256 token", token: sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil)), wantIs: []error{ErrInvalidToken, jwt.ErrTokenSignatureInvalid}},
		)
	case "RS256":
		cases = append(cases,
			tokenCase{name: "alg confusion HS256 keyed with PEM", token: sign(t, jwt.SigningMethodHS256, []byte(m.cfg.PublicKeyPEM), claims(nil)), wantIs: []error{ErrInvalidToken, jwt.ErrTokenSignatureInvalid}},
			tokenCase{name: "PS256 with same key", token: sign(t, jwt.SigningMethodPS256, k.rsa, claims(nil)), wantIs: []error{ErrInvalidToken, jwt.ErrTokenSignatureInvalid}},
			tokenCase{name: "RS512 with same key", token: sign(t, jwt.SigningMethodRS512, k.rsa, claims(nil)), wantIs: []error{ErrInvalidToken, jwt.ErrTokenSignatureInvalid}},
		)
	case "ES256":
		cases = append(cases,
			tokenCase{name: "alg confusion HS256 keyed with PEM", token: sign(t, jwt.SigningMethodHS256, []byte(m.cfg.PublicKeyPEM), claims(nil)), wantIs: []error{ErrInvalidToken, jwt.ErrTokenSignatureInvalid}},
			tokenCase{name: "RS256 token", token: sign(t, jwt.SigningMethodRS256, k.rsa, claims(nil)), wantIs: []error{ErrInvalidToken, jwt.ErrTokenSignatureInvalid}},
		)
	}
	return cases
}

func TestVerify(t *testing.T) {
	t.Parallel()
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range tokenCases(t, m) {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					cfg := m.cfg
					if tc.cfg != nil {
						tc.cfg(&cfg)
					}
					v, err := New(cfg)
					if err != nil {
						t.Fatal(err)
					}
					got, err := v.Verify(tc.token)
					checkResult(t, got, err, tc.want, tc.wantIs)
				})
			}
		})
	}
}

func checkResult(t *testing.T, got string, err error, want string, wantIs []error) {
	t.Helper()
	if len(wantIs) == 0 {
		if err != nil || got != want {
			t.Fatalf("got (%q, %v), want (%q, nil)", got, err, want)
		}
		return
	}
	if err == nil {
		t.Fatalf("got (%q, nil), want error matching %v", got, wantIs)
	}
	if got != "" {
		t.Errorf("username %q returned alongside error %v", got, err)
	}
	for _, target := range wantIs {
		if !errors.Is(err, target) {
			t.Errorf("error %q does not match %q", err, target)
		}
	}
	if errors.Is(err, ErrInvalidToken) && !strings.HasPrefix(err.Error(), "auth: invalid token: ") {
		t.Errorf("error %q lacks the package prefix and detail", err)
	}
}

func TestVerifyErrorText(t *testing.T) {
	t.Parallel()
	v, err := New(Config{HS256Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims(jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()})))
	if err == nil || !strings.HasPrefix(err.Error(), "auth: invalid token: ") || !strings.Contains(err.Error(), "token is expired") {
		t.Fatalf("got %v, want \"auth: invalid token: ...token is expired\"", err)
	}
}

// request builds a GET upgrade-style request; each option adds a token
// location.
func request(opts ...func(*http.Request)) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	for _, o := range opts {
		o(r)
	}
	return r
}

func inQuery(tok string) func(*http.Request) {
	return func(r *http.Request) { r.URL.RawQuery = url.Values{"token": {tok}}.Encode() }
}

func inHeader(value string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", value) }
}

func inCookie(name, tok string) func(*http.Request) {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: name, Value: tok}) }
}

func TestIdentify(t *testing.T) {
	t.Parallel()
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			good := sign(t, m.method, m.key, claims(nil))
			bad := sign(t, m.method, m.other, claims(nil))
			cases := []struct {
				name   string
				cfg    func(*Config)
				req    *http.Request
				want   string
				wantIs []error
			}{
				{name: "query", req: request(inQuery(good)), want: "alice"},
				{name: "bearer header", req: request(inHeader("Bearer " + good)), want: "alice"},
				{name: "bearer scheme case-insensitive", req: request(inHeader("bearer  " + good)), want: "alice"},
				{name: "default cookie", req: request(inCookie("token", good)), want: "alice"},
				{name: "custom cookie", cfg: func(c *Config) { c.Cookie = "jwt" }, req: request(inCookie("jwt", good)), want: "alice"},
				{name: "custom cookie ignores default name", cfg: func(c *Config) { c.Cookie = "jwt" }, req: request(inCookie("token", good)), want: ""},
				{name: "query wins over header", req: request(inQuery(good), inHeader("Bearer "+bad)), want: "alice"},
				{name: "header wins over cookie", req: request(inHeader("Bearer "+good), inCookie("token", bad)), want: "alice"},
				{name: "invalid first token does not fall back", req: request(inQuery(bad), inHeader("Bearer "+good)), wantIs: []error{ErrInvalidToken}},
				{name: "empty query value skipped", req: request(inQuery(""), inCookie("token", good)), want: "alice"},
				{name: "non-bearer scheme ignored", req: request(inHeader("Basic dXNlcjpwYXNz"), inCookie("token", good)), want: "alice"},
				{name: "bearer without token ignored", req: request(inHeader("Bearer   ")), want: ""},
				{name: "missing token anonymous", req: request(), want: ""},
				{name: "missing token required", cfg: func(c *Config) { c.Required = true }, req: request(), wantIs: []error{ErrMissingToken}},
				{name: "non-bearer scheme required", cfg: func(c *Config) { c.Required = true }, req: request(inHeader("Basic dXNlcjpwYXNz")), wantIs: []error{ErrMissingToken}},
				{name: "invalid token not required", req: request(inHeader("Bearer " + bad)), wantIs: []error{ErrInvalidToken}},
				{name: "invalid token required", cfg: func(c *Config) { c.Required = true }, req: request(inCookie("token", bad)), wantIs: []error{ErrInvalidToken}},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					cfg := m.cfg
					if tc.cfg != nil {
						tc.cfg(&cfg)
					}
					v, err := New(cfg)
					if err != nil {
						t.Fatal(err)
					}
					got, err := v.Identify(tc.req)
					checkResult(t, got, err, tc.want, tc.wantIs)
				})
			}
		})
	}
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	cfg := Config{Required: true, UsernameClaim: "name", Cookie: "c"}
	if cfg.Enabled() {
		t.Fatal("Config with no key source reports Enabled")
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	forged := sign(t, jwt.SigningMethodHS256, []byte("anything"), claims(nil))
	for name, r := range map[string]*http.Request{
		"no token":     request(),
		"forged token": request(inHeader("Bearer " + forged)),
		"garbage":      request(inQuery("garbage")),
	} {
		if got, err := v.Identify(r); got != "" || err != nil {
			t.Errorf("%s: Identify = (%q, %v), want (\"\", nil)", name, got, err)
		}
	}
	if got, err := v.Verify(forged); got != "" || !errors.Is(err, ErrDisabled) {
		t.Errorf("Verify on disabled = (%q, %v), want ErrDisabled", got, err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	k := testKeys()
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ecPEM := pkixPEM(t, &k.ec.PublicKey)
	rsaPEM := pkixPEM(t, &k.rsa.PublicKey)
	pkcs1PEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)}))
	privDER, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "issuer"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.ec.PublicKey, k.ec)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}))

	cases := []struct {
		name    string
		cfg     Config
		wantAlg string // on success
		wantErr string // substring; "" means success
	}{
		{name: "disabled", cfg: Config{}},
		{name: "hs256", cfg: Config{HS256Secret: "s"}, wantAlg: "HS256"},
		{name: "rsa pkix", cfg: Config{PublicKeyPEM: rsaPEM}, wantAlg: "RS256"},
		{name: "rsa pkcs1", cfg: Config{PublicKeyPEM: pkcs1PEM}, wantAlg: "RS256"},
		{name: "ecdsa p256", cfg: Config{PublicKeyPEM: ecPEM}, wantAlg: "ES256"},
		{name: "ecdsa certificate", cfg: Config{PublicKeyPEM: certPEM}, wantAlg: "ES256"},
		{name: "pem with surrounding text", cfg: Config{PublicKeyPEM: "issuer key:\n" + ecPEM + "\n"}, wantAlg: "ES256"},
		{name: "both sources", cfg: Config{HS256Secret: "s", PublicKeyPEM: rsaPEM}, wantErr: "both HS256Secret and PublicKeyPEM"},
		{name: "negative leeway", cfg: Config{HS256Secret: "s", Leeway: -time.Second}, wantErr: "Leeway -1s is negative"},
		{name: "garbage pem", cfg: Config{PublicKeyPEM: "not a pem"}, wantErr: "no PEM block"},
		{name: "corrupt der", cfg: Config{PublicKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}))}, wantErr: `"PUBLIC KEY" block does not parse`},
		{name: "private key", cfg: Config{PublicKeyPEM: privPEM}, wantErr: "never the private one"},
		{name: "unknown block type", cfg: Config{PublicKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "FOO", Bytes: []byte{1}}))}, wantErr: `"FOO" block`},
		{name: "two blocks", cfg: Config{PublicKeyPEM: rsaPEM + ecPEM}, wantErr: "more than one PEM block"},
		{name: "ed25519", cfg: Config{PublicKeyPEM: pkixPEM(t, edPub)}, wantErr: "unsupported public key type ed25519.PublicKey"},
		{name: "ecdsa p384", cfg: Config{PublicKeyPEM: pkixPEM(t, &p384.PublicKey)}, wantErr: "curve P-384"},
		{name: "rsa 1024", cfg: Config{PublicKeyPEM: pkixPEM(t, &small.PublicKey)}, wantErr: "1024 bits"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := New(tc.cfg)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if v.alg != tc.wantAlg {
					t.Fatalf("alg = %q, want %q", v.alg, tc.wantAlg)
				}
				return
			}
			if err == nil {
				t.Fatalf("New succeeded, want error containing %q", tc.wantErr)
			}
			if v != nil {
				t.Error("New returned a Verifier alongside an error")
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.HasPrefix(err.Error(), "auth: invalid config: ") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q: want ErrInvalidConfig containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	v, err := New(Config{HS256Secret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if v.cfg.UsernameClaim != DefaultUsernameClaim || v.cfg.Cookie != DefaultCookie || v.cfg.Leeway != DefaultLeeway {
		t.Fatalf("defaults not applied: %+v", v.cfg)
	}
}

// TestConcurrentVerify shares one Verifier between goroutines so -race can
// check the "immutable after New" promise.
func TestConcurrentVerify(t *testing.T) {
	t.Parallel()
	for _, m := range modes(t) {
		v, err := New(m.cfg)
		if err != nil {
			t.Fatal(err)
		}
		good := sign(t, m.method, m.key, claims(nil))
		bad := sign(t, m.method, m.other, claims(nil))
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for range 20 {
					tok, want := good, "alice"
					if i%2 == 1 {
						tok, want = bad, ""
					}
					if got, _ := v.Identify(request(inHeader("Bearer " + tok))); got != want {
						t.Errorf("%s: got %q, want %q", m.name, got, want)
						return
					}
				}
			})
		}
		wg.Wait()
	}
}
