package interop

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/webinate/broker/auth"
	"github.com/webinate/broker/broker"
	"github.com/webinate/broker/internal/testutil"
)

// nodeEvent is one line that node/client.js writes.
type nodeEvent struct {
	Event     string `json:"event"` // open, message, refused, error, close
	EventType int    `json:"eventType"`
	Data      string `json:"data"`
	Status    int    `json:"status"`
	Code      int    `json:"code"`
	Message   string `json:"message"`
}

// nodeClient is node/client.js running against the broker.
type nodeClient struct {
	t      *testing.T
	stdin  io.WriteCloser
	events chan nodeEvent
	done   chan struct{} // closed when node has exited
	err    error         // how it exited, set before done is closed
}

// startNode runs node/client.js on url with origin ("" for none). It
// skips (or fails, under CI=true) when node or the ws package is missing.
func startNode(t *testing.T, url, origin string) *nodeClient {
	t.Helper()
	node := lookPath("node", "nodejs")
	if node == "" {
		missing(t, "node is not on PATH (apt-get install nodejs)")
	}
	if _, err := os.Stat(filepath.Join("node", "node_modules", "ws", "package.json")); err != nil {
		missing(t, "the ws package is not installed in interop/node/node_modules (npm ci --prefix interop/node)")
	}
	args := []string{filepath.Join("node", "client.js"), url}
	if origin != "" {
		args = append(args, origin)
	}
	cmd := exec.Command(node, args...)
	cmd.Stderr = testutil.LogWriter{T: t}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("node: %v", err)
	}
	n := &nodeClient{t: t, stdin: stdin, events: make(chan nodeEvent, 64), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e nodeEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = nodeEvent{Event: "bad line", Message: sc.Text()}
			}
			n.events <- e
		}
		close(n.events)
		n.err = cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-n.done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	return n
}

// next returns the client's next event.
func (n *nodeClient) next() nodeEvent {
	n.t.Helper()
	select {
	case e, ok := <-n.events:
		if !ok {
			n.t.Fatal("node client exited")
		}
		return e
	case <-time.After(10 * time.Second):
		n.t.Fatal("no event from the node client within 10s")
	}
	return nodeEvent{}
}

// expect requires the next event to be want.
func (n *nodeClient) expect(want nodeEvent) {
	n.t.Helper()
	if got := n.next(); got != want {
		n.t.Fatalf("node client: got %+v, want %+v", got, want)
	}
}

// expectMessage requires the next event to be the message data.
func (n *nodeClient) expectMessage(data string) {
	n.t.Helper()
	var e struct {
		EventType int `json:"eventType"`
	}
	_ = json.Unmarshal([]byte(data), &e)
	n.expect(nodeEvent{Event: "message", EventType: e.EventType, Data: data})
}

// close ends stdin, so the client closes with 1000, and waits for node to
// exit.
func (n *nodeClient) close() {
	n.t.Helper()
	_ = n.stdin.Close()
	n.expect(nodeEvent{Event: "close", Code: 1000})
	select {
	case <-n.done:
		if n.err != nil {
			n.t.Fatalf("node exited: %v", n.err)
		}
	case <-time.After(5 * time.Second):
		n.t.Fatal("node did not exit")
	}
}

const snippetEcho = `{"eventType":10,"message":"Hello world?"}`

