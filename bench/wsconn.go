package bench

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"sync/atomic"

	"github.com/lesismal/nbio"
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

	// poller only
	rbuf       []byte
	msg        []byte
	fragmented bool

	closed atomic.Bool
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

// Parse implements nbhttp.ParserCloser. Server frames are unmasked.
func (c *wsConn) Parse(data []byte) error {
	if len(c.rbuf) > 0 {
		c.rbuf = append(c.rbuf, data...)
		data = c.rbuf
	}
frames:
	for len(data) >= 2 {
		fin := data[0]&0x80 != 0
		op := data[0] & 0x0F
		n := uint64(data[1] & 0x7F)
		hdr := 2
		switch n {
		case 126:
			if len(data) < 4 {
				break frames // extended length not in yet
			}
			n, hdr = uint64(binary.BigEndian.Uint16(data[2:4])), 4
		case 127:
			if len(data) < 10 {
				break frames
			}
			n, hdr = binary.BigEndian.Uint64(data[2:10]), 10
		}
		if data[1]&0x80 != 0 {
			return errors.New("bench: server sent a masked frame")
		}
		if n > 1<<26 {
			return errors.New("bench: frame too large")
		}
		total := hdr + int(n)
		if len(data) < total {
			break frames
		}
		p := data[hdr:total]
		switch op {
		case 0x1: // text
			if fin {
				c.onText(c, p)
			} else {
				c.fragmented = true
				c.msg = append(c.msg[:0], p...)
			}
		case 0x0: // continuation
			if c.fragmented {
				c.msg = append(c.msg, p...)
				if fin {
					c.fragmented = false
					c.onText(c, c.msg)
				}
			}
		case 0x9: // ping
			_ = c.write(0xA, p)
		case 0x8: // close: answer and hang up
			_ = c.write(0x8, p[:min(len(p), 2)])
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
func (c *wsConn) WriteText(p []byte) error { return c.write(0x1, p) }

// write sends one masked frame (clients must mask, RFC 6455 5.3).
func (c *wsConn) write(op byte, p []byte) error {
	if c.closed.Load() {
		return errClosed
	}
	_, err := c.nbc.Write(appendMaskedFrame(make([]byte, 0, len(p)+14), op, p))
	return err
}

// appendMaskedFrame appends one final client frame of opcode op carrying
// p, masked with a random key as a client must (RFC 6455 5.3).
func appendMaskedFrame(b []byte, op byte, p []byte) []byte {
	b = append(b, 0x80|op)
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], rand.Uint32())
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, p...)
	for i := range b[start:] {
		b[start+i] ^= key[i&3]
	}
	return b
}

// Close sends a normal close frame and closes the socket.
func (c *wsConn) Close() error {
	_ = c.write(0x8, []byte{0x03, 0xE8})
	return c.nbc.Close()
}
