package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/webinate/broker/auth"
)

const idSecret = "identity test secret, long enough for HS256"

// idToken signs an HS256 token for user, expiring in ttl (0: no exp).
func idToken(t testing.TB, user string, ttl time.Duration) string {
	t.Helper()
	c := jwt.MapClaims{"sub": user}
	if ttl != 0 {
		c["exp"] = time.Now().Add(ttl).Unix()
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(idSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startIdentityServer(t *testing.T, mut func(*Config)) *testServer {
	return startServer(t, func(c *Config) {
		c.Auth = auth.Config{HS256Secret: idSecret, Leeway: time.Second}
		c.RefreshWindow = time.Second
		if mut != nil {
			mut(c)
		}
	})
}

// closeOf reads c until it is closed and returns the close error.
func closeOf(t *testing.T, c *websocket.Conn, skip func(msg string)) *websocket.CloseError {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, m, err := c.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("read: %v, want a close frame", err)
			}
			return ce
		}
		if skip != nil {
			skip(string(m))
		}
	}
}

// A connection whose token expires is told so once within the refresh
// window, then closed with 4001 when exp plus the leeway passes (before,
// it stayed open and identified for as long as it liked).
func TestTokenExpiryCloses(t *testing.T) {
	ts := startIdentityServer(t, nil)
	exp := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	tok := idToken(t, "alice", time.Until(exp))
	c := dial(t, ts.wsURL+"?token="+tok, testOrigin)
	var notices []string
	ce := closeOf(t, c, func(m string) { notices = append(notices, m) })
	at := time.Now()
	if ce.Code != 4001 || ce.Text != "token expired" {
		t.Fatalf("closed %d %q, want 4001 \"token expired\"", ce.Code, ce.Text)
	}
	// A lower bound only (a slow machine is late, never early).
	if deadline := exp.Add(-time.Second).Add(ts.auth.Load().Leeway()); at.Before(deadline) {
		t.Fatalf("closed at %v, before exp plus leeway %v", at, deadline)
	}
	if len(notices) != 1 || !strings.HasPrefix(notices[0], `{"eventType":11,"expiresIn":`) {
		t.Fatalf("notices %q, want one expiresIn notice", notices)
	}
	// Counted once the close frame is out: the client may see it first.
	waitFor(t, 5*time.Second, "the expiry counted", func() bool { return ts.Stats().TokenExpired == 1 })
}

