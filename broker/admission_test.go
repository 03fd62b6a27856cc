package broker

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/webinate/broker/auth"
)

// upgradeResp sends an upgrade request with the given extra headers (and
// query, e.g. "?token=...") on a new socket and returns the response with
// its body read, and the socket.
func upgradeResp(t testing.TB, addr, query string, headers map[string]string) (*http.Response, string, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	var key [16]byte
	_, _ = rand.Read(key[:])
	var b strings.Builder
	fmt.Fprintf(&b, "GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n",
		query, addr, base64.StdEncoding.EncodeToString(key[:]))
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("upgrade response: %v", err)
	}
	var body []byte
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ = io.ReadAll(resp.Body)
	}
	return resp, string(body), c
}

// expectEOF reads c until the server closes it; a read timeout (the
// socket is still open after 5 s) fails the test.
func expectEOF(t testing.TB, c net.Conn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: socket still open after 5s", what)
		}
		return // EOF or reset: closed by the server
	}
}

// noLocal makes 127.0.0.1 count as a public address for the test.
func noLocal(t *testing.T) {
	testHookNoLocal.Store(true)
	t.Cleanup(func() { testHookNoLocal.Store(false) })
}

// A refused request (here a plain GET) gets its HTTP answer, marked
// Connection: close, and then the socket is closed; the handshake timeout
// is a minute, so only the refusal can have closed it.
func TestRefusedRequestClosesSocket(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.HandshakeTimeout = time.Minute })
	for _, req := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n", // not an upgrade: 426
		"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://evil.example\r\n\r\n", // 403
	} {
		c, err := net.Dial("tcp", ts.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode < 400 || !strings.Contains(string(body), `"error"`) {
			t.Fatalf("status %d body %q, want an HTTP error", resp.StatusCode, body)
		}
		if !resp.Close {
			t.Fatalf("%d answered without Connection: close (%v)", resp.StatusCode, resp.Header)
		}
		expectEOF(t, c, fmt.Sprintf("after a %d", resp.StatusCode))
	}
}

// A keep-alive client that sends a plain GET every fifth of the handshake
// timeout never upgrades; nbio used to re-arm the handshake deadline after
// each answer, so such a socket lived for ever. It is closed (at the first
// refusal now, and in any case by the deadline set at accept).
func TestKeepAliveRequestsDoNotOutliveHandshakeTimeout(t *testing.T) {
	const timeout = 500 * time.Millisecond
	ts := startServer(t, func(c *Config) { c.HandshakeTimeout = timeout })
	c, err := net.Dial("tcp", ts.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(timeout / 5)
		defer t.Stop()
		for {
			if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	// Ten handshake timeouts: on the old code the socket stayed open
	// throughout, answering every request.
	_ = c.SetReadDeadline(time.Now().Add(10 * timeout))
	buf := make([]byte, 4096)
	var got int
	for {
		n, err := c.Read(buf)
		got += n
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("socket sending keep-alive GETs still open after %v (%d bytes of answers)", 10*timeout, got)
		}
		break
	}
	if got == 0 {
		t.Fatal("closed without an HTTP answer")
	}
}

// Origin headers over origin.MaxLen are refused with a 403 that says so.
func TestOriginTooLongRefused(t *testing.T) {
	ts := startServer(t, nil)
	long := "http://localhost/" + strings.Repeat("a", 2048) // matches "localhost"
	resp, body, _ := upgradeResp(t, ts.Addr(), "", map[string]string{"Origin": long})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "longer than the 1024 accepted") {
		t.Fatalf("%d-byte Origin: %d %s", len(long), resp.StatusCode, body)
	}
	if st := ts.Stats(); st.RefusedOrigin != 1 {
		t.Fatalf("refusedOrigin %d, want 1", st.RefusedOrigin)
	}
	if n, _ := ts.origins.Load().CacheUsage(); n != 0 {
		t.Fatalf("%d origins cached", n)
	}
	// A backend needs no Origin, so a long one does not matter there.
	if resp, body, _ := upgradeResp(t, ts.Addr(), "", map[string]string{"Origin": long, "users-api-key": testKey}); resp.StatusCode != 101 {
		t.Fatalf("backend with a long Origin: %d %s", resp.StatusCode, body)
	}
}

