package bench

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"

	"github.com/webinate/broker/wsframe"
)

// HandshakeError is a refused upgrade: the server answered with Status
// instead of 101.
type HandshakeError struct {
	Status int
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("bench: handshake refused: HTTP %d %s", e.Status, http.StatusText(e.Status))
}

var quietNBIO sync.Once

var errDialTimeout = errors.New("bench: handshake timed out")

// newClientEngine starts an nbio engine in client mode. Its pollers own
// every client socket of this process.
func newClientEngine() (*nbhttp.Engine, error) {
	quietNBIO.Do(func() {
		// nbio logs to stdout by default, which is the worker protocol's
		// channel; its info lines are noise in a benchmark anyway.
		logging.Output = os.Stderr
		logging.SetLevel(logging.LevelError)
	})
	e := nbhttp.NewEngine(nbhttp.Config{
		Name:                    "bench",
		NPoller:                 runtime.NumCPU(),
		ReleaseWebsocketPayload: true,
	})
	// The harness reads only numbers out of each frame; validating UTF-8 of
	// every frame would be harness CPU spent on nothing we measure.
	e.CheckUtf8 = func([]byte) bool { return true }
	if err := e.Start(); err != nil {
		return nil, err
	}
	return e, nil
}

// handshakeKey is a fresh Sec-WebSocket-Key: 16 random bytes in base64
// (RFC 6455 section 4.1).
func handshakeKey() (string, error) {
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(nonce[:]), nil
}

// localDialer dials TCP from local (nil: any address) within timeout: the
// harness spreads connections over loopback sources to get past one
// source address's ephemeral ports.
func localDialer(local net.IP, timeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	return d
}

// dialWS opens one WebSocket client from local (nil: any) to addr. It is a
// trimmed copy of nbio's websocket.Dialer.DialContext because that Dialer
// offers no way to choose the local address, which the harness needs to get
// past one source address's ephemeral ports. session is attached before the
// connection can deliver its first message.
func dialWS(engine *nbhttp.Engine, proto *wsConn, addr, path, origin string,
	local net.IP, timeout time.Duration, session any) (*wsConn, error) {
	key, err := handshakeKey()
	if err != nil {
		return nil, err
	}
	if path == "" {
		path = "/"
	}
	u := &url.URL{Scheme: "http", Host: addr, Path: path}
	if p, q, ok := strings.Cut(path, "?"); ok { // a query (e.g. ?token=) travels as one
		u.Path, u.RawQuery = p, q
	}
	req := &http.Request{
		Method: http.MethodGet, URL: u,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: addr,
		Header: http.Header{
			"Upgrade":               {"websocket"},
			"Connection":            {"Upgrade"},
			"Sec-Websocket-Key":     {key},
			"Sec-Websocket-Version": {"13"},
			"Origin":                {origin},
		},
	}
	if proto.deflate {
		req.Header.Set("Sec-Websocket-Extensions", deflateOffer)
	}
	d := localDialer(local, timeout)
	cc := &nbhttp.ClientConn{Engine: engine, Timeout: timeout, Dial: d.Dial}
	type outcome struct {
		c   *wsConn
		err error
	}
	done := make(chan outcome, 1)
	report := func(o outcome) {
		select { // the handler may run again on close; only the first counts
		case done <- o:
		default:
		}
	}
	cc.Do(req, func(resp *http.Response, conn net.Conn, err error) {
		if err != nil {
			report(outcome{err: err})
			return
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			report(outcome{err: &HandshakeError{Status: resp.StatusCode}})
			return
		}
		if resp.Header.Get("Sec-Websocket-Accept") != wsframe.AcceptKey(key) {
			report(outcome{err: errors.New("bench: bad Sec-WebSocket-Accept")})
			return
		}
		nbc, ok := conn.(*nbio.Conn)
		if !ok {
			report(outcome{err: errors.New("bench: unexpected conn type")})
			return
		}
		parser, ok := nbc.Session().(*nbhttp.Parser)
		if !ok {
			report(outcome{err: errors.New("bench: unexpected session type")})
			return
		}
		ws := &wsConn{nbc: nbc, session: session, onText: proto.onText, onClose: proto.onClose, count: proto.deflate, cache: proto.cache,
			deflate: proto.deflate && strings.HasPrefix(resp.Header.Get("Sec-Websocket-Extensions"), "permessage-deflate")}
		parser.ParserCloser = ws
		nbc.SetSession(ws)
		report(outcome{c: ws})
	})
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case o := <-done:
		if o.err != nil {
			cc.CloseWithError(o.err)
		}
		return o.c, o.err
	case <-t.C:
		cc.CloseWithError(errDialTimeout)
		return nil, errDialTimeout
	}
}

// sourceIP is the loopback source address for global connection index i:
// 127.0.0.1 … 127.0.0.k, round robin. IPv6 targets get nil (any).
func sourceIP(i, k int, v6 bool) net.IP {
	if v6 || k <= 1 {
		if v6 {
			return nil
		}
		return net.IPv4(127, 0, 0, 1)
	}
	return net.IPv4(127, 0, 0, byte(1+i%k))
}
