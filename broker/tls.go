package broker

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	ltls "github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
)

// TLS on the public listener (wss://).
//
// The stack is nbio's non-blocking TLS: github.com/lesismal/llib's fork of
// the Go 1.16 crypto/tls, which takes ciphertext from the poller
// (AppendAndRead) instead of reading a blocking socket. That keeps the
// broker's shape, no goroutine per connection; the handshake runs on the
// poller that owns the socket. Go's own crypto/tls cannot be fed that way:
// it reads its net.Conn itself, so it would need a goroutine per
// connection. What the fork lacks compared with current crypto/tls is in
// README (TLS); the settings below avoid the parts that matter:
//
//   - TLS 1.2 minimum, 1.3 offered; TLS 1.2 only with ECDHE and AEAD
//     suites (no RSA key exchange, no CBC, no 3DES).
//   - Key exchange X25519, P-256, P-384. The fork has no X25519MLKEM768,
//     so current Go and browser clients, which offer it first, settle on
//     X25519 (they send an X25519 key share too, so no extra round trip).
//   - Session tickets off: the fork's TLS 1.3 tickets carry no random
//     ticket_age_add (CVE-2022-30629, fixed in Go 1.18.3), which lets an
//     observer link a client's sessions. WebSocket connections are long
//     lived, so a full handshake per connection costs little.
//
// Concurrency: the fork dropped crypto/tls's record-layer locks (reads
// answer KeyUpdate and send alerts without the output lock), while the
// broker writes from several goroutines. tlsLink.mu therefore covers
// every use of the tls.Conn: decrypting on the poller and encrypting on
// writers. It is never held while the broker parses plaintext.

// tlsCipherSuites are the TLS 1.2 suites offered (TLS 1.3's are fixed).
var tlsCipherSuites = []uint16{
	ltls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	ltls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	ltls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	ltls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	ltls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,
	ltls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,
}

// certStore holds the certificate new handshakes present; Reload swaps it.
type certStore struct {
	cur atomic.Pointer[ltls.Certificate]
}

