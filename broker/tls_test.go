package broker

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
)

// testCert is a self-signed ECDSA P-256 certificate for 127.0.0.1.
type testCert struct {
	certPEM, keyPEM []byte
	pool            *x509.CertPool
	serial          *big.Int
}

func newTestCert(t testing.TB, cn string) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return testCert{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		pool:    pool,
		serial:  serial,
	}
}

// startTLSServer starts a broker serving wss:// with cert.
func startTLSServer(t testing.TB, cert testCert, mut func(*Config)) (*testServer, string) {
	t.Helper()
	ts := startServer(t, func(c *Config) {
		c.TLS = TLSConfig{CertPEM: cert.certPEM, KeyPEM: cert.keyPEM}
		if mut != nil {
			mut(c)
		}
	})
	return ts, "wss://" + ts.Addr() + "/"
}

// dialTLS opens a wss:// client with a current crypto/tls (through
// gorilla/websocket) that trusts pool.
func dialTLS(t testing.TB, url string, pool *x509.CertPool, origin string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{
		TLSClientConfig:  &tls.Config{RootCAs: pool},
		HandshakeTimeout: 5 * time.Second,
	}
	c, resp, err := d.Dial(url, http.Header{"Origin": {origin}})
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, code)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func tlsState(t testing.TB, c *websocket.Conn) tls.ConnectionState {
	t.Helper()
	tc, ok := c.NetConn().(*tls.Conn)
	if !ok {
		t.Fatalf("underlying connection is %T, not *tls.Conn", c.NetConn())
	}
	return tc.ConnectionState()
}

func TestTLSRoundTrip(t *testing.T) {
	cert := newTestCert(t, "broker-a")
	ts, url := startTLSServer(t, cert, nil)
	c := dialTLS(t, url, cert.pool, testOrigin)

	st := tlsState(t, c)
	if st.Version != tls.VersionTLS13 {
		t.Fatalf("negotiated %s, want TLS 1.3", tls.VersionName(st.Version))
	}
	// Go offers X25519MLKEM768 first; the server has no ML-KEM and must
	// settle on X25519 (README, TLS).
	if st.CurveID != tls.X25519 {
		t.Fatalf("key exchange %v, want X25519", st.CurveID)
	}

	send(t, c, `{"eventType":10,"message":"over tls"}`)
	if got := read(t, c); got != `{"eventType":10,"message":"over tls"}` {
		t.Fatalf("echo %s", got)
	}
	// Bigger than one TLS record (16 KiB) both ways.
	big := `{"eventType":10,"message":"` + strings.Repeat("x", 50_000) + `"}`
	send(t, c, big)
	if got := read(t, c); got != big {
		t.Fatalf("big echo: %d bytes, want %d", len(got), len(big))
	}
	if code, body := publish(t, ts.adminURL, testKey, `{"eventType":1,"username":"bob"}`); code != http.StatusAccepted {
		t.Fatalf("publish: %d %s", code, body)
	}
	if got := read(t, c); got != `{"eventType":1,"username":"bob"}` {
		t.Fatalf("event %s", got)
	}
	// Pending bytes count ciphertext, as nbio reports written bytes: once
	// everything is flushed they are back to exactly zero (counting
	// plaintext would leave them negative, loosening max-pending).
	var pending int64
	waitFor(t, 5*time.Second, "output flushed", func() bool {
		ts.hub.each(func(c *conn) { pending = c.pending() })
		return pending == 0
	})
	// Origins are still checked behind TLS.
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: cert.pool}, HandshakeTimeout: 5 * time.Second}
	if _, resp, err := d.Dial(url, http.Header{"Origin": {"http://evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unapproved origin over TLS: err %v, resp %v", err, resp)
	}
	// The close handshake works over TLS.
	_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	if code := expectClose(t, c); code != websocket.CloseNormalClosure {
		t.Fatalf("close code %d", code)
	}
	waitFor(t, 5*time.Second, "connection gone", func() bool { return ts.Stats().Connections == 0 })
}