// A client that refreshes its token every second stays connected past the
// first token's expiry and loses no event; a token for another user, a
// forged one and one without a token member are refused with an error
// event and change nothing.
func TestTokenRefreshKeepsConnection(t *testing.T) {
	ts := startIdentityServer(t, nil)
	c := dial(t, ts.wsURL+"?token="+idToken(t, "alice", 2*time.Second), testOrigin)

	refresh := func(tok string) string {
		send(t, c, fmt.Sprintf(`{"eventType":11,"token":%q}`, tok))
		for {
			m := read(t, c)
			if strings.HasPrefix(m, `{"eventType":11,"expiresIn"`) {
				continue // the notice may come at any time
			}
			return m
		}
	}
	if got := refresh(idToken(t, "bob", time.Minute)); got != `{"eventType":11,"error":"the token is for another user"}` {
		t.Fatalf("other user's token: %s", got)
	}
	if got := refresh("not.a.token"); !strings.HasPrefix(got, `{"eventType":11,"error":"auth: invalid token`) {
		t.Fatalf("bad token: %s", got)
	}
	send(t, c, `{"eventType":11}`)
	if got := read(t, c); got != `{"eventType":11,"error":"token refresh requires a string token"}` {
		t.Fatalf("no token: %s", got)
	}

	end := time.Now().Add(5 * time.Second) // well past the first token's exp + leeway
	i := 0
	for ; time.Now().Before(end); i++ {
		tok := idToken(t, "alice", 2*time.Second)
		var ans struct {
			EventType int   `json:"eventType"`
			Exp       int64 `json:"exp"`
		}
		if got := refresh(tok); json.Unmarshal([]byte(got), &ans) != nil || ans.EventType != 11 || ans.Exp < time.Now().Unix() {
			t.Fatalf("refresh %d: %s", i, got)
		}
		// An event per refresh, received in order: none lost.
		if code, body := publish(t, ts.adminURL, testKey, fmt.Sprintf(`{"eventType":1,"n":%d}`, i)); code != http.StatusAccepted {
			t.Fatalf("publish: %d %s", code, body)
		}
		for {
			m := read(t, c)
			if strings.HasPrefix(m, `{"eventType":11`) {
				continue
			}
			if m != fmt.Sprintf(`{"eventType":1,"n":%d}`, i) {
				t.Fatalf("event %d: got %s", i, m)
			}
			break
		}
		waitFor(t, 3*time.Second, "a second", func() bool { return time.Now().Unix() > ans.Exp-2 })
	}
	if st := ts.Stats(); st.TokenExpired != 0 || st.Refreshes < int64(i) || st.RefreshRefused != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// Backends and anonymous clients cannot refresh.
func TestTokenRefreshRefusedWithoutIdentity(t *testing.T) {
	ts := startIdentityServer(t, nil)
	anon := dial(t, ts.wsURL, testOrigin)
	send(t, anon, fmt.Sprintf(`{"eventType":11,"token":%q}`, idToken(t, "alice", time.Minute)))
	if got := read(t, anon); got != `{"eventType":11,"error":"only a connection identified by a token can refresh it"}` {
		t.Fatalf("anonymous refresh: %s", got)
	}
	be := dialBackend(t, ts.wsURL, testKey)
	send(t, be, fmt.Sprintf(`{"eventType":11,"token":%q}`, idToken(t, "alice", time.Minute)))
	if got := read(t, be); got != `{"eventType":11,"error":"eventType 11 may not be published"}` {
		t.Fatalf("backend refresh: %s", got)
	}
}

// -jwt-require-exp refuses a token without exp at the upgrade.
func TestRequireExpAtUpgrade(t *testing.T) {
	ts := startIdentityServer(t, func(c *Config) { c.Auth.RequireExp = true })
	if got := dialStatus(t, ts.wsURL+"?token="+idToken(t, "alice", 0), testOrigin); got != http.StatusUnauthorized {
		t.Fatalf("token without exp: %d, want 401", got)
	}
	if got := dialStatus(t, ts.wsURL+"?token="+idToken(t, "alice", time.Minute), testOrigin); got != http.StatusSwitchingProtocols {
		t.Fatalf("token with exp: %d", got)
	}
}

// adminDo sends an admin request with the key and decodes the JSON answer.
func adminDo(t *testing.T, ts *testServer, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, ts.adminURL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %d, body: %v", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode
}

// POST /api/disconnect closes every connection of a user with 4002 and
// bans her upgrades; presence counts users and connections.
func TestDisconnectAndPresence(t *testing.T) {
	ts := startIdentityServer(t, nil)
	a1 := dial(t, ts.wsURL+"?token="+idToken(t, "alice", time.Hour), testOrigin)
	a2 := dial(t, ts.wsURL+"?token="+idToken(t, "alice", time.Hour), testOrigin)
	b := dial(t, ts.wsURL+"?token="+idToken(t, "bob", time.Hour), testOrigin)
	dial(t, ts.wsURL, testOrigin) // anonymous
	dialBackend(t, ts.wsURL, testKey)
	waitFor(t, 5*time.Second, "registered", func() bool { return ts.Stats().Connections == 5 })

	var p struct {
		Presence
		Partial bool `json:"partial"`
	}
	if code := adminDo(t, ts, "GET", "/api/online", "", &p); code != 200 || p.Users != 2 || p.Connections != 4 || strings.Join(p.Usernames, ",") != "alice,bob" || p.More || p.Partial {
		t.Fatalf("online: %d %+v", code, p)
	}
	if adminDo(t, ts, "GET", "/api/online?limit=1", "", &p); strings.Join(p.Usernames, ",") != "alice" || !p.More {
		t.Fatalf("page 1: %+v", p)
	}
	if adminDo(t, ts, "GET", "/api/online?limit=1&after=alice", "", &p); strings.Join(p.Usernames, ",") != "bob" || p.More {
		t.Fatalf("page 2: %+v", p)
	}
	var one struct {
		Username    string `json:"username"`
		Connections int    `json:"connections"`
	}
	if adminDo(t, ts, "GET", "/api/online?username=alice", "", &one); one.Username != "alice" || one.Connections != 2 {
		t.Fatalf("alice online: %+v", one)
	}

	var d struct {
		Disconnected int `json:"disconnected"`
	}
	if code := adminDo(t, ts, "POST", "/api/disconnect", `{"username":"alice","ban":60}`, &d); code != 200 || d.Disconnected != 2 {
		t.Fatalf("disconnect: %d %+v", code, d)
	}
	for _, c := range []*websocket.Conn{a1, a2} {
		if ce := closeOf(t, c, nil); ce.Code != 4002 || ce.Text != "disconnected by the server" {
			t.Fatalf("alice closed %d %q", ce.Code, ce.Text)
		}
	}
	if got := dialStatus(t, ts.wsURL+"?token="+idToken(t, "alice", time.Hour), testOrigin); got != http.StatusForbidden {
		t.Fatalf("banned alice upgrade: %d, want 403", got)
	}
	if code, body := publish(t, ts.adminURL, testKey, `{"eventType":1,"username":"bob"}`); code != 202 {
		t.Fatal(code, body)
	}
	if got := read(t, b); got != `{"eventType":1,"username":"bob"}` {
		t.Fatalf("bob: %s", got)
	}
	waitFor(t, 5*time.Second, "alice gone", func() bool {
		adminDo(t, ts, "GET", "/api/online?username=alice", "", &one)
		return one.Connections == 0
	})

	for _, bad := range []string{`{}`, `{"username":""}`, `{"username":"x","ban":-1}`, `{"username":1}`, `{"username":"x","extra":1}`, `[`} {
		if code := adminDo(t, ts, "POST", "/api/disconnect", bad, nil); code != http.StatusBadRequest {
			t.Errorf("disconnect %s: %d, want 400", bad, code)
		}
	}
}

// After a reload replaces socketApiKey, backends connected with the old
// key are closed with 4003.
func TestKeyRotationClosesBackends(t *testing.T) {
	ts := startServer(t, nil)
	be := dialBackend(t, ts.wsURL, testKey)
	client := dial(t, ts.wsURL, testOrigin)
	cfg := ts.Config()
	cfg.APIKey = "rotated-key"
	if _, _, err := ts.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if ce := closeOf(t, be, nil); ce.Code != 4003 || ce.Text != "key rotated" {
		t.Fatalf("backend closed %d %q, want 4003", ce.Code, ce.Text)
	}
	send(t, client, `{"eventType":10,"message":"still here"}`)
	if got := read(t, client); got != `{"eventType":10,"message":"still here"}` {
		t.Fatal(got)
	}
	waitFor(t, 5*time.Second, "the rotation counted", func() bool { return ts.Stats().KeyRotated == 1 })
}

// A client that has its 101 is online: GET /api/online counts it even
// while the broker's handler is held right after writing the 101 (the
// username was counted after that write, so presence could miss a user
// whose client was already connected; seen once in a cluster test).
func TestOnlineFromIts101(t *testing.T) {
	ts := startIdentityServer(t, nil)
	release := make(chan struct{})
	var once sync.Once
	hook := func() { once.Do(func() { <-release }) }
	testHookSent101.Store(&hook)
	t.Cleanup(func() { testHookSent101.Store(nil) })
	dial(t, ts.wsURL+"?token="+idToken(t, "alice", time.Hour), testOrigin) // held in the hook
	var one struct {
		Connections int `json:"connections"`
	}
	code := adminDo(t, ts, "GET", "/api/online?username=alice", "", &one)
	close(release)
	if code != 200 || one.Connections != 1 {
		t.Fatalf("online while alice's handshake is held: %d %+v", code, one)
	}
}