func TestLoopbackAndSourceKeys(t *testing.T) {
	for _, tc := range []struct {
		remote   string
		loopback bool
		source   string // "" = not capped
	}{
		{"127.0.0.1:5000", true, ""},
		{"127.8.9.10:5000", true, ""},
		{"[::1]:5000", true, ""},
		{"[::ffff:127.0.0.1]:5000", true, ""},
		{"10.1.2.3:5000", false, ""},
		{"192.168.0.7:5000", false, ""},
		{"[fd00::1]:5000", false, ""},
		{"[fe80::1%eth0]:5000", false, ""},
		{"169.254.1.1:5000", false, ""},
		{"203.0.113.9:5000", false, "203.0.113.9"},
		{"[::ffff:203.0.113.9]:5000", false, "203.0.113.9"},
		{"[2001:db8:1:2:aaaa::1]:5000", false, "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::2]:6000", false, "2001:db8:1:2::/64"},
		{"[2001:db8:1:3::1]:5000", false, "2001:db8:1:3::/64"},
	} {
		if got := remoteLoopback(tc.remote); got != tc.loopback {
			t.Errorf("remoteLoopback(%q) = %v, want %v", tc.remote, got, tc.loopback)
		}
		if got := sourceKey(tc.remote); got != tc.source {
			t.Errorf("sourceKey(%q) = %q, want %q", tc.remote, got, tc.source)
		}
	}
	for addr, want := range map[string]bool{
		"127.0.0.1:8081": true, "[::1]:8081": true, "localhost:8081": true, "127.1.2.3:0": true,
		":8081": false, "0.0.0.0:8081": false, "[::]:8081": false, "10.0.0.1:8081": false,
		"admin.example:8081": false, "nope": false,
	} {
		if got := loopbackHost(addr); got != want {
			t.Errorf("loopbackHost(%q) = %v, want %v", addr, got, want)
		}
	}
	// What the test hook changes: loopback is then a public address.
	testHookNoLocal.Store(true)
	defer testHookNoLocal.Store(false)
	if remoteLoopback("127.0.0.1:1") || sourceKey("127.0.0.1:1") != "127.0.0.1" || sourceKey("10.1.2.3:1") != "10.1.2.3" {
		t.Fatal("testHookNoLocal not applied")
	}
}

// With the example socketApiKey, a backend upgrade is accepted from
// loopback only; from anywhere else it gets 403 naming the fix.
func TestExampleKeyBackendLoopbackOnly(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.APIKey = ExampleAPIKey })
	if resp, body, _ := upgradeResp(t, ts.Addr(), "", map[string]string{"users-api-key": ExampleAPIKey}); resp.StatusCode != 101 {
		t.Fatalf("example key from loopback: %d %s", resp.StatusCode, body)
	}
	noLocal(t) // from here on 127.0.0.1 is "another host"
	resp, body, c := upgradeResp(t, ts.Addr(), "", map[string]string{"users-api-key": ExampleAPIKey})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("example key from a non-loopback address: %d %s, want 403", resp.StatusCode, body)
	}
	for _, want := range []string{ExampleAPIKey, "loopback", "websocket.socketApiKey", "-api-key-file", "BROKER_SOCKET_API_KEY"} {
		if !strings.Contains(body, want) {
			t.Errorf("body %s does not name %q", body, want)
		}
	}
	expectEOF(t, c, "after the 403")
	// A wrong key is still a 401, and browsers are not affected.
	if resp, _, _ := upgradeResp(t, ts.Addr(), "", map[string]string{"users-api-key": "nope"}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong key: %d", resp.StatusCode)
	}
	dial(t, ts.wsURL, testOrigin)
	if st := ts.Stats(); st.RefusedExample != 1 || st.RefusedKey != 1 {
		t.Fatalf("refusedExampleKey %d refusedKey %d, want 1 and 1", st.RefusedExample, st.RefusedKey)
	}
	resp, metrics := adminGet(t, ts.adminURL, "/metrics", ExampleAPIKey)
	if resp.StatusCode != 200 || !strings.Contains(metrics, `broker_handshakes_refused_total{reason="example_key"} 1`) {
		t.Fatalf("/metrics: %d, no example_key refusal counted", resp.StatusCode)
	}
	// A real key (reloaded live) lifts the restriction.
	cfg := ts.Config()
	cfg.APIKey = "a-real-secret"
	if _, _, err := ts.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	dialBackend(t, ts.wsURL, "a-real-secret")
}