// parseCert checks a certificate and key pair and parses the leaf.
func parseCert(t TLSConfig) (*ltls.Certificate, error) {
	cert, err := ltls.X509KeyPair(t.CertPEM, t.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("broker: tls certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("broker: tls certificate: %w", err)
	}
	cert.Leaf = leaf
	return &cert, nil
}

// serverConfig is the llib TLS configuration of the public listener.
func (cs *certStore) serverConfig() *ltls.Config {
	return &ltls.Config{
		MinVersion:       ltls.VersionTLS12,
		MaxVersion:       ltls.VersionTLS13,
		CipherSuites:     tlsCipherSuites,
		CurvePreferences: []ltls.CurveID{ltls.X25519, ltls.CurveP256, ltls.CurveP384},
		// WebSocket runs over HTTP/1.1 (RFC 6455); clients that offer
		// ALPN get it confirmed.
		NextProtos:             []string{"http/1.1"},
		SessionTicketsDisabled: true,
		GetCertificate: func(*ltls.ClientHelloInfo) (*ltls.Certificate, error) {
			return cs.cur.Load(), nil
		},
	}
}

// logCert logs the certificate now presented.
func (s *Server) logCert(msg string, c *ltls.Certificate) {
	s.log.Info().Str("subject", c.Leaf.Subject.String()).Strs("dnsNames", c.Leaf.DNSNames).
		Time("notAfter", c.Leaf.NotAfter).Msg(msg)
	if time.Until(c.Leaf.NotAfter) < 0 {
		s.log.Warn().Time("notAfter", c.Leaf.NotAfter).Msg("tls certificate has expired")
	}
}

// tlsLink is one TLS connection: the llib tls.Conn over nbio's socket. It
// is the net.Conn nbhttp's parser writes its responses to, and the conn
// writes its frames through it once upgraded.
type tlsLink struct {
	nbc *nbio.Conn
	srv *Server

	mu sync.Mutex // every use of tc; see the package comment above
	tc *ltls.Conn
	// queued, once the connection is upgraded, is conn.queued: the
	// ciphertext handed to nbio is counted there, since nbio's
	// OnWrittenSize reports ciphertext. Guarded by mu.
	queued *atomic.Int64
}

var _ net.Conn = (*tlsLink)(nil)

// wrapTLS puts TLS under the HTTP parser of a socket just registered
// with nbio (AddConnNonTLSNonBlocking): the parser's connection writes
// through TLS, and nbio's reads go through onData. Called with regMu held,
// so no read of this socket has happened yet.
func (s *Server) wrapTLS(hc *nbhttp.Conn) {
	nbc, ok := hc.Conn.(*nbio.Conn)
	if !ok {
		return // the engine refused the socket (and closed it)
	}
	l := &tlsLink{nbc: nbc, srv: s}
	// The native allocator leaves buffers to the GC: the pooled one would
	// hand a buffer back while a close on another goroutine may still
	// touch it.
	l.tc = ltls.NewConn(rawSide{l}, s.tlsConf, false, true, &ltls.NativeAllocator{})
	hc.Conn = l
	nbc.OnData(l.onData)
}

// onData decrypts what nbio read and hands the plaintext to the socket's
// current session (the HTTP parser, then the conn): nbhttp's
// TLSDataHandler, with the record layer under mu.
func (l *tlsLink) onData(nbc *nbio.Conn, data []byte) {
	// The plaintext goes to nbio's read buffer, whose bytes were just
	// copied into the record layer; its full capacity is free.
	buf := data[:cap(data)]
	in := data
	for {
		l.mu.Lock()
		_, n, err := l.tc.AppendAndRead(in, buf)
		if err != nil || n == 0 {
			l.tc.ResetOrFreeBuffer()
		}
		l.mu.Unlock()
		in = nil
		if err != nil {
			l.fail(err)
			return
		}
		if n == 0 {
			return
		}
		pc, ok := nbc.Session().(nbhttp.ParserCloser)
		if !ok {
			_ = nbc.Close()
			return
		}
		if err := pc.Parse(buf[:n]); err != nil {
			_ = nbc.CloseWithError(err)
			return
		}
	}
}

// fail ends a connection whose TLS input was bad. A plain HTTP request
// (ws:// to a wss:// port) is answered in plain HTTP, as net/http does, so
// the client learns why instead of seeing a reset.
func (l *tlsLink) fail(err error) {
	var rh ltls.RecordHeaderError
	if errors.As(err, &rh) && rh.Conn != nil && looksLikeHTTP(rh.RecordHeader) {
		l.srv.stats.refusedTLS.Add(1)
		_, _ = l.nbc.Write(rawHTTPError(400, "this port serves TLS (wss://), not plain ws://"))
	} else if _, open := l.nbc.Session().(*nbhttp.Parser); open {
		// Failed before any upgrade: a handshake failure.
		l.srv.stats.refusedTLS.Add(1)
		l.srv.log.Debug().Str("remote", l.nbc.RemoteAddr().String()).Err(err).Msg("tls handshake failed")
	}
	_ = l.nbc.CloseWithError(err)
}

func looksLikeHTTP(h [5]byte) bool {
	switch string(h[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// Write encrypts b and hands the records to nbio. Safe from any
// goroutine.
func (l *tlsLink) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tc.Write(b)
}

// countInto makes every later write count its ciphertext in q (the
// upgraded conn's queued).
func (l *tlsLink) countInto(q *atomic.Int64) {
	l.mu.Lock()
	l.queued = q
	l.mu.Unlock()
}

// Read is never called: input arrives through onData.
func (l *tlsLink) Read([]byte) (int, error) {
	return 0, errors.New("broker: tlsLink is fed by the poller")
}

// Close closes the socket without a close_notify: the WebSocket close
// handshake has already said goodbye, and sending one would race with
// writers.
func (l *tlsLink) Close() error                       { return l.nbc.Close() }
func (l *tlsLink) LocalAddr() net.Addr                { return l.nbc.LocalAddr() }
func (l *tlsLink) RemoteAddr() net.Addr               { return l.nbc.RemoteAddr() }
func (l *tlsLink) SetDeadline(t time.Time) error      { return l.nbc.SetDeadline(t) }
func (l *tlsLink) SetReadDeadline(t time.Time) error  { return l.nbc.SetReadDeadline(t) }
func (l *tlsLink) SetWriteDeadline(t time.Time) error { return l.nbc.SetWriteDeadline(t) }

// rawSide is the socket under the tls.Conn: records go to nbio, counted
// in the link's queued once it is set. Only called with the link's mu
// held.
type rawSide struct{ l *tlsLink }

func (r rawSide) Write(b []byte) (int, error) {
	if q := r.l.queued; q != nil {
		q.Add(int64(len(b)))
	}
	return r.l.nbc.Write(b)
}

func (r rawSide) Read([]byte) (int, error) {
	return 0, errors.New("broker: tlsLink is fed by the poller")
}
func (r rawSide) Close() error                       { return r.l.nbc.Close() }
func (r rawSide) LocalAddr() net.Addr                { return r.l.nbc.LocalAddr() }
func (r rawSide) RemoteAddr() net.Addr               { return r.l.nbc.RemoteAddr() }
func (r rawSide) SetDeadline(t time.Time) error      { return r.l.nbc.SetDeadline(t) }
func (r rawSide) SetReadDeadline(t time.Time) error  { return r.l.nbc.SetReadDeadline(t) }
func (r rawSide) SetWriteDeadline(t time.Time) error { return r.l.nbc.SetWriteDeadline(t) }

// splitConn finds nbio's socket under the connection nbhttp hands the
// upgrade handler, and the TLS link when there is one.
func splitConn(c net.Conn) (*nbio.Conn, *tlsLink, bool) {
	switch x := c.(type) {
	case *nbio.Conn:
		return x, nil, true
	case *tlsLink:
		return x.nbc, x, true
	}
	return nil, nil, false
}
