package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/webinate/broker/auth"
	"github.com/webinate/broker/broker"
)

const testJWTSecret = "bench-presence-secret"

// startJWTBroker runs a broker that identifies clients by HS256 JWT.
func startJWTBroker(t *testing.T) target {
	return startBrokerWith(t, func(c *broker.Config) {
		c.Auth = auth.Config{HS256Secret: testJWTSecret, Required: true}
	})
}

func presenceConfig(tg target, admins ...string) PresenceConfig {
	return PresenceConfig{
		Addrs: []string{tg.addr}, AdminAddrs: admins, Key: tg.key, Secret: []byte(testJWTSecret),
		Conns: 200, Users: 20, Calls: 5, Sources: 4, Idle: 100 * time.Millisecond,
		PIDs: []NamedPID{{Name: "broker", PID: os.Getpid()}}, Timeout: 60 * time.Second,
	}
}

// 200 connections of 20 users (JWT sub, round robin): the broker counts
// them all, GET /api/online and ?username= answer what the harness holds
// on every call, and the calls' times and the broker's CPU are reported.
func TestPresence(t *testing.T) {
	tg := startJWTBroker(t)
	res, err := RunPresence(context.Background(), presenceConfig(tg, tg.adminAddr))
	if err != nil {
		t.Fatalf("RunPresence: %v (%+v)", err, res)
	}
	t.Logf("presence: %+v", res)
	if !res.OK() || res.Connected != 200 || res.Failed != 0 || !res.Settled || len(res.Errors) != 0 {
		t.Fatalf("presence not met: %+v", res)
	}
	for i, kind := range []string{PresenceKindOnline, PresenceKindUsername} {
		ph := res.Phases[i]
		if ph.Kind != kind || ph.Calls != 5 || ph.Latency.Count != 5 || ph.Nodes[0].Calls != 5 || ph.Seconds <= 0 {
			t.Errorf("%s phase: %+v", kind, ph)
		}
		checkLatency(t, ph.Latency)
		if len(ph.CPU) != 1 || ph.CPU[0].PID != os.Getpid() || ph.CPU[0].Seconds < 0 {
			t.Errorf("%s CPU: %+v", kind, ph.CPU)
		}
	}
	if len(res.Procs) != 1 || res.Procs[0].RSSBytes <= 0 || res.Procs[0].Error != "" || res.IdleSeconds <= 0 {
		t.Errorf("procs: %+v idle %v", res.Procs, res.IdleSeconds)
	}
}

// The checks are not vacuous: a second, unrelated broker asked the same
// questions answers none of them right (it holds none of the
// connections), and every one of its answers is counted wrong, while the
// first broker's are all right.
func TestPresenceCountsWrongAnswers(t *testing.T) {
	tg := startJWTBroker(t)
	other := startJWTBroker(t)
	cfg := presenceConfig(tg, tg.adminAddr, other.adminAddr)
	cfg.Settle = 300 * time.Millisecond // the other never settles
	res, err := RunPresence(context.Background(), cfg)
	if err != nil {
		t.Fatalf("RunPresence: %v", err)
	}
	if res.OK() || res.Settled || res.Connected != 200 {
		t.Fatalf("a node holding nothing passed: %+v", res)
	}
	for _, ph := range res.Phases {
		if ph.Nodes[0].Wrong != 0 || ph.Nodes[1].Wrong != 5 || ph.Wrong != 5 || ph.Failed != 0 {
			t.Errorf("%s: wrong answers per node %d, %d (want 0, 5)", ph.Kind, ph.Nodes[0].Wrong, ph.Nodes[1].Wrong)
		}
	}
	if len(res.Errors) == 0 || !strings.Contains(strings.Join(res.Errors, "\n"), other.adminAddr) {
		t.Errorf("errors do not name the wrong node: %v", res.Errors)
	}
}

// Bad settings are refused with a message naming the value.
func TestPresenceValidation(t *testing.T) {
	ok := PresenceConfig{Addrs: []string{"127.0.0.1:1"}, AdminAddrs: []string{"127.0.0.1:2"}, Key: "k", Secret: []byte("s"), Conns: 10, Users: 5}
	for _, tc := range []struct {
		change func(*PresenceConfig)
		want   string
	}{
		{func(c *PresenceConfig) { c.Users = 11 }, "11 users for 10 connections"},
		{func(c *PresenceConfig) { c.Secret = nil }, "JWT secret"},
		{func(c *PresenceConfig) { c.AdminAddrs = []string{"10.0.0.1:8081"} }, "10.0.0.1:8081"},
		{func(c *PresenceConfig) { c.Calls = -1 }, "calls -1"},
		{func(c *PresenceConfig) { c.Path = "x" }, `path "x"`},
	} {
		cfg := ok
		tc.change(&cfg)
		if _, err := RunPresence(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v, want %q", err, tc.want)
		}
	}
	if _, err := ParseNamedPIDs("A=12,34"); err != nil {
		t.Error(err)
	}
	if p, _ := ParseNamedPIDs("A=12,34"); len(p) != 2 || p[0] != (NamedPID{"A", 12}) || p[1] != (NamedPID{"34", 34}) {
		t.Errorf("parsed %+v", p)
	}
	if _, err := ParseNamedPIDs("A=x"); err == nil || !strings.Contains(err.Error(), `"A=x"`) {
		t.Errorf("bad pid: %v", err)
	}
}
