package main

import (
	"bufio"
	"bytes"
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

	project "github.com/webinate/broker"
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
	if o.broker.ListenAddr != ":8080" || o.broker.APIKey != "change-me" || len(o.broker.ApprovedOrigins) == 0 || o.broker.AdminAddr != "127.0.0.1:8081" {
		t.Fatalf("example config parsed as %+v", o.broker)
	}
	disk, err := os.ReadFile("../../config.example.json")
	if err != nil || !bytes.Equal(disk, project.ExampleConfig) {
		t.Fatal("embedded example differs from config.example.json")
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