func TestExampleKeyAdminMustBeLoopback(t *testing.T) {
	base := Config{ListenAddr: "127.0.0.1:0", APIKey: ExampleAPIKey}
	for addr, ok := range map[string]bool{
		"127.0.0.1:8081": true, "localhost:0": true, "[::1]:8081": true, "-": true,
		"0.0.0.0:8081": false, ":8081": false, "[::]:8081": false, "192.0.2.1:8081": false,
	} {
		cfg := base
		cfg.AdminAddr = addr
		err := cfg.withDefaults().Validate()
		if ok != (err == nil) {
			t.Errorf("admin %q with the example key: %v", addr, err)
			continue
		}
		if err != nil {
			for _, want := range []string{addr, ExampleAPIKey, "BROKER_SOCKET_API_KEY"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
		}
	}
	cfg := base
	cfg.AdminAddr, cfg.APIKey = "0.0.0.0:8081", "a-real-secret"
	if err := cfg.withDefaults().Validate(); err != nil {
		t.Fatalf("non-loopback admin with a real key: %v", err)
	}
}

// dialAdmit upgrades with an approved origin (and a token, if any) and
// returns the client, or nil and the refusal.
func dialAdmit(t *testing.T, ts *testServer, token string) (*websocket.Conn, *http.Response) {
	t.Helper()
	u := ts.wsURL
	if token != "" {
		u += "?token=" + token
	}
	c, resp, err := websocket.DefaultDialer.Dial(u, http.Header{"Origin": {testOrigin}})
	if err != nil {
		if resp == nil {
			t.Fatal(err)
		}
		return nil, resp
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, resp
}

// refusedWith checks a refusal: status, a Retry-After of whole seconds and
// a JSON body naming why.
func refusedWith(t *testing.T, resp *http.Response, status int, bodyHas string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d", resp.StatusCode, status)
	}
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), bodyHas) {
		t.Fatalf("body %s does not say %q", body, bodyHas)
	}
}

func TestMaxConnsPerIP(t *testing.T) {
	// Loopback is not capped: the tests and benchmarks open thousands.
	ts := startServer(t, func(c *Config) { c.MaxConnsPerIP = 1 })
	dial(t, ts.wsURL, testOrigin)
	dial(t, ts.wsURL, testOrigin)
	if st := ts.Stats(); st.RefusedPerIP != 0 {
		t.Fatalf("loopback refused: %+v", st)
	}

	noLocal(t)
	ts = startServer(t, func(c *Config) { c.MaxConnsPerIP = 3 })
	var conns []*websocket.Conn
	for i := 0; i < 3; i++ {
		c, resp := dialAdmit(t, ts, "")
		if c == nil {
			t.Fatalf("connection %d: %d", i, resp.StatusCode)
		}
		conns = append(conns, c)
	}
	_, resp := dialAdmit(t, ts, "")
	if resp.StatusCode == 101 {
		t.Fatal("4th connection from one address accepted")
	}
	refusedWith(t, resp, http.StatusTooManyRequests, "max-conns-per-ip 3")
	// Backends are not counted against it.
	dialBackend(t, ts.wsURL, testKey)
	// A closed connection gives its slot back.
	_ = conns[0].Close()
	waitFor(t, 5*time.Second, "slot released", func() bool { return ts.perIP.count("127.0.0.1") == 2 })
	dial(t, ts.wsURL, testOrigin)
	// The cap changes live.
	cfg := ts.Config()
	cfg.MaxConnsPerIP = 5
	if applied, _, err := ts.Reload(cfg); err != nil || len(applied) != 1 || applied[0] != "maxConnsPerIP" {
		t.Fatalf("reload: %v %v", applied, err)
	}
	dial(t, ts.wsURL, testOrigin)
	if st := ts.Stats(); st.RefusedPerIP != 1 {
		t.Fatalf("refusedPerIP %d, want 1", st.RefusedPerIP)
	}
	if v := metricValue(scrape(t, ts), "broker_handshakes_refused_total", "reason", "per_ip"); v != 1 {
		t.Fatalf("per_ip metric %v", v)
	}
	// Refusals later in the handshake give the slot back too: a bad
	// filter (400) after the per-IP count was taken.
	if resp, _, _ := upgradeResp(t, ts.Addr(), "?events=0", map[string]string{"Origin": testOrigin}); resp.StatusCode != 400 {
		t.Fatalf("bad filter: %d", resp.StatusCode)
	}
	if n := ts.perIP.count("127.0.0.1"); n != 4 {
		t.Fatalf("count %d after a refused upgrade, want 4", n)
	}
}

