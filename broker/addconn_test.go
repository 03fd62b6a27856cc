package broker

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A process that the broker's process starts must not inherit client
// sockets: nbio's dup(2) clears close-on-exec, and an inherited copy keeps
// a closed socket's epoll registration alive, whose events then close an
// unrelated new connection that reuses the fd number (see addConn).
func TestClientSocketsCloseOnExec(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("skipped: needs /proc/self/fd (Linux)")
	}
	ts := startServer(t, nil)
	c := dial(t, ts.wsURL, testOrigin)
	dialRaw(t, ts.Addr())
	waitFor(t, 5*time.Second, "2 connections", func() bool { return ts.Stats().Connections == 2 })
	out, err := exec.Command("ls", "-l", "/proc/self/fd").CombinedOutput()
	if err != nil {
		t.Fatalf("ls: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "socket:") {
		t.Fatalf("a child process inherited sockets:\n%s", out)
	}
	// And the connections still work.
	send(t, c, `{"eventType":10,"message":"hi"}`)
	if got := read(t, c); got != `{"eventType":10,"message":"hi"}` {
		t.Fatalf("echo: %s", got)
	}
}
