package peerapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// Listeners are a peer's two HTTP servers: the public one, whose handler
// upgrades (and hijacks) WebSocket requests, and the admin one. Embedded
// in a peer's Server, they give it Addr and AdminAddr.
type Listeners struct {
	mu                sync.Mutex
	public, admin     *http.Server
	publicLn, adminLn net.Listener
}

// Listen opens cfg's two addresses and serves public and admin on them
// in the background. It may be called once.
func (l *Listeners) Listen(cfg Config, public, admin http.Handler) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.public != nil {
		return errors.New("already started")
	}
	pl, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	al, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		_ = pl.Close()
		return err
	}
	l.public = &http.Server{Handler: public, ReadHeaderTimeout: 10 * time.Second}
	l.admin = &http.Server{Handler: admin, ReadHeaderTimeout: 10 * time.Second}
	l.publicLn, l.adminLn = pl, al
	go func() { _ = l.public.Serve(pl) }()
	go func() { _ = l.admin.Serve(al) }()
	return nil
}

// Addr is the bound public address (valid after Listen).
func (l *Listeners) Addr() string { return l.publicLn.Addr().String() }

// AdminAddr is the bound admin address (valid after Listen).
func (l *Listeners) AdminAddr() string { return l.adminLn.Addr().String() }

// Shutdown stops both servers (the admin one first, so no publish starts
// after it) and reports whether they had been started. Hijacked
// connections are not theirs: the peer closes its clients itself.
func (l *Listeners) Shutdown(ctx context.Context) bool {
	l.mu.Lock()
	public, admin := l.public, l.admin
	l.mu.Unlock()
	if public == nil {
		return false
	}
	_ = admin.Shutdown(ctx)
	_ = public.Shutdown(ctx)
	return true
}

// Wait waits for wg or ctx, whichever ends first: a peer's Shutdown
// waiting for its connections' goroutines.
func Wait(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