func TestMaxConnsPerUser(t *testing.T) {
	m := jwtModes(t)[0] // HS256
	noLocal(t)
	ts := startServer(t, func(c *Config) { c.Auth = m.cfg; c.MaxConnsPerUser = 2 })
	alice := m.sign(claims("alice", time.Hour))
	a1, _ := dialAdmit(t, ts, alice)
	a2, _ := dialAdmit(t, ts, alice)
	if a1 == nil || a2 == nil {
		t.Fatal("alice's first two connections refused")
	}
	_, resp := dialAdmit(t, ts, alice)
	if resp.StatusCode == 101 {
		t.Fatal("alice's 3rd connection accepted")
	}
	refusedWith(t, resp, http.StatusTooManyRequests, "max-conns-per-user 2")
	// Other users and anonymous clients are not affected.
	if c, _ := dialAdmit(t, ts, m.sign(claims("bob", time.Hour))); c == nil {
		t.Fatal("bob refused")
	}
	for i := 0; i < 3; i++ {
		if c, _ := dialAdmit(t, ts, ""); c == nil {
			t.Fatal("anonymous client refused")
		}
	}
	_ = a1.Close()
	waitFor(t, 5*time.Second, "alice's slot released", func() bool { return ts.perUser.count("alice") == 1 })
	if c, _ := dialAdmit(t, ts, alice); c == nil {
		t.Fatal("alice refused after closing one")
	}
	if st := ts.Stats(); st.RefusedPerUser != 1 {
		t.Fatalf("refusedPerUser %d, want 1", st.RefusedPerUser)
	}
	if v := metricValue(scrape(t, ts), "broker_handshakes_refused_total", "reason", "per_user"); v != 1 {
		t.Fatalf("per_user metric %v", v)
	}
	// The refused upgrade gave back the per-IP slot it had taken: every
	// open client from 127.0.0.1 is counted once (2 alice, bob, 3 anonymous).
	if n := ts.perIP.count("127.0.0.1"); n != 6 {
		t.Fatalf("per-IP count %d, want 6", n)
	}
}

func TestMaxAcceptRate(t *testing.T) {
	// A bucket of 3 that refills once every 1,000 s: the 4th upgrade in a
	// row is over the rate whatever the machine's speed.
	ts := startServer(t, func(c *Config) { c.MaxAcceptRate = 0.001; c.MaxAcceptBurst = 3 })
	for i := 0; i < 3; i++ {
		if c, resp := dialAdmit(t, ts, ""); c == nil {
			t.Fatalf("upgrade %d: %d", i, resp.StatusCode)
		}
	}
	_, resp := dialAdmit(t, ts, "")
	if resp.StatusCode == 101 {
		t.Fatal("4th upgrade accepted")
	}
	refusedWith(t, resp, http.StatusServiceUnavailable, "retry later")
	if n, _ := strconv.Atoi(resp.Header.Get("Retry-After")); n > 60 {
		t.Fatalf("Retry-After %d, want at most 60", n)
	}
	// Backends are not limited.
	dialBackend(t, ts.wsURL, testKey)
	if st := ts.Stats(); st.RefusedRate != 1 {
		t.Fatalf("refusedRate %d, want 1", st.RefusedRate)
	}
	if v := metricValue(scrape(t, ts), "broker_handshakes_refused_total", "reason", "accept_rate"); v != 1 {
		t.Fatalf("accept_rate metric %v", v)
	}
	// Live: off, then a new, full bucket of 1.
	cfg := ts.Config()
	cfg.MaxAcceptRate, cfg.MaxAcceptBurst = 0, 0
	if _, _, err := ts.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		dial(t, ts.wsURL, testOrigin)
	}
	cfg.MaxAcceptRate, cfg.MaxAcceptBurst = 0.001, 1
	if _, _, err := ts.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	dial(t, ts.wsURL, testOrigin)
	if _, resp := dialAdmit(t, ts, ""); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after reload to a bucket of 1: %d", resp.StatusCode)
	}
}

