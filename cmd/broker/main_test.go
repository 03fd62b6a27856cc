package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	project "github.com/webinate/broker" // the bundled example config (package project)
	"github.com/webinate/broker/broker"
)

func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		json string
		want string
	}{
		{"not JSON", `nope`, "not a JSON object"},
		{"missing websocket", `{"broker":{}}`, `missing "websocket" section`},
		{"unknown websocket key", `{"websocket":{"prot":8080}}`, `unknown field "prot"`},
		{"unknown broker key", `{"websocket":{},"broker":{"shard":4}}`, `unknown field "shard"`},
		{"wrong type", `{"websocket":{"port":"8080"}}`, "websocket"},
		{"bad port", `{"websocket":{"port":70000}}`, "websocket.port 70000"},
		{"bad duration", `{"websocket":{},"broker":{"pingInterval":"soon"}}`, "soon"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var o options
			_, err := parseConfig([]byte(tc.json), &o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestParseConfigWarnsOnOtherSections(t *testing.T) {
	var o options
	w, err := parseConfig([]byte(`{"websocket":{"port":1},"database":{},"mail":{}}`), &o)
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != 2 || !strings.Contains(w[0], `"database"`) || !strings.Contains(w[1], `"mail"`) {
		t.Fatalf("warnings %q", w)
	}
}

func TestParseExampleConfig(t *testing.T) {
	var o options
	w, err := parseConfig(project.ExampleConfig, &o)
	if err != nil || len(w) != 0 {
		t.Fatalf("example config: %v %v", err, w)
	}
	if o.broker.ListenAddr != ":8080" || o.broker.APIKey != broker.ExampleAPIKey || len(o.broker.ApprovedOrigins) == 0 || o.broker.AdminAddr != "127.0.0.1:8081" {
		t.Fatalf("example config parsed as %+v", o.broker)
	}
	disk, err := os.ReadFile("../../config.example.json")
	if err != nil || !bytes.Equal(disk, project.ExampleConfig) {
		t.Fatal("embedded example differs from config.example.json")
	}
}

// The example config's localhost pattern is anchored: the README's
// quickstart origin and a page on localhost:PORT are approved, a host
// that merely starts with "localhost" is not (nor is 127.0.0.1, which the
// interop tests rely on).
func TestExampleConfigOrigins(t *testing.T) {
	var o options
	if _, err := parseConfig(project.ExampleConfig, &o); err != nil {
		t.Fatal(err)
	}
	cfg := o.broker
	cfg.ListenAddr, cfg.AdminAddr = "127.0.0.1:0", "-"
	srv, err := broker.New(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	for origin, want := range map[string]int{
		"http://localhost":                   101,
		"http://localhost:3000":              101,
		"https://localhost:8443":             101,
		"http://localhost.attacker.example":  403,
		"http://localhost:3000.attacker.com": 403,
		"http://evil.example/?localhost":     403,
		"http://127.0.0.1:3000":              403,
		"https://app.example.com":            101,
	} {
		c, resp, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr()+"/", http.Header{"Origin": {origin}})
		got := 101
		if err != nil {
			if resp == nil {
				t.Fatal(err)
			}
			got = resp.StatusCode
		} else {
			_ = c.Close()
		}
		if got != want {
			t.Errorf("origin %s: %d, want %d", origin, got, want)
		}
	}
}

func TestParseAdmissionKeys(t *testing.T) {
	var o options
	_, err := parseConfig([]byte(`{"websocket":{},"broker":{"maxConnsPerIP":-1,"maxConnsPerUser":4,"maxAcceptRate":250.5,"maxAcceptBurst":600}}`), &o)
	if err != nil {
		t.Fatal(err)
	}
	if b := o.broker; b.MaxConnsPerIP != -1 || b.MaxConnsPerUser != 4 || b.MaxAcceptRate != 250.5 || b.MaxAcceptBurst != 600 {
		t.Fatalf("parsed as per IP %d, per user %d, rate %v, burst %d", b.MaxConnsPerIP, b.MaxConnsPerUser, b.MaxAcceptRate, b.MaxAcceptBurst)
	}
}

// testPEM is a P-256 public key.
const testPEM = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9
q9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==
-----END PUBLIC KEY-----
`

func TestCheckFlag(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"websocket":{"port":9000,"approvedSocketDomains":["localhost"],"socketApiKey":"k"}}`)
	badRe := write("bad.json", `{"websocket":{"approvedSocketDomains":["ok","^(broken$"]}}`)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"valid", []string{"-config", good, "-check"}, 0, "configuration is valid"},
		{"bundled default", []string{"-check"}, 0, "configuration is valid"},
		{"invalid origin regex named", []string{"-config", badRe, "-check"}, 1, `^(broken$`},
		{"bad flag value named", []string{"-config", good, "-shards", "-1", "-check"}, 1, "shards -1"},
		{"bad admin addr named", []string{"-config", good, "-admin-addr", "nope", "-check"}, 1, `admin address \"nope\"`},
		{"idle shorter than ping", []string{"-config", good, "-ping-interval", "10s", "-idle-timeout", "5s", "-check"}, 1, "idle timeout"},
		{"missing file", []string{"-config", filepath.Join(dir, "none.json")}, 1, "cannot read config"},
		{"bad log level", []string{"-log-level", "loud"}, 2, `bad -log-level "loud"`},
		{"bad log format", []string{"-log-format", "xml"}, 2, `bad -log-format "xml"`},
		{"stray argument", []string{"extra"}, 2, "unexpected arguments"},
		{"example key with a public admin listener", []string{"-admin-addr", "0.0.0.0:8081", "-check"}, 1, `admin address \"0.0.0.0:8081\" is not loopback`},
		{"example key names the fix", []string{"-admin-addr", ":8081", "-check"}, 1, "BROKER_SOCKET_API_KEY"},
		{"public admin listener with a real key", []string{"-config", good, "-admin-addr", "0.0.0.0:8081", "-check"}, 0, "configuration is valid"},
		{"per-user cap needs JWT", []string{"-config", good, "-max-conns-per-user", "3", "-check"}, 1, "max conns per user 3: needs JWT"},
		{"per-user cap with JWT", []string{"-config", good, "-max-conns-per-user", "3", "-jwt-secret", "s", "-check"}, 0, "configuration is valid"},
		{"bad accept rate named", []string{"-config", good, "-max-accept-rate", "-5", "-check"}, 1, "max accept rate -5"},
		{"bad accept burst named", []string{"-config", good, "-max-accept-rate", "5", "-max-accept-burst", "-1", "-check"}, 1, "max accept burst -1"},
		{"admission keys in file", []string{"-config", write("adm.json", `{"websocket":{"approvedSocketDomains":["x"]},"broker":{"maxConnsPerIP":50,"maxAcceptRate":200,"maxAcceptBurst":400}}`), "-check"}, 0, "configuration is valid"},
		{"bad per-user in file named", []string{"-config", write("adm2.json", `{"websocket":{},"broker":{"maxConnsPerUser":-2}}`), "-check"}, 1, "max conns per user -2"},
		{"bad targeting named", []string{"-config", good, "-targeting", "some", "-check"}, 1, `targeting \"some\"`},
		{"user targeting with JWT", []string{"-config", good, "-targeting", "user", "-jwt-secret", "s3cret", "-check"}, 0, "configuration is valid"},
		{"missing JWT key file", []string{"-config", good, "-jwt-public-key", filepath.Join(dir, "none.pem"), "-check"}, 1, "cannot read JWT public key"},
		{"garbage JWT key", []string{"-config", good, "-jwt-public-key", good, "-check"}, 1, "auth"},
		{"both JWT sources", []string{"-config", good, "-jwt-secret", "s", "-jwt-public-key", write("k.pem", testPEM), "-check"}, 1, "auth"},
		{"jwt section in file", []string{"-config", write("jwt.json", `{"websocket":{"approvedSocketDomains":["x"]},"broker":{"targeting":"user","jwt":{"hs256Secret":"s","usernameClaim":"name","required":true}}}`), "-check"}, 0, "configuration is valid"},
		{"bad broadcast bytes named", []string{"-config", good, "-broadcast-bytes", "10", "-check"}, 1, "broadcast bytes 10"},
		{"bad broadcast bytes burst named", []string{"-config", good, "-broadcast-bytes-burst", "1000", "-check"}, 1, "broadcast bytes burst 1000"},
		{"bad broadcast node bytes named", []string{"-config", good, "-broadcast-node-bytes", "5", "-check"}, 1, "broadcast node bytes 5"},
		{"bad meta inflight named", []string{"-config", good, "-meta-inflight", "3000000", "-check"}, 1, "meta inflight 3000000"},
		{"bad meta inflight bytes named", []string{"-config", good, "-meta-inflight-bytes", "7", "-check"}, 1, "meta inflight bytes 7"},
		{"bad meta max pending named", []string{"-config", good, "-meta-max-pending", "99999999", "-check"}, 1, "meta max pending 99999999"},
		{"budget keys in file", []string{"-config", write("budget.json", `{"websocket":{"approvedSocketDomains":["x"]},"broker":{"broadcastBytes":-1,"broadcastBytesBurst":70000,"broadcastNodeBytes":2048,"metaInflight":4,"metaInflightBytes":-1,"metaMaxPending":50}}`), "-check"}, 0, "configuration is valid"},
		{"bad budget key in file named", []string{"-config", write("budget2.json", `{"websocket":{"approvedSocketDomains":["x"]},"broker":{"metaInflightBytes":9}}`), "-check"}, 1, "meta inflight bytes 9"},
		{"unknown jwt key", []string{"-config", write("jwt2.json", `{"websocket":{},"broker":{"jwt":{"secret":"s"}}}`), "-check"}, 1, `unknown field \"secret\"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if code := run(tc.args, &out, &out); code != tc.code {
				t.Fatalf("exit %d, want %d; output:\n%s", code, tc.code, out.String())
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Fatalf("output does not mention %q:\n%s", tc.want, out.String())
			}
		})
	}
}

// TestBinarySIGTERM builds the real binary, runs it, and checks the drain
// contract: clients get 1001, the process exits 0, logs are JSON.
func TestBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "broker")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// Port 0 everywhere: the bound addresses come from the start-up log,
	// so parallel test packages cannot race for a port.
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan map[string]any, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = map[string]any{"notjson": sc.Text()}
			}
			lines <- m
		}
		close(lines)
	}()
	started := waitLog(t, lines, "broker started")
	addr, _ := started["addr"].(string)
	admin, _ := started["admin"].(string)

	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/", http.Header{"Origin": {"http://localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := http.Get("http://" + admin + "/healthz"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = c.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("want close 1001, got %v", err)
	}
	_ = c.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("broker did not exit after SIGTERM")
	}
	for m := range lines {
		if s, ok := m["notjson"]; ok {
			t.Fatalf("non-JSON log line %q", s)
		}
	}
}

func waitLog(t *testing.T, lines <-chan map[string]any, msg string) map[string]any {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatalf("process ended before logging %q", msg)
			}
			if m["message"] == msg {
				return m
			}
		case <-timeout:
			t.Fatalf("no %q log line", msg)
		}
	}
}
