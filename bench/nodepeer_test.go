package bench

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nodePeer is interop/node/peer.js, the ws-based peer of scripts'
// "node" target.
var nodePeer = filepath.Join("..", "interop", "node", "peer.js")

// freePort is a loopback port nothing listens on just now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// startNodePeer runs peer.js until the test ends. Without node or the ws
// package it skips (fails under CI=true, where scripts/test.sh installs
// both).
func startNodePeer(t *testing.T) target {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join("..", "interop", "node", "node_modules", "ws", "package.json"))
	}
	if err != nil {
		msg := "node peer: node or interop/node/node_modules missing (npm ci --prefix interop/node): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	port, admin := freePort(t), "127.0.0.1:"+freePort(t)
	cmd := exec.Command(node, nodePeer, "--port", port, "--admin", admin, "--key", testKey, "--origins", "localhost")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready, read := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Log(sc.Text())
			if strings.Contains(sc.Text(), "listening") {
				close(ready)
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		<-read // the pipe ends when node does; Wait must come after
		_ = cmd.Wait()
	})
	select {
	case <-ready:
	case <-read:
		t.Fatal("node peer exited before listening")
	case <-time.After(10 * time.Second):
		t.Fatal("node peer not listening after 10s")
	}
	return target{addr: "127.0.0.1:" + port, adminAddr: admin, key: testKey}
}

// The node peer serves what the everyday comparison and the echo runs
// use, and refuses a bad origin.
func TestNodePeer(t *testing.T) {
	tg := startNodePeer(t)
	testPeer(t, tg)
	t.Run("refused", func(t *testing.T) {
		cfg := tg.config(ScenarioConnect, 3)
		cfg.Origin = "http://evil.test"
		res, _ := Run(t.Context(), cfg)
		if res == nil || res.Connect.Connected != 0 || res.Connect.Errors["HTTP 403"] != 3 {
			t.Fatalf("bad origin: %+v", res)
		}
	})
}
