package broker

import (
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/webinate/broker/auth"
)

// dialStatus tries an upgrade and returns the HTTP status (101 on success).
func dialStatus(t testing.TB, url, origin string) int {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {origin}})
	if err == nil {
		_ = c.Close()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	return resp.StatusCode
}

func TestReloadOrigins(t *testing.T) {
	ts := startServer(t, nil)
	const added = "https://new.example.org"
	if got := dialStatus(t, ts.wsURL, added); got != http.StatusForbidden {
		t.Fatalf("unlisted origin before reload: %d", got)
	}
	open := dial(t, ts.wsURL, testOrigin) // approved by "localhost"

	cfg := ts.Config()
	cfg.ApprovedOrigins = []string{`^https://new\.example\.org$`}
	applied, ignored, err := ts.Reload(cfg)
	if err != nil || len(ignored) != 0 || !reflect.DeepEqual(applied, []string{"approvedSocketDomains"}) {
		t.Fatalf("Reload: applied %v ignored %v err %v", applied, ignored, err)
	}
	if got := dialStatus(t, ts.wsURL, added); got != http.StatusSwitchingProtocols {
		t.Fatalf("added origin after reload: %d, want 101", got)
	}
	if got := dialStatus(t, ts.wsURL, testOrigin); got != http.StatusForbidden {
		t.Fatalf("removed origin after reload: %d, want 403", got)
	}
	// The connection let in by the old list stays and keeps receiving.
	if code, _ := publish(t, ts.adminURL, testKey, `{"eventType":1,"username":"x"}`); code != http.StatusAccepted {
		t.Fatalf("publish %d", code)
	}
	if got := read(t, open); got != `{"eventType":1,"username":"x"}` {
		t.Fatalf("open connection got %s", got)
	}
	if got := ts.Config().ApprovedOrigins; !reflect.DeepEqual(got, cfg.ApprovedOrigins) {
		t.Fatalf("Config() origins %v", got)
	}
}

// TestReloadInvalidChangesNothing: a bad value anywhere refuses the
// whole reload, names the value, and every setting stays as it was.
func TestReloadInvalidChangesNothing(t *testing.T) {
	ts := startServer(t, nil)
	open := dial(t, ts.wsURL, testOrigin)
	before := ts.Config()
	cases := []struct {
		name string
		mut  func(*Config)
		want string
	}{
		{"bad origin regex", func(c *Config) { c.ApprovedOrigins = []string{"ok", "^(broken$"} }, `"^(broken$"`},
		{"bad live value", func(c *Config) { c.MaxLag = -time.Second }, "max lag -1s"},
		{"bad restart-only value", func(c *Config) { c.Shards = -1 }, "shards -1"},
		{"bad mix", func(c *Config) { c.PublishLag = 10 * time.Second }, "publish lag 10s must be shorter than max lag"},
		{"bad JWT key", func(c *Config) { c.Auth.PublicKeyPEM = "not a key" }, "auth"},
		{"TLS half set", func(c *Config) { c.TLS.CertPEM = []byte("x") }, "tls"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ts.Config()
			// Change a live field too: it must not be applied either.
			cfg.ApprovedOrigins = append(cfg.ApprovedOrigins, "^https://sneaky\\.example$")
			cfg.APIKey = "new-key"
			tc.mut(&cfg)
			applied, ignored, err := ts.Reload(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to name %q", err, tc.want)
			}
			if applied != nil || ignored != nil {
				t.Fatalf("refused reload reported applied %v ignored %v", applied, ignored)
			}
			if !reflect.DeepEqual(ts.Config(), before) {
				t.Fatalf("config changed:\n%+v\n%+v", ts.Config(), before)
			}
			if got := dialStatus(t, ts.wsURL, "https://sneaky.example"); got != http.StatusForbidden {
				t.Fatalf("origin from a refused reload: %d", got)
			}
			if code, _ := publish(t, ts.adminURL, testKey, `{"eventType":3,"username":"k"}`); code != http.StatusAccepted {
				t.Fatalf("old key after a refused reload: %d", code)
			}
			if got := read(t, open); got != `{"eventType":3,"username":"k"}` {
				t.Fatalf("open connection got %s", got)
			}
		})
	}
}

func TestReloadIgnoresRestartOnly(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.Shards = 2 })
	cfg := ts.Config()
	cfg.Shards = 4
	cfg.ListenAddr = "127.0.0.1:1"
	cfg.HistorySize = 16 << 20
	cfg.MaxPendingBytes = cfg.MaxPendingBytes * 2 // above its start value
	cfg.BroadcastBurst = 3
	applied, ignored, err := ts.Reload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(applied, []string{"broadcastBurst"}) {
		t.Fatalf("applied %v", applied)
	}
	for _, k := range []string{"listen", "shards", "historySize", "maxPending (above its value at start"} {
		if !slices.ContainsFunc(ignored, func(s string) bool { return strings.HasPrefix(s, k) }) {
			t.Fatalf("ignored %v, want %q among them", ignored, k)
		}
	}
	got := ts.Config()
	if got.Shards != 2 || got.ListenAddr != "127.0.0.1:0" || got.BroadcastBurst != 3 || got.MaxPendingBytes != DefaultMaxPendingBytes {
		t.Fatalf("Config() after reload: %+v", got)
	}
	// Nothing changed: nothing to report.
	if a, i, err := ts.Reload(ts.Config()); a != nil || i != nil || err != nil {
		t.Fatalf("no-op reload: %v %v %v", a, i, err)
	}
}

