//go:build linux

// broker patch: tests for PauseRead/ResumeRead (see PATCHES.md).

package nbio

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestPauseRead checks, in both epoll modes, that a paused connection
// delivers nothing to OnData, still flushes what it has to write, gets
// every byte sent meanwhile in order after ResumeRead, and still notices a
// peer that resets while paused.
func TestPauseRead(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  uint32
	}{{"LT", EPOLLLT}, {"ET", EPOLLET}} {
		t.Run(tc.name, func(t *testing.T) { testPauseRead(t, tc.mod) })
	}
}

func testPauseRead(t *testing.T, mod uint32) {
	g := NewEngine(Config{
		Network:  "tcp",
		Addrs:    []string{"127.0.0.1:0"},
		NPoller:  1,
		EpollMod: mod,
	})
	var (
		mu     sync.Mutex
		got    []byte
		opened = make(chan *Conn, 1)
		closed = make(chan error, 1)
	)
	g.OnOpen(func(c *Conn) { opened <- c })
	g.OnData(func(c *Conn, data []byte) {
		mu.Lock()
		got = append(got, data...)
		mu.Unlock()
	})
	g.OnClose(func(c *Conn, err error) { closed <- err })
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	defer g.Stop()

	peer, err := net.Dial("tcp", g.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	var c *Conn
	select {
	case c = <-opened:
	case <-time.After(5 * time.Second):
		t.Fatal("no OnOpen")
	}
	received := func() []byte {
		mu.Lock()
		defer mu.Unlock()
		return bytes.Clone(got)
	}
	waitFor := func(want []byte) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !bytes.Equal(received(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("OnData got %q, want %q", received(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}

	mustWrite(t, peer, "before;")
	waitFor([]byte("before;"))

	if err := c.PauseRead(); err != nil {
		t.Fatalf("PauseRead: %v", err)
	}
	if err := c.PauseRead(); err != nil { // idempotent
		t.Fatalf("PauseRead again: %v", err)
	}
	var sent []byte
	for i := 0; i < 100; i++ {
		b := []byte{'a' + byte(i%26)}
		mustWrite(t, peer, string(b))
		sent = append(sent, b...)
	}
	// A large write from the server while paused: most of it is left
	// pending in nbio (loopback buffers are smaller), and it must still be
	// flushed as the peer reads.
	out := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	if _, err := c.Write(out); err != nil {
		t.Fatalf("Write while paused: %v", err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	in := make([]byte, len(out))
	if _, err := io.ReadFull(peer, in); err != nil {
		t.Fatalf("reading the server's write while paused: %v", err)
	}
	if !bytes.Equal(in, out) {
		t.Fatal("the server's write arrived corrupted")
	}
	time.Sleep(50 * time.Millisecond)
	if r := received(); !bytes.Equal(r, []byte("before;")) {
		t.Fatalf("OnData got %q while paused", r[len("before;"):])
	}

	if err := c.ResumeRead(); err != nil {
		t.Fatalf("ResumeRead: %v", err)
	}
	mustWrite(t, peer, ";after")
	waitFor(append(append([]byte("before;"), sent...), ";after"...))

	// Paused again, the peer resets: the Conn must still be closed.
	if err := c.PauseRead(); err != nil {
		t.Fatalf("PauseRead: %v", err)
	}
	_ = peer.(*net.TCPConn).SetLinger(0)
	_ = peer.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("a paused Conn whose peer reset was not closed")
	}
	if err := c.ResumeRead(); err != nil {
		t.Fatalf("ResumeRead on a closed Conn: %v, want nil", err)
	}
}

func mustWrite(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}