// TestNodeClient runs the docs/PROTOCOL.md client, on the ws package,
// against the broker in the original server's targeting mode.
func TestNodeClient(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	n := startNode(t, tb.wsURL, approvedOrigin)
	n.expect(nodeEvent{Event: "open"})
	n.expectMessage(snippetEcho)

	// An echo broadcast from another client.
	other := dial(t, tb.wsURL, approvedOrigin)
	bc := `{"eventType":10,"message":"to everyone","broadcast":true}`
	send(t, other, bc)
	n.expectMessage(bc)
	// A published event, byte for byte (whitespace included).
	ev := `{"eventType":1, "username":"bob"}`
	publish(t, tb, ev)
	n.expectMessage(ev)
	// A message the node client sends reaches the broker too.
	if _, err := io.WriteString(n.stdin, `{"eventType":10,"message":"from node","broadcast":true}`+"\n"); err != nil {
		t.Fatal(err)
	}
	n.expectMessage(`{"eventType":10,"message":"from node","broadcast":true}`)
	if got := read(t, other); got != bc {
		t.Fatalf("other client: %s", got)
	}
	if got := read(t, other); got != ev {
		t.Fatalf("other client: %s", got)
	}
	if got := read(t, other); got != `{"eventType":10,"message":"from node","broadcast":true}` {
		t.Fatalf("other client: %s", got)
	}

	// ws offers permessage-deflate by default and the broker accepts it:
	// a large event goes deflated and arrives intact; a large message
	// (over ws's 1 KiB threshold) comes compressed and is inflated.
	if c := tb.Stats().CompressedConnections; c != 1 {
		t.Fatalf("%d compressed connections, want the node client's", c)
	}
	big := `{"eventType":1,"username":"bob","rows":"` + strings.Repeat("compressible ", 200) + `"}`
	publish(t, tb, big)
	n.expectMessage(big)
	if got := read(t, other); got != big {
		t.Fatalf("other client: %.60s", got)
	}
	if st := tb.Stats(); st.DeflateWireBytes*2 > st.DeflatePlainBytes {
		t.Fatalf("%d bytes on the wire for %d plain: the big event did not go deflated", st.DeflateWireBytes, st.DeflatePlainBytes)
	}
	bigEcho := `{"eventType":10,"message":"` + strings.Repeat("from node ", 200) + `"}`
	if _, err := io.WriteString(n.stdin, bigEcho+"\n"); err != nil {
		t.Fatal(err)
	}
	n.expectMessage(bigEcho)
	if st := tb.Stats(); st.Inflated < 1 {
		t.Fatalf("%d messages inflated: node's large message did not come compressed", st.Inflated)
	}
	n.close()
}

// TestNodeClientTargeted identifies the node client with a JWT in the
// query string (targeting: user): it gets its own user's events and
// untargeted ones, not another user's.
func TestNodeClientTargeted(t *testing.T) {
	t.Parallel()
	const secret = "interop-secret"
	tb := startBroker(t, func(c *broker.Config) {
		c.Targeting = broker.TargetUser
		c.Auth = auth.Config{HS256Secret: secret}
	})
	token := func(sub, key string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	n := startNode(t, tb.wsURL+"?token="+token("alice", secret), approvedOrigin)
	n.expect(nodeEvent{Event: "open"})
	n.expectMessage(snippetEcho)
	bob := dial(t, tb.wsURL+"?token="+token("bob", secret), approvedOrigin)

	// One request, in order: bob's event, alice's, one for everyone. Each
	// connection gets publishes in order, so alice's first message shows
	// that bob's was not delivered to her.
	toBob := `{"eventType":1,"username":"bob"}`
	toAlice := `{"eventType":1,"username":"alice"}`
	toAll := `{"eventType":6,"file":"f.txt"}`
	publish(t, tb, "["+toBob+","+toAlice+","+toAll+"]")
	n.expectMessage(toAlice)
	n.expectMessage(toAll)
	if got := read(t, bob); got != toBob {
		t.Fatalf("bob got %s, want %s", got, toBob)
	}
	if got := read(t, bob); got != toAll {
		t.Fatalf("bob got %s, want %s", got, toAll)
	}
	n.close()

	// A token signed with another key is refused at the handshake.
	bad := startNode(t, tb.wsURL+"?token="+token("alice", "wrong"), approvedOrigin)
	bad.expect(nodeEvent{Event: "refused", Status: 401})
}

// TestNodeClientRefused: without an approved Origin the ws client gets 403
// and never opens.
func TestNodeClientRefused(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	for _, origin := range []string{"", "http://evil.example", "http://127.0.0.1"} {
		n := startNode(t, tb.wsURL, origin)
		n.expect(nodeEvent{Event: "refused", Status: 403})
	}
	if got := tb.Stats().RefusedOrigin; got != 3 {
		t.Fatalf("refusedOrigin %d, want 3", got)
	}
	if got := tb.Stats().Accepted; got != 0 {
		t.Fatalf("accepted %d, want 0", got)
	}
}