// TestTLSFanOutConcurrent runs writers on several goroutines at once
// (shard worker fan-out, echo replies on the poller) over one TLS
// session: the record layer must stay consistent (the client would see a
// bad record MAC otherwise). Run with -race.
func TestTLSFanOutConcurrent(t *testing.T) {
	cert := newTestCert(t, "broker-a")
	ts, url := startTLSServer(t, cert, func(c *Config) { c.MessageRate = -1; c.BroadcastRate = -1 })
	c := dialTLS(t, url, cert.pool, testOrigin)
	const n = 200
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			publish(t, ts.adminURL, testKey, `{"eventType":1,"username":"u"}`)
		}
	}()
	for i := 0; i < n; i++ {
		send(t, c, `{"eventType":10,"message":"e"}`)
	}
	echoes, events := 0, 0
	for echoes < n || events < n {
		switch got := read(t, c); got {
		case `{"eventType":10,"message":"e"}`:
			echoes++
		case `{"eventType":1,"username":"u"}`:
			events++
		default:
			t.Fatalf("unexpected %s", got)
		}
	}
	<-done
}

func TestTLSVersions(t *testing.T) {
	cert := newTestCert(t, "broker-a")
	ts, _ := startTLSServer(t, cert, nil)
	dial := func(cfg *tls.Config) (*tls.Conn, error) {
		cfg.RootCAs = cert.pool
		d := &net.Dialer{Timeout: 5 * time.Second}
		return tls.DialWithDialer(d, "tcp", ts.Addr(), cfg)
	}
	// TLS 1.2 still works, with an ECDHE AEAD suite.
	c, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	st := c.ConnectionState()
	_ = c.Close()
	if st.Version != tls.VersionTLS12 || !strings.HasPrefix(tls.CipherSuiteName(st.CipherSuite), "TLS_ECDHE_ECDSA_WITH_") {
		t.Fatalf("TLS 1.2 negotiated %s %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
	}
	// TLS 1.1 and 1.0 are refused.
	for _, v := range []uint16{tls.VersionTLS11, tls.VersionTLS10} {
		c, err := dial(&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: v})
		if err == nil {
			_ = c.Close()
			t.Fatalf("%s handshake succeeded", tls.VersionName(v))
		}
		if !strings.Contains(err.Error(), "protocol version") {
			t.Fatalf("%s refused with %v, want a protocol version alert", tls.VersionName(v), err)
		}
	}
	// A TLS 1.2 client offering only CBC suites finds nothing in common.
	if c, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}); err == nil {
		_ = c.Close()
		t.Fatal("CBC-only client was accepted")
	}
	waitFor(t, 5*time.Second, "refusals counted", func() bool { return ts.Stats().RefusedTLS >= 3 })
}

// TestTLSPlainClientRefused: ws:// to the wss:// port gets a plain HTTP
// 400 and a closed socket, at once; so does other garbage (closed), and a
// silent socket is dropped at the handshake timeout.
func TestTLSPlainClientRefused(t *testing.T) {
	cert := newTestCert(t, "broker-a")
	ts, url := startTLSServer(t, cert, func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })

	d := websocket.Dialer{HandshakeTimeout: 3 * time.Second}
	start := time.Now()
	_, resp, err := d.Dial("ws://"+ts.Addr()+"/", http.Header{"Origin": {testOrigin}})
	if err == nil {
		t.Fatal("plain ws:// upgrade on the TLS port succeeded")
	}
	if resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain ws://: %v, response %v; want 400", err, resp)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("refusal took %v", time.Since(start))
	}

	for _, tc := range []struct {
		name string
		send string
	}{
		{"garbage", "\x00\x01\x02\x03\x04\x05\x06\x07 not tls at all"},
		{"silent", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", ts.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if tc.send != "" {
				_, _ = nc.Write([]byte(tc.send))
			}
			_ = nc.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, err = io.Copy(io.Discard, bufio.NewReader(nc))
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("server kept the socket open")
			}
		})
	}
	// The server is still fine.
	c := dialTLS(t, url, cert.pool, testOrigin)
	send(t, c, `{"eventType":10,"message":"still here"}`)
	if got := read(t, c); !strings.Contains(got, "still here") {
		t.Fatalf("echo %s", got)
	}
	if n := ts.Stats().RefusedTLS; n < 2 {
		t.Fatalf("refusedTLS %d, want at least 2", n)
	}
}

