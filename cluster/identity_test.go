package cluster

import (
	"encoding/json"
	"errors"

	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/webinate/broker/auth"
	"github.com/webinate/broker/broker"
)

const idSecret = "cluster identity secret, long enough for HS256"

func userToken(t *testing.T, user string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(idSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// adminJSON sends an admin request to n with the key and decodes the answer.
func adminJSON(t *testing.T, n *node, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, n.adminURL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %d: %v", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode
}

func dialUser(t *testing.T, n *node, user string) *websocket.Conn {
	t.Helper()
	return dial(t, n.wsURL+"?token="+userToken(t, user))
}

func closeCode(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("read: %v, want a close frame", err)
			}
			return ce.Code
		}
	}
}

// POST /api/disconnect on node A closes alice's sockets on A and B with
// 4002 and bans her on both; presence on either node counts the whole
// cluster, users on two nodes once.
func TestDisconnectAndPresenceSpanNodes(t *testing.T) {
	d := startNATS(t)
	jwtOn := func(c *broker.Config) { c.Auth = auth.Config{HS256Secret: idSecret} }
	a := startNode(t, d, jwtOn, nil)
	b := startNode(t, d, jwtOn, nil)
	waitFor(t, 10*time.Second, "the nodes know each other", func() bool {
		return len(a.bus.members.live(time.Now())) == 1 && len(b.bus.members.live(time.Now())) == 1
	})
	aliceA := dialUser(t, a, "alice")
	aliceB := dialUser(t, b, "alice")
	bob := dialUser(t, b, "bob")
	dial(t, a.wsURL) // anonymous
	joined(t, a, 2)
	joined(t, b, 2)

	var p struct {
		broker.Presence
		Partial bool `json:"partial"`
	}
	for _, n := range []*node{a, b} {
		if adminJSON(t, n, "GET", "/api/online", "", &p); p.Users != 2 || p.Connections != 4 || strings.Join(p.Usernames, ",") != "alice,bob" || p.Partial {
			t.Fatalf("presence on %s: %+v", n.wsURL, p)
		}
	}
	var one struct {
		Connections int  `json:"connections"`
		Partial     bool `json:"partial"`
	}
	if adminJSON(t, b, "GET", "/api/online?username=alice", "", &one); one.Connections != 2 || one.Partial {
		t.Fatalf("alice online: %+v", one)
	}

	var dis struct {
		Disconnected int  `json:"disconnected"`
		Partial      bool `json:"partial"`
	}
	if code := adminJSON(t, a, "POST", "/api/disconnect", `{"username":"alice","ban":60}`, &dis); code != 200 || dis.Disconnected != 2 || dis.Partial {
		t.Fatalf("disconnect: %d %+v", code, dis)
	}
	for _, c := range []*websocket.Conn{aliceA, aliceB} {
		if code := closeCode(t, c); code != 4002 {
			t.Fatalf("alice closed with %d, want 4002", code)
		}
	}
	for _, n := range []*node{a, b} {
		_, resp, err := websocket.DefaultDialer.Dial(n.wsURL+"?token="+userToken(t, "alice"), http.Header{"Origin": {"http://localhost"}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("banned alice on %s: %v %v, want 403", n.wsURL, err, resp)
		}
	}
	send(t, bob, `{"eventType":10,"message":"bob stays"}`)
	if got := read(t, bob); got != `{"eventType":10,"message":"bob stays"}` {
		t.Fatal(got)
	}
}

// A node that does not answer makes the answer partial, within the
// timeout: a node that stopped is forgotten only after memberTTL.
func TestQueryPartialWhenANodeIsSilent(t *testing.T) {
	d := startNATS(t)
	a := startNode(t, d, nil, nil)
	b := startNode(t, d, nil, nil)
	waitFor(t, 10*time.Second, "the nodes know each other", func() bool {
		return len(a.bus.members.live(time.Now())) == 1
	})
	// b stops answering but is still a member for a (its announcement is
	// renewed by hand below). Closing its NATS connection is synchronous:
	// from here on nothing of b's reaches the server (Drain would let a
	// question through while it drains).
	b.bus.nc.Close()
	a.bus.members.mu.Lock()
	for id := range a.bus.members.seen {
		a.bus.members.seen[id] = time.Now()
	}
	a.bus.members.mu.Unlock()
	var p struct {
		Partial bool `json:"partial"`
	}
	start := time.Now()
	if adminJSON(t, a, "GET", "/api/online", "", &p); !p.Partial {
		t.Fatalf("presence with a silent node: %+v, want partial", p)
	}
	if e := time.Since(start); e < time.Second/2 {
		t.Fatalf("answered after %v: did not wait for the silent node", e)
	}

}
