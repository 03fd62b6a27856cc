package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// writeTestCert writes a self-signed ECDSA certificate for 127.0.0.1 to
// certFile and keyFile and returns a pool that trusts it.
func writeTestCert(t *testing.T, certFile, keyFile string) (*x509.CertPool, *big.Int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "broker test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return pool, serial
}

// TestBinaryReloadSIGHUP runs the real binary with wss:// and a config
// file, and reloads it with SIGHUP: a broken file changes nothing, a good
// one swaps the origins and the certificate and reports what needs a
// restart; the connection opened at the start keeps receiving throughout.
func TestBinaryReloadSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBroker(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	poolA, serialA := writeTestCert(t, certFile, keyFile)
	configFile := filepath.Join(dir, "config.json")
	writeConfig := func(origins, extra string) {
		t.Helper()
		c := fmt.Sprintf(`{"websocket":{"approvedSocketDomains":%s,"socketApiKey":"k",
			"tls":{"cert":%q,"key":%q}},
			"broker":{"listen":"127.0.0.1:0","adminAddr":"127.0.0.1:0"%s}}`, origins, certFile, keyFile, extra)
		if err := os.WriteFile(configFile, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(`["localhost"]`, "")
	p := startBroker(t, bin, nil, "-config", configFile)
	addr, _ := p.started["addr"].(string)
	admin, _ := p.started["admin"].(string)
	if p.started["tls"] != true {
		t.Fatalf("start-up line says tls=%v", p.started["tls"])
	}
	url := "wss://" + addr + "/"

	dialer := func(pool *x509.CertPool) *websocket.Dialer {
		return &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}, HandshakeTimeout: 5 * time.Second}
	}
	status := func(pool *x509.CertPool, origin string) (int, *big.Int) {
		t.Helper()
		c, resp, err := dialer(pool).Dial(url, http.Header{"Origin": {origin}})
		if err == nil {
			serial := c.NetConn().(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber
			_ = c.Close()
			return http.StatusSwitchingProtocols, serial
		}
		if resp == nil {
			return 0, nil
		}
		return resp.StatusCode, nil
	}
	open, _, err := dialer(poolA).Dial(url, http.Header{"Origin": {"http://localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	event := 0
	publishAndRead := func() {
		t.Helper()
		event++
		body := fmt.Sprintf(`{"eventType":1,"username":"u%d"}`, event)
		req, _ := http.NewRequest(http.MethodPost, "http://"+admin+"/api/events", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer k")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("publish: %v %v", err, resp)
		}
		resp.Body.Close()
		_ = open.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := open.ReadMessage()
		if err != nil || string(got) != body {
			t.Fatalf("open connection: %q %v, want %s", got, err, body)
		}
	}
	publishAndRead()
	hup := func() {
		t.Helper()
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	// 1. A broken file: refused, with the bad value named; nothing changes.
	writeConfig(`["^https://new\\.example$", "^(broken$"]`, `,"shards":-1`)
	hup()
	refused := waitLog(t, p.lines, "reload refused: keeping the running configuration")
	if e, _ := refused["error"].(string); !strings.Contains(e, `^(broken$`) && !strings.Contains(e, "shards -1") {
		t.Fatalf("refusal does not name the bad value: %v", refused)
	}
	if code, serial := status(poolA, "http://localhost"); code != http.StatusSwitchingProtocols || serial.Cmp(serialA) != 0 {
		t.Fatalf("after a refused reload: status %d, serial %v", code, serial)
	}
	if code, _ := status(poolA, "https://new.example"); code != http.StatusForbidden {
		t.Fatalf("origin from a refused reload: %d", code)
	}
	publishAndRead()

	// 2. A good file with a new certificate and origins, and one key that
	// needs a restart.
	poolB, serialB := writeTestCert(t, certFile, keyFile)
	writeConfig(`["^https://new\\.example$"]`, `,"shards":7,"logLevel":"debug"`)
	hup()
	done := waitLog(t, p.lines, "config reloaded")
	applied, ignored := strs(done["applied"]), strs(done["ignoredUntilRestart"])
	for _, k := range []string{"approvedSocketDomains", "tls", "logLevel"} {
		if !slices.Contains(applied, k) {
			t.Fatalf("applied %v, want %q", applied, k)
		}
	}
	if !slices.Equal(ignored, []string{"shards"}) {
		t.Fatalf("ignoredUntilRestart %v, want [shards]", ignored)
	}
	if code, serial := status(poolB, "https://new.example"); code != http.StatusSwitchingProtocols || serial.Cmp(serialB) != 0 {
		t.Fatalf("new origin with the new certificate: status %d, serial %v", code, serial)
	}
	waitLog(t, p.lines, "connection open") // a debug line: the new log level is in force
	if code, _ := status(poolB, "http://localhost"); code != http.StatusForbidden {
		t.Fatalf("removed origin: %d", code)
	}
	publishAndRead() // the first connection, on the old certificate, lives on

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(15 * time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestTLSAndLogLevelConfig(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writeTestCert(t, cert, key)
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"websocket":{"approvedSocketDomains":["x"]}}`)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"tls flags", []string{"-config", good, "-tls-cert", cert, "-tls-key", key, "-check"}, 0, "configuration is valid"},
		{"tls in file", []string{"-config", write("tls.json", fmt.Sprintf(`{"websocket":{"tls":{"cert":%q,"key":%q}}}`, cert, key)), "-check"}, 0, "configuration is valid"},
		{"cert without key", []string{"-config", good, "-tls-cert", cert, "-check"}, 1, "must be set together"},
		{"missing cert file", []string{"-config", good, "-tls-cert", filepath.Join(dir, "none.pem"), "-tls-key", key, "-check"}, 1, "cannot read TLS certificate"},
		{"key is not a key", []string{"-config", good, "-tls-cert", cert, "-tls-key", cert, "-check"}, 1, "tls certificate"},
		{"unknown tls key", []string{"-config", write("tls2.json", `{"websocket":{"tls":{"crt":"x"}}}`), "-check"}, 1, `unknown field \"crt\"`},
		{"log level in file", []string{"-config", write("lvl.json", `{"websocket":{},"broker":{"logLevel":"warn"}}`), "-check"}, 0, ""},
		{"bad log level in file", []string{"-config", write("lvl2.json", `{"websocket":{},"broker":{"logLevel":"loud"}}`), "-check"}, 1, `log level \"loud\"`},
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