// TestTLSCertReload: after Reload, new handshakes present the new
// certificate; a connection opened before keeps working.
func TestTLSCertReload(t *testing.T) {
	a, b := newTestCert(t, "broker-a"), newTestCert(t, "broker-b")
	ts, url := startTLSServer(t, a, nil)
	old := dialTLS(t, url, a.pool, testOrigin)
	if got := tlsState(t, old).PeerCertificates[0].SerialNumber; got.Cmp(a.serial) != 0 {
		t.Fatalf("first certificate serial %v", got)
	}

	cfg := ts.Config()
	cfg.TLS = TLSConfig{CertPEM: b.certPEM, KeyPEM: b.keyPEM}
	applied, ignored, err := ts.Reload(cfg)
	if err != nil || len(ignored) != 0 || strings.Join(applied, ",") != "tls" {
		t.Fatalf("Reload: applied %v ignored %v err %v", applied, ignored, err)
	}

	fresh := dialTLS(t, url, b.pool, testOrigin)
	if got := tlsState(t, fresh).PeerCertificates[0].SerialNumber; got.Cmp(b.serial) != 0 {
		t.Fatalf("after reload: certificate serial %v, want the new one", got)
	}
	// A client that only trusts the old certificate now fails.
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: a.pool}, HandshakeTimeout: 5 * time.Second}
	if c, _, err := d.Dial(url, http.Header{"Origin": {testOrigin}}); err == nil {
		_ = c.Close()
		t.Fatal("old certificate still presented to new handshakes")
	}

	if code, body := publish(t, ts.adminURL, testKey, `{"eventType":2,"username":"al"}`); code != http.StatusAccepted {
		t.Fatalf("publish: %d %s", code, body)
	}
	for _, c := range []*websocket.Conn{old, fresh} {
		if got := read(t, c); got != `{"eventType":2,"username":"al"}` {
			t.Fatalf("event %s", got)
		}
	}
	send(t, old, `{"eventType":10,"message":"old session"}`)
	if got := read(t, old); !strings.Contains(got, "old session") {
		t.Fatalf("echo on the old connection: %s", got)
	}

	// A broken key pair is refused and the current certificate stays.
	cfg.TLS = TLSConfig{CertPEM: a.certPEM, KeyPEM: b.keyPEM}
	if _, _, err := ts.Reload(cfg); err == nil || !strings.Contains(err.Error(), "tls certificate") {
		t.Fatalf("mismatched key pair: err %v", err)
	}
	again := dialTLS(t, url, b.pool, testOrigin)
	if got := tlsState(t, again).PeerCertificates[0].SerialNumber; got.Cmp(b.serial) != 0 {
		t.Fatal("a refused reload changed the certificate")
	}
}

func TestTLSConfigValidate(t *testing.T) {
	cert := newTestCert(t, "x")
	for _, tc := range []struct {
		name string
		tls  TLSConfig
		want string
	}{
		{"cert without key", TLSConfig{CertPEM: cert.certPEM}, "certificate and its key are both needed"},
		{"key without cert", TLSConfig{KeyPEM: cert.keyPEM}, "certificate and its key are both needed"},
		{"not PEM", TLSConfig{CertPEM: []byte("nope"), KeyPEM: []byte("nope")}, "tls certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{TLS: tc.tls}, zerolog.Nop())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}