func TestAcceptRetryAfterSpread(t *testing.T) {
	cfg := Config{MaxAcceptRate: 100, MaxAcceptBurst: 1000} // 10 s to refill
	seen := map[string]bool{}
	for i := 0; i < 500; i++ {
		v := acceptRetryAfter(cfg)
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10 {
			t.Fatalf("Retry-After %q, want 1..10", v)
		}
		seen[v] = true
	}
	if len(seen) < 2 {
		t.Fatalf("Retry-After always %v: a storm would come back at once", seen)
	}
	if v := acceptRetryAfter(Config{MaxAcceptRate: 0.001, MaxAcceptBurst: 3}); v == "" {
		t.Fatal("empty Retry-After")
	} else if n, _ := strconv.Atoi(v); n < 1 || n > 60 {
		t.Fatalf("Retry-After %s, want 1..60", v)
	}
}

func TestAdmissionConfigValidate(t *testing.T) {
	base := Config{ListenAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"}
	for _, tc := range []struct {
		mut  func(*Config)
		want string // "" = valid
	}{
		{func(c *Config) { c.MaxConnsPerIP = -1 }, ""},
		{func(c *Config) { c.MaxConnsPerUser = -1 }, "max conns per user -1"},
		{func(c *Config) { c.MaxConnsPerUser = 5 }, "max conns per user 5: needs JWT"},
		{func(c *Config) { c.MaxConnsPerUser = 5; c.Auth = auth.Config{HS256Secret: "s"} }, ""},
		{func(c *Config) { c.MaxAcceptRate = -1 }, "max accept rate -1"},
		{func(c *Config) { c.MaxAcceptRate = math.NaN() }, "max accept rate NaN"},
		{func(c *Config) { c.MaxAcceptRate = math.Inf(1) }, "max accept rate +Inf"},
		{func(c *Config) { c.MaxAcceptRate = 10; c.MaxAcceptBurst = -2 }, "max accept burst -2"},
		{func(c *Config) { c.MaxAcceptRate = 0.5 }, ""},
	} {
		cfg := base
		tc.mut(&cfg)
		err := cfg.withDefaults().Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("want an error naming %q, got %v", tc.want, err)
		}
	}
	d := base.withDefaults()
	if d.MaxConnsPerIP != DefaultMaxConnsPerIP || d.MaxConnsPerUser != 0 || d.MaxAcceptRate != 0 {
		t.Fatalf("defaults: per IP %d, per user %d, accept rate %v", d.MaxConnsPerIP, d.MaxConnsPerUser, d.MaxAcceptRate)
	}
	if b := (Config{MaxAcceptRate: 0.5}).withDefaults().MaxAcceptBurst; b != 1 {
		t.Fatalf("default burst for 0.5/s: %d, want 1", b)
	}
	if b := (Config{MaxAcceptRate: 200}).withDefaults().MaxAcceptBurst; b != 200 {
		t.Fatalf("default burst for 200/s: %d, want 200", b)
	}
}

// The example key is named at start, with what it restricts and the fix.
func TestExampleKeyWarnsAtStart(t *testing.T) {
	for _, key := range []string{ExampleAPIKey, "a-real-secret"} {
		var log strings.Builder
		s, err := New(Config{ListenAddr: "127.0.0.1:0", AdminAddr: "-", APIKey: key}, zerolog.New(&syncWriter{w: &log}))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		_ = s.Shutdown(context.Background())
		warned := strings.Contains(log.String(), `"level":"warn"`) && strings.Contains(log.String(), "BROKER_SOCKET_API_KEY")
		if warned != (key == ExampleAPIKey) {
			t.Errorf("key %q: warned %v; log:\n%s", key, warned, log.String())
		}
	}
}

// syncWriter serialises writes from the broker's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
