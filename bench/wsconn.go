package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync/atomic"

	"github.com/lesismal/nbio"

	"github.com/webinate/broker/wsframe"
)

// wsConn is the client side of one WebSocket. It is nbio's session for the
// socket after the handshake: nbio calls Parse on a poller goroutine with
// the bytes read, and the harness handles each text message right there,
// straight from the read buffer. nbio's own websocket.Conn copies every
// message into a pooled buffer first; at a million deliveries a second that
// copy and its allocations were about half of the harness's CPU, and the
// harness shares the machine with the server it measures.
type wsConn struct {
	nbc     *nbio.Conn
	session any
	onText  func(c *wsConn, msg []byte)
	onClose func(c *wsConn)

	// deflate: the handshake negotiated permessage-deflate (offered when
	// the harness runs with -compression, with no context takeover both
	// ways): messages with RSV1 are inflated, each on its own. count: the
	// harness runs with -compression, so wire and plain are counted (not
	// otherwise: a plain run costs what it did before the option).
	deflate, count bool
	// cache, if set, is the process's inflateCache (shared by every
	// connection), used instead of inflating each message here.
	cache *inflateCache

	// poller only
	rbuf       []byte
	msg        []byte
	fragmented bool
	compressed bool   // the fragmented message in progress has RSV1
	inflated   []byte // inflate output, reused

	// wire and plain count the text payload bytes received as they came
	// and as handled (inflated); each connection's own (one poller adds
	// to them), summed at report time.
	wire, plain atomic.Int64
	// inflations is the messages this connection inflated itself,
	// cacheHits those the cache had inflated already.
	inflations, cacheHits atomic.Int64

	closed atomic.Bool
}

// deflateOffer is what the harness offers with -compression: what the
// broker answers, and what gorilla offers.
const deflateOffer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// inflate returns the message p inflated (at most maxInflate bytes):
// from the process's cache if it has one (shared, read only), else in
// c.inflated.
func (c *wsConn) inflate(p []byte) ([]byte, error) {
	if c.cache != nil {
		out, hit, err := c.cache.inflate(p)
		if hit {
			c.cacheHits.Add(1)
		} else if err == nil {
			c.inflations.Add(1)
		}
		return out, err
	}
	out, err := wsframe.Inflate(c.inflated[:0], p, maxInflate)
	if err != nil {
		return nil, fmt.Errorf("bench: inflate: %w", err)
	}
	c.inflated = out
	c.inflations.Add(1)
	return out, nil
}

// text hands one whole text message to onText, inflated if compressed.
func (c *wsConn) text(p []byte, compressed bool) error {
	if !c.count {
		c.onText(c, p)
		return nil
	}
	c.wire.Add(int64(len(p)))
	if compressed {
		var err error
		if p, err = c.inflate(p); err != nil {
			return err
		}
	}
	c.plain.Add(int64(len(p)))
	c.onText(c, p)
	return nil
}

var errClosed = errors.New("bench: connection closed")

// Session returns what the harness attached to the connection.
func (c *wsConn) Session() any { return c.session }

// UnderlayerConn implements nbhttp.ParserCloser.
func (c *wsConn) UnderlayerConn() net.Conn { return c.nbc }

// CloseAndClean implements nbhttp.ParserCloser: nbio calls it once when the
// socket is gone.
func (c *wsConn) CloseAndClean(error) {
	if !c.closed.Swap(true) && c.onClose != nil {
		c.onClose(c)
	}
}

// Parse implements nbhttp.ParserCloser. Server frames are unmasked and
// use no reserved bit but RSV1 with permessage-deflate; a frame that
// breaks RFC 6455 ends the connection.
func (c *wsConn) Parse(data []byte) error {
	if len(c.rbuf) > 0 {
		c.rbuf = append(c.rbuf, data...)
		data = c.rbuf
	}
	rules := wsframe.FromServer
	if c.deflate {
		rules.RSV = wsframe.RSV1
	}
	for len(data) > 0 {
		h, hdr, err := rules.ParseHeader(data)
		if err == wsframe.ErrShort {
			break // the rest of the header is not in yet
		}
		if err != nil {
			return fmt.Errorf("bench: server frame: %w", err)
		}
		if h.Length > 1<<26 {
			return errors.New("bench: frame too large")
		}
		if uint64(len(data)-hdr) < h.Length {
			break
		}
		total := hdr + int(h.Length)
		p := data[hdr:total]
		switch h.Op {
		case wsframe.OpText:
			compressed := h.RSV&wsframe.RSV1 != 0
			if h.Fin {
				if err := c.text(p, compressed); err != nil {
					return err
				}
			} else {
				c.fragmented, c.compressed = true, compressed
				c.msg = append(c.msg[:0], p...)
			}
		case wsframe.OpContinuation:
			if c.fragmented {
				c.msg = append(c.msg, p...)
				if h.Fin {
					c.fragmented = false
					if err := c.text(c.msg, c.compressed); err != nil {
						return err
					}
				}
			}
		case wsframe.OpPing:
			_ = c.write(wsframe.OpPong, p)
		case wsframe.OpClose: // answer and hang up
			_ = c.write(wsframe.OpClose, p[:min(len(p), 2)])
			_ = c.nbc.Close()
			return nil
		}
		data = data[total:]
	}
	// Keep a partial frame; copy handles the overlap when data is
	// already a suffix of rbuf.
	switch {
	case len(data) == 0:
		c.rbuf = c.rbuf[:0]
	case len(c.rbuf) > 0:
		c.rbuf = c.rbuf[:copy(c.rbuf, data)]
	default:
		c.rbuf = append(c.rbuf[:0], data...)
	}
	return nil
}

// WriteText sends one masked text frame.
func (c *wsConn) WriteText(p []byte) error { return c.write(wsframe.OpText, p) }

// write sends one masked frame (clients must mask, RFC 6455 5.3).
func (c *wsConn) write(op byte, p []byte) error {
	if c.closed.Load() {
		return errClosed
	}
	_, err := c.nbc.Write(appendMaskedFrame(make([]byte, 0, wsframe.MaxHeaderLen+len(p)), op, p))
	return err
}

// appendMaskedFrame appends one final client frame of opcode op carrying
// p, masked with a random key as a client must (RFC 6455 5.3).
func appendMaskedFrame(b []byte, op byte, p []byte) []byte {
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], rand.Uint32())
	return wsframe.AppendMaskedFrame(b, op, key, p)
}

// Close sends a normal close frame and closes the socket.
func (c *wsConn) Close() error {
	_ = c.write(wsframe.OpClose, []byte{0x03, 0xE8}) // 1000, normal
	return c.nbc.Close()
}
