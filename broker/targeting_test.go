package broker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/webinate/broker/auth"
)

// jwtMode is one way of configuring identity, with a signer for tokens the
// broker must accept and one for tokens it must refuse.
type jwtMode struct {
	name  string
	cfg   auth.Config
	sign  func(claims jwt.MapClaims) string
	wrong func(claims jwt.MapClaims) string // valid token, wrong key
}

func jwtModes(t *testing.T) []jwtMode {
	t.Helper()
	pemOf := func(pub any) string {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	signWith := func(m jwt.SigningMethod, key any) func(jwt.MapClaims) string {
		return func(c jwt.MapClaims) string {
			s, err := jwt.NewWithClaims(m, c).SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaOther, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecOther, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return []jwtMode{
		{"HS256", auth.Config{HS256Secret: "s3cret"}, signWith(jwt.SigningMethodHS256, []byte("s3cret")), signWith(jwt.SigningMethodHS256, []byte("other"))},
		{"RS256", auth.Config{PublicKeyPEM: pemOf(&rsaKey.PublicKey)}, signWith(jwt.SigningMethodRS256, rsaKey), signWith(jwt.SigningMethodRS256, rsaOther)},
		{"ES256", auth.Config{PublicKeyPEM: pemOf(&ecKey.PublicKey)}, signWith(jwt.SigningMethodES256, ecKey), signWith(jwt.SigningMethodES256, ecOther)},
	}
}

func claims(sub string, exp time.Duration) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "exp": time.Now().Add(exp).Unix()}
}

// dialToken connects a client carrying token in the query string.
func dialToken(t testing.TB, ts *testServer, token, query string) (*websocket.Conn, int) {
	t.Helper()
	url := ts.wsURL + "?token=" + token
	if query != "" {
		url += "&" + query
	}
	c, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {testOrigin}})
	if err != nil {
		if resp == nil {
			t.Fatal(err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, http.StatusSwitchingProtocols
}

func TestJWTIdentity(t *testing.T) {
	for _, m := range jwtModes(t) {
		t.Run(m.name, func(t *testing.T) {
			for _, required := range []bool{false, true} {
				cfg := m.cfg
				cfg.Required = required
				ts := startServer(t, func(c *Config) { c.Auth = cfg; c.Targeting = TargetUser })
				cases := []struct {
					name  string
					token string
					want  int
				}{
					{"valid", m.sign(claims("alice", time.Hour)), 101},
					{"expired", m.sign(claims("alice", -time.Hour)), 401},
					{"wrong signature", m.wrong(claims("alice", time.Hour)), 401},
					{"garbage", "not.a.token", 401},
				}
				for _, tc := range cases {
					if _, code := dialToken(t, ts, tc.token, ""); code != tc.want {
						t.Errorf("required=%v %s: status %d, want %d", required, tc.name, code, tc.want)
					}
				}
				// Missing token: refused when required, anonymous otherwise.
				_, code := rawHandshake(t, ts.Addr(), map[string]string{"Origin": testOrigin})
				if want := map[bool]int{true: 401, false: 101}[required]; code != want {
					t.Errorf("required=%v missing token: status %d, want %d", required, code, want)
				}
				// Header and cookie carry the token too, and the identity is
				// the one targeted events use.
				tok := m.sign(claims("alice", time.Hour))
				viaHeader, _, err := websocket.DefaultDialer.Dial(ts.wsURL, http.Header{"Origin": {testOrigin}, "Authorization": {"Bearer " + tok}})
				if err != nil {
					t.Fatal(err)
				}
				defer viaHeader.Close()
				viaCookie, _, err := websocket.DefaultDialer.Dial(ts.wsURL, http.Header{"Origin": {testOrigin}, "Cookie": {"token=" + tok}})
				if err != nil {
					t.Fatal(err)
				}
				defer viaCookie.Close()
				if code, _ := publish(t, ts.adminURL, testKey, `{"eventType":1,"username":"alice"}`); code != 202 {
					t.Fatal(code)
				}
				for _, c := range []*websocket.Conn{viaHeader, viaCookie} {
					if got := read(t, c); got != `{"eventType":1,"username":"alice"}` {
						t.Fatalf("got %s", got)
					}
				}
				if st := ts.Stats(); st.RefusedToken == 0 {
					t.Fatal("refusals not counted")
				}
			}
		})
	}
}

// A targeted event reaches its user's connections and the backends, and
// none of 1,000 other clients.
func TestTargetedEventReachesOnlyItsUser(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000 sockets")
	}
	m := jwtModes(t)[0]
	ts := startServer(t, func(c *Config) { c.Auth = m.cfg; c.Targeting = TargetUser })
	alice1, _ := dialToken(t, ts, m.sign(claims("alice", time.Hour)), "")
	alice2, _ := dialToken(t, ts, m.sign(claims("alice", time.Hour)), "")
	bob, _ := dialToken(t, ts, m.sign(claims("bob", time.Hour)), "")
	be := dialBackend(t, ts.wsURL, testKey)
	others := make([]*rawConn, 1000)
	for i := range others {
		others[i] = dialRaw(t, ts.Addr()) // anonymous
	}
	target := `{"eventType":5,"username":"alice","file":"secret.pdf"}`
	marker := `{"eventType":6,"file":"public"}` // no username: everyone
	if code, _ := publish(t, ts.adminURL, testKey, "["+target+","+marker+"]"); code != 202 {
		t.Fatal(code)
	}
	for _, c := range []*websocket.Conn{alice1, alice2, be} {
		if got := read(t, c); got != target {
			t.Fatalf("alice/backend got %s first", got)
		}
		if got := read(t, c); got != marker {
			t.Fatalf("then %s", got)
		}
	}
	if got := read(t, bob); got != marker {
		t.Fatalf("bob got %s, want only the marker", got)
	}
	for i, r := range others {
		if _, _, p := r.readFrame(); string(p) != marker {
			t.Fatalf("client %d got %s before the marker", i, p)
		}
	}
}

func TestTargetingAllIgnoresUsername(t *testing.T) {
	m := jwtModes(t)[0]
	ts := startServer(t, func(c *Config) { c.Auth = m.cfg }) // default: all
	anon := dial(t, ts.wsURL, testOrigin)
	ev := `{"eventType":1,"username":"alice"}`
	if code, _ := publish(t, ts.adminURL, testKey, ev); code != 202 {
		t.Fatal(code)
	}
	if got := read(t, anon); got != ev {
		t.Fatalf("got %s", got)
	}
}

// Events sent by a backend socket are targeted the same way.
func TestBackendSocketEventTargeted(t *testing.T) {
	m := jwtModes(t)[0]
	ts := startServer(t, func(c *Config) { c.Auth = m.cfg; c.Targeting = TargetUser })
	alice, _ := dialToken(t, ts, m.sign(claims("alice", time.Hour)), "")
	anon := dial(t, ts.wsURL, testOrigin)
	be := dialBackend(t, ts.wsURL, testKey)
	send(t, be, `{"eventType":2,"username":"alice"}`)
	if got := read(t, alice); got != `{"eventType":2,"username":"alice"}` {
		t.Fatal(got)
	}
	expectNothing(t, anon, 200*time.Millisecond)
}

func TestEventFilter(t *testing.T) {
	ts := startServer(t, nil)
	c := dial(t, ts.wsURL+"?events=1,%202", testOrigin)
	all := dial(t, ts.wsURL, testOrigin)
	events := []string{`{"eventType":5,"file":"a"}`, `{"eventType":1,"username":"u"}`, `{"eventType":3,"username":"u"}`, `{"eventType":2,"username":"u"}`}
	body := "[" + events[0] + "," + events[1] + "," + events[2] + "," + events[3] + "]"
	if code, _ := publish(t, ts.adminURL, testKey, body); code != 202 {
		t.Fatal(code)
	}
	for _, want := range []string{events[1], events[3]} {
		if got := read(t, c); got != want {
			t.Fatalf("filtered client got %s, want %s", got, want)
		}
	}
	for _, want := range events {
		if got := read(t, all); got != want {
			t.Fatalf("unfiltered client got %s, want %s", got, want)
		}
	}
	// Echo replies, echo broadcasts and errors always arrive.
	send(t, c, `{"eventType":10,"message":"me"}`)
	if got := read(t, c); got != `{"eventType":10,"message":"me"}` {
		t.Fatal(got)
	}
	send(t, all, `{"eventType":10,"message":"all","broadcast":true}`)
	if got := read(t, c); got != `{"eventType":10,"message":"all","broadcast":true}` {
		t.Fatal(got)
	}
	send(t, c, `{"eventType":3}`)
	if got := read(t, c); got == "" || got[0] != '{' {
		t.Fatal(got)
	}
}

func TestEventFilterBadList(t *testing.T) {
	ts := startServer(t, nil)
	for _, q := range []string{"events=", "events=0", "events=10", "events=1,x", "events=1&events=2", "events=-1"} {
		c, resp, err := websocket.DefaultDialer.Dial(ts.wsURL+"?"+q, http.Header{"Origin": {testOrigin}})
		if err == nil {
			c.Close()
			t.Fatalf("%s: accepted", q)
		}
		if resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s: %v", q, resp)
		}
	}
}

// BenchmarkTargetedPublish shows that delivering an event to one user costs
// the same whatever the number of other connections: the shard index finds
// the user's connections without walking the others.
func BenchmarkTargetedPublish(b *testing.B) {
	for _, n := range []int{100, 1000, 4000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			m := jwtModes(&testing.T{})[0]
			ts := startServer(b, func(c *Config) { c.Auth = m.cfg; c.Targeting = TargetUser })
			target, _ := dialToken(b, ts, m.sign(claims("alice", time.Hour)), "")
			for i := 0; i < n; i++ {
				dialRaw(b, ts.Addr())
			}
			ev := [][]byte{[]byte(`{"eventType":1,"username":"alice"}`)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ts.publish(ev)
				if _, _, err := target.ReadMessage(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(ts.Stats().Deliveries)/float64(b.N), "deliveries/op")
		})
	}
}
