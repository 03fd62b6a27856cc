//go:build unix

package broker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestReusePortBindsTwice: with ReusePort a second broker binds the same
// public and admin addresses; without it, it cannot. The swap itself is
// tested with real processes in cmd/broker.
func TestReusePortBindsTwice(t *testing.T) {
	a := startServer(t, func(c *Config) { c.ReusePort = true })
	second := func(reuse bool) (*Server, error) {
		s, err := New(Config{ListenAddr: a.Addr(), AdminAddr: a.AdminAddr(), ApprovedOrigins: []string{"localhost"}, APIKey: testKey, ReusePort: reuse}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		return s, s.Start()
	}
	if _, err := second(false); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("without ReusePort: %v, want address already in use", err)
	}
	b, err := second(true)
	if err != nil {
		t.Fatalf("with ReusePort: %v", err)
	}
	// Shutting A down hands over: B alone takes the new connections.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		dial(t, a.wsURL, testOrigin)
	}
	waitFor(t, 2*time.Second, "B has the clients", func() bool { return b.Stats().Connections == 10 })
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