// TestReloadLimits: rate limits reach open connections at their next
// message; lag bounds and max-pending reach the workers and writers.
func TestReloadLimits(t *testing.T) {
	ts := startServer(t, nil)
	c := dial(t, ts.wsURL, testOrigin)
	send(t, c, `{"eventType":10,"message":"a"}`)
	read(t, c) // the message limiter now exists

	cfg := ts.Config()
	cfg.MessageRate, cfg.MessageBurst = 7, 3
	cfg.MaxLag, cfg.PublishLag = 3*time.Second, 150*time.Millisecond
	cfg.MaxPendingBytes = 3 << 19 // 1.5 MiB: below the start value, above the largest frame
	applied, _, err := ts.Reload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"messageRate", "messageBurst", "maxLag", "publishLag", "maxPending"} {
		if !slices.Contains(applied, k) {
			t.Fatalf("applied %v, want %q", applied, k)
		}
	}
	if ts.hub.fo.maxLag.Load() != 3*time.Second || ts.hub.fo.publishLag.Load() != 150*time.Millisecond {
		t.Fatal("lag bounds not applied to the fan-out")
	}
	if ts.limits.Load().maxPending != 3<<19 {
		t.Fatal("max-pending not applied")
	}
	send(t, c, `{"eventType":10,"message":"b"}`)
	read(t, c)
	var limit float64
	var burst int
	ts.hub.each(func(cn *conn) {
		cn.rmu.Lock()
		limit, burst = float64(cn.msgLimit.Limit()), cn.msgLimit.Burst()
		cn.rmu.Unlock()
	})
	if limit != 7 || burst != 3 {
		t.Fatalf("open connection's limiter: %v/s burst %d, want 7/s burst 3", limit, burst)
	}
}

func TestReloadKeys(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.Auth = auth.Config{HS256Secret: "one", Required: true} })
	token := func(secret string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "ann", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	open := dial(t, ts.wsURL+"?token="+token("one"), testOrigin)

	cfg := ts.Config()
	cfg.APIKey = "rotated"
	cfg.Auth.HS256Secret = "two"
	applied, _, err := ts.Reload(cfg)
	if err != nil || !reflect.DeepEqual(applied, []string{"socketApiKey", "jwt"}) {
		t.Fatalf("applied %v err %v", applied, err)
	}
	if code, _ := publish(t, ts.adminURL, testKey, `{"eventType":1}`); code != http.StatusUnauthorized {
		t.Fatalf("old key after rotation: %d", code)
	}
	if code, _ := publish(t, ts.adminURL, "rotated", `{"eventType":1}`); code != http.StatusAccepted {
		t.Fatalf("new key: %d", code)
	}
	if got := read(t, open); got != `{"eventType":1}` {
		t.Fatalf("connection opened with the old secret got %s", got)
	}
	if got := dialStatus(t, ts.wsURL+"?token="+token("one"), testOrigin); got != http.StatusUnauthorized {
		t.Fatalf("token signed with the old secret: %d", got)
	}
	if got := dialStatus(t, ts.wsURL+"?token="+token("two"), testOrigin); got != http.StatusSwitchingProtocols {
		t.Fatalf("token signed with the new secret: %d", got)
	}
}

// TestConfigKeysComplete: every Config field has a config-file name for
// Reload's report, and every live field is a real one.
func TestConfigKeysComplete(t *testing.T) {
	typ := reflect.TypeOf(Config{})
	names := map[string]bool{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i).Name
		names[f] = true
		if configKeys[f] == "" {
			t.Errorf("Config.%s has no entry in configKeys (decide too whether it is live)", f)
		}
	}
	for f := range liveFields {
		if !names[f] {
			t.Errorf("liveFields names %q, not a Config field", f)
		}
	}
}

// TestReloadConcurrentWithTraffic exercises Reload against upgrades,
// messages and fan-out at once; run with -race.
func TestReloadConcurrentWithTraffic(t *testing.T) {
	ts := startServer(t, nil)
	c := dial(t, ts.wsURL, testOrigin)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		cfg := ts.Config()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			cfg.MessageBurst = 100 + i%50
			cfg.MaxLag = time.Duration(4+i%3) * time.Second
			cfg.ApprovedOrigins = []string{"localhost", "^https://n" + string(rune('a'+i%26)) + "\\.example$"}
			if _, _, err := ts.Reload(cfg); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 50; i++ {
		send(t, c, `{"eventType":10,"message":"m"}`)
		read(t, c)
		publish(t, ts.adminURL, testKey, `{"eventType":6,"file":"f"}`)
		read(t, c)
		if i%10 == 0 {
			dial(t, ts.wsURL, testOrigin).Close()
		}
	}
	close(stop)
	<-done
}

// README's "Live reload" table lists exactly the live fields: each field
// Reload applies is named (by its config key) in the table's first
// column, and every config key named there is live, so the document and
// the reload classification cannot drift apart.
func TestLiveFieldsMatchREADME(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "## Live reload")
	if start < 0 {
		t.Fatal("README has no Live reload section")
	}
	section := doc[start:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	named := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| changes live") {
			continue
		}
		first := strings.SplitN(line[2:], "|", 2)[0]
		for _, m := range regexp.MustCompile("`([A-Za-z.]+)`").FindAllStringSubmatch(first, -1) {
			named[m[1]] = true
		}
		if strings.Contains(first, "TLS certificate") {
			named[configKeys["TLS"]] = true
		}
	}
	keyField := map[string]string{}
	for f, k := range configKeys {
		keyField[k] = f
	}
	for f := range liveFields {
		if !named[configKeys[f]] {
			t.Errorf("live field %s (config key %q) is not in README's Live reload table", f, configKeys[f])
		}
	}
	for k := range named {
		if f, ok := keyField[k]; ok && !liveFields[f] {
			t.Errorf("README's Live reload table names %q, which needs a restart", k)
		}
	}
}
