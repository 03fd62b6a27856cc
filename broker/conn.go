package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/lesismal/nbio"
	"golang.org/x/time/rate"

	"github.com/webinate/broker/wsframe"
)

// conn is one upgraded WebSocket connection. It is the nbio session of its
// socket: nbio calls Parse on a poller goroutine with the bytes just read,
// and CloseAndClean once the socket is gone. There is no goroutine per
// connection.
//
// Concurrency: the read side (rbuf, msg, fragmented, limiters, held) is
// touched only under rmu: by Parse, on the poller, and by resume, on a
// timer, when paced input is released (see hold).
//
// Writes may come from the poller (replies), shard workers (fan-out) and
// the sweeper (pings); wmu and nbio.Conn serialise them, and every write is
// one or more whole frames so they never interleave mid-frame.
type conn struct {
	// cursor is the connection's fan-out state: its place in the event
	// log and its credit (cursor.go). Its id is the connection's.
	cursor

	srv     *Server
	nbc     *nbio.Conn
	backend bool
	remote  string
	// username is the identity from the handshake's JWT ("" when
	// anonymous); targeted events reach only their user's connections.
	username string

	// seqMode: this connection receives the log's alternate frames, which
	// carry "seq" and "epoch" (see resume.go).
	seqMode bool
	// deflate: permessage-deflate was negotiated (deflate.go). The
	// connection reads the log's deflated frames (cursor.variant), and
	// its client may send compressed messages.
	deflate bool

	gone atomic.Bool // the socket is closed (CloseAndClean ran)

	exp expiry // the token's lifetime (identity.go)

	ready atomic.Bool // set once the fields above are initialised
	// queued counts bytes handed to nbio, written the bytes the kernel
	// took (nbio's OnWrittenSize); the difference is what this connection
	// holds in memory, bounded by MaxPendingBytes.
	queued   atomic.Int64
	written  atomic.Int64
	lastRead atomic.Int64 // unix nanos of the last bytes received
	lastPing atomic.Int64 // unix nanos of the last ping sent

	// wmu orders the close frame after every frame written before it:
	// nothing is written once closing is set under it.
	wmu        sync.Mutex
	closing    atomic.Bool            // a close frame was sent or the socket is going
	flushClose atomic.Bool            // close once pending output is flushed
	reason     atomic.Pointer[reason] // why we closed it, if we did

	// read side, under rmu.
	rmu        sync.Mutex
	held       bool                 // input paced: see hold
	holdUntil  func() time.Duration // while held: how much longer
	rbuf       []byte
	msg        []byte
	fragmented bool
	compressed bool   // the fragmented message in progress has RSV1 (deflate)
	inflated   []byte // output buffer for inflated messages
	desync     bool   // after a fatal frame error: discard input until closed
	msgLimit   *rate.Limiter
	bcastLimit *rate.Limiter
	bcastBytes *rate.Limiter
	limGen     uint64 // generation of the limits the limiters have (see retune)

	// tls is the connection's TLS link, nil for plain ws://. Writes go
	// through it (writeRaw).
	tls *tlsLink
}

// reason is why the broker closed a connection: the close status sent and
// a label counted in stats and logs.
type reason struct {
	code  int
	label string
	text  string
}

// Close reasons. Labels are stable: they are stats keys.
var (
	reasonProtocol   = reason{closeProtocolError, "protocol_error", ""}
	reasonBinary     = reason{closeUnsupportedData, "binary_message", "binary messages are not supported"}
	reasonBadUTF8    = reason{closeInvalidPayload, "invalid_utf8", "text message is not valid UTF-8"}
	reasonBadDeflate = reason{closeInvalidPayload, "invalid_deflate", "compressed message does not inflate"}
	reasonTooBig     = reason{closeTooBig, "message_too_big", ""}
	reasonIdle       = reason{closeGoingAway, "idle_timeout", "idle timeout"}
	reasonShutdown   = reason{closeGoingAway, "shutdown", "server shutting down"}
	reasonRate       = reason{closePolicyViolation, "rate_limited", "message rate exceeded"}
	reasonPanic      = reason{closeInternalError, "internal_error", "internal error"}
	reasonSlow       = reason{closePolicyViolation, "slow_consumer", "slow consumer"}
	reasonMemory     = reason{closePolicyViolation, "output_memory", "server output memory limit"}
	reasonPeerClosed = reason{closeNormal, "peer_closed", ""}
)

// UnderlayerConn implements nbhttp.ParserCloser.
func (c *conn) UnderlayerConn() net.Conn { return c.nbc }

// Parse implements nbhttp.ParserCloser: it consumes the bytes nbio just read.
// data is nbio's read buffer, valid only during this call: payloads are
// unmasked in place and whatever must outlive the call is copied.
func (c *conn) Parse(data []byte) (err error) {
	// c was built on the handshake goroutine and reached this poller
	// through nbio's unsynchronised session field; this load pairs with the
	// store in serveUpgrade so the hand-off is ordered (and visible to the
	// race detector).
	_ = c.ready.Load()
	c.lastRead.Store(c.srv.now())
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.desync {
		// After a fatal input error we sent a close frame; frame
		// boundaries cannot be trusted any more, so whatever comes next
		// (the client's close reply, typically) ends the connection now
		// instead of after CloseTimeout. Everything received is read, so
		// the close sends FIN, not RST, and our close frame arrives.
		c.closeAfterFlush()
		return nil
	}
	defer c.recoverPanic()
	if c.held {
		// Input is paced (see hold): nbio read this before the pause took
		// effect. Keep it, within a hard cap.
		if len(c.rbuf)+len(data) > c.srv.maxHeld() {
			c.fail(reasonRate, "")
			return nil
		}
		c.rbuf = append(c.rbuf, data...)
		return nil
	}
	c.consume(data)
	return nil
}

// recoverPanic closes only this connection when handling its input
// panics.
func (c *conn) recoverPanic() {
	if p := recover(); p != nil {
		c.srv.log.Error().Uint64("conn", c.id).Interface("panic", p).
			Bytes("stack", debug.Stack()).Msg("panic while handling a message; closing that connection")
		c.srv.stats.panics.Add(1)
		c.desync = true
		c.closeWith(reasonPanic, "")
	}
}

// consume handles the frames in rbuf followed by data, until input runs
// out or is held; the rest stays in rbuf. Called with rmu held.
func (c *conn) consume(data []byte) {
	if len(c.rbuf) > 0 {
		c.rbuf = append(c.rbuf, data...)
		data = c.rbuf
	}
	for len(data) > 0 && !c.desync && !c.held {
		n := c.frame(data)
		if n == 0 {
			break
		}
		data = data[n:]
	}
	if c.desync {
		c.rbuf = nil
		return
	}
	if len(data) == 0 {
		// Drop a big buffer left by a big message: idle connections
		// should cost little memory.
		if cap(c.rbuf) > 4096 {
			c.rbuf = nil
		} else {
			c.rbuf = c.rbuf[:0]
		}
		return
	}
	// Keep the partial frame (or, when held, everything not handled yet).
	// copy handles the overlap when data is already a suffix of rbuf.
	if len(c.rbuf) > 0 {
		c.rbuf = c.rbuf[:copy(c.rbuf, data)]
	} else {
		c.rbuf = append(c.rbuf[:0], data...)
	}
}

// frame handles the first frame in data and returns the bytes it used, or
// 0 if the frame is not complete yet. wsframe judges the header against
// RFC 6455; this judges it against the connection's state and limits as
// soon as the header is in, so an oversized frame is refused before it is
// buffered.
func (c *conn) frame(data []byte) int {
	// Without permessage-deflate a reserved bit is a protocol error; with
	// it RSV1 marks a compressed message, on its first frame only (RFC
	// 7692 section 6.1), never on a control frame.
	rules := wsframe.FromClient
	if c.deflate {
		rules.RSV = wsframe.RSV1
	}
	h, hdr, err := rules.ParseHeader(data)
	if err != nil {
		if err != wsframe.ErrShort {
			c.failHeader(h, err)
		}
		return 0
	}
	if h.RSV != 0 {
		switch h.Op {
		case opContinuation:
			c.fail(reasonProtocol, "RSV1 on a continuation frame")
			return 0
		case opClose, opPing, opPong:
			c.fail(reasonProtocol, "RSV1 on a control frame")
			return 0
		}
	}
	if h.Op < opClose {
		switch h.Op {
		case opContinuation:
			if !c.fragmented {
				c.fail(reasonProtocol, "continuation frame without a message to continue")
				return 0
			}
		case opText:
			if c.fragmented {
				c.fail(reasonProtocol, "new message while a fragmented message is incomplete")
				return 0
			}
		case opBinary:
			c.fail(reasonBinary, "")
			return 0
		}
		if h.Length > uint64(c.srv.cfg.MaxMessageSize-len(c.msg)) {
			c.failTooBig()
			return 0
		}
	}
	if uint64(len(data)-hdr) < h.Length {
		return 0
	}
	total := hdr + int(h.Length)
	payload := data[hdr:total]
	wsframe.MaskBytes(h.Key, 0, payload)

	switch h.Op {
	case opText:
		compressed := h.RSV&wsframe.RSV1 != 0
		switch {
		case !h.Fin:
			c.fragmented = true
			c.compressed = compressed
			c.msg = append(c.msg[:0], payload...)
		case compressed:
			c.inflateMessage(payload)
		default:
			c.message(payload)
		}
	case opContinuation:
		c.msg = append(c.msg, payload...)
		if h.Fin {
			c.fragmented = false
			if c.compressed {
				c.compressed = false
				c.inflateMessage(c.msg)
			} else {
				c.message(c.msg)
			}
			if cap(c.msg) > 4096 {
				c.msg = nil
			} else {
				c.msg = c.msg[:0]
			}
		}
	case opPing:
		c.writeControl(opPong, payload)
	case opPong:
		// lastRead is already updated; a credit pong also returns credit.
		c.pong(payload)
	case opClose:
		c.peerClose(payload)
	}
	return total
}

// failHeader closes the connection for a header wsframe refused, with the
// status and reason the client is told: 1002, but for a length no message
// can have, which is too big like any over MaxMessageSize.
func (c *conn) failHeader(h wsframe.Header, err error) {
	switch err {
	case wsframe.ErrReservedBits:
		c.fail(reasonProtocol, "reserved bits set without a negotiated extension")
	case wsframe.ErrUnmasked:
		c.fail(reasonProtocol, "client frames must be masked")
	case wsframe.ErrReservedOpcode:
		c.fail(reasonProtocol, fmt.Sprintf("reserved opcode %#x", h.Op))
	case wsframe.ErrFragmentedControl:
		c.fail(reasonProtocol, "fragmented control frame")
	case wsframe.ErrControlTooLong:
		c.fail(reasonProtocol, "control frame payload over 125 bytes")
	case wsframe.ErrNonMinimalLength:
		c.fail(reasonProtocol, "payload length not in its shortest form")
	case wsframe.ErrLengthOverflow:
		c.failTooBig()
	default:
		c.fail(reasonProtocol, err.Error())
	}
}

// failTooBig closes the connection for a message over MaxMessageSize.
func (c *conn) failTooBig() {
	c.fail(reasonTooBig, fmt.Sprintf("message exceeds %d bytes", c.srv.cfg.MaxMessageSize))
}

// message handles one complete text message.
func (c *conn) message(msg []byte) {
	if c.closing.Load() {
		return
	}
	if !utf8.Valid(msg) {
		c.fail(reasonBadUTF8, "")
		return
	}
	c.srv.stats.messagesIn.Add(1)
	c.srv.dispatch(c, msg)
}

// inflateMessage inflates one compressed message (permessage-deflate,
// without context takeover: each on its own) and handles it. The output
// is bounded by MaxMessageSize like any message: one that inflates past
// it closes 1009 as soon as it does, having cost at most that much
// memory. Data that does not inflate closes 1007 (invalid payload: the
// message is inconsistent with the compression it claims).
func (c *conn) inflateMessage(p []byte) {
	if c.closing.Load() {
		return
	}
	out, err := wsframe.Inflate(c.inflated[:0], p, c.srv.cfg.MaxMessageSize)
	c.inflated = out
	defer func() {
		// An idle connection keeps no big buffer (as with msg).
		if cap(c.inflated) > 4096 {
			c.inflated = nil
		}
	}()
	switch {
	case errors.Is(err, wsframe.ErrInflateTooBig):
		c.srv.stats.inflateRefused.Add(1)
		c.fail(reasonTooBig, fmt.Sprintf("message exceeds %d bytes", c.srv.cfg.MaxMessageSize))
		return
	case err != nil:
		c.srv.stats.inflateRefused.Add(1)
		c.fail(reasonBadDeflate, "")
		return
	}
	c.srv.stats.inflated.Add(1)
	c.message(out)
}

// peerClose answers a close frame from the peer and closes the socket.
func (c *conn) peerClose(p []byte) {
	code := closeNoStatus
	switch {
	case len(p) == 1:
		c.fail(reasonProtocol, "close frame with a 1-byte payload")
		return
	case len(p) >= 2:
		code = int(binary.BigEndian.Uint16(p))
		if !wsframe.ValidReceivedCloseCode(code) {
			c.fail(reasonProtocol, fmt.Sprintf("invalid close code %d", code))
			return
		}
		if !utf8.Valid(p[2:]) {
			c.fail(reasonBadUTF8, "close reason is not valid UTF-8")
			return
		}
	}
	c.desync = true
	if c.closing.Swap(true) {
		// We started the close; this is the answer.
		_ = c.nbc.Close()
		return
	}
	r := reasonPeerClosed
	c.reason.CompareAndSwap(nil, &r)
	// The echoed code; none if the peer sent none (wsframe.AppendClose).
	var buf [2 + wsframe.MaxControlPayload]byte
	frame := wsframe.AppendClose(buf[:0], code, "")
	c.wmu.Lock()
	_ = c.writeRaw(frame)
	c.wmu.Unlock()
	// The server closes the TCP connection first (RFC 6455 section 7.1.1),
	// but only once the reply has left: closing now would discard it if
	// it is queued behind a backlog, and the client would see 1006.
	c.closeAfterFlush()
}

// closeAfterFlush closes the socket once nbio has handed everything queued
// to the kernel, or after CloseTimeout.
func (c *conn) closeAfterFlush() {
	if c.pending() <= 0 {
		_ = c.nbc.Close()
		return
	}
	if c.flushClose.Swap(true) {
		return // already waiting for the flush (or its timeout)
	}
	if c.pending() <= 0 { // flushed meanwhile: the callback may have missed the flag
		_ = c.nbc.Close()
		return
	}
	nbc := c.nbc
	time.AfterFunc(c.srv.cfg.CloseTimeout, func() { _ = nbc.Close() })
}

// onWritten is nbio's report that the kernel took n more bytes. It runs
// with nbio's connection lock held, so a close it triggers runs apart.
func (c *conn) onWritten(n int) {
	c.written.Add(int64(n))
	if c.flushClose.Load() && c.pending() <= 0 && c.flushClose.Swap(false) {
		go func() { _ = c.nbc.Close() }()
	}
}

// fail closes the connection after a fatal input error; the frame stream
// cannot be trusted after it, so further input is discarded.
func (c *conn) fail(r reason, text string) {
	c.desync = true
	c.closeWith(r, text)
}

// closeWith sends a close frame with r's status and closes the socket once
// the peer answers or CloseTimeout passes. Safe from any goroutine; only
// the first call has an effect, and only it reports true.
func (c *conn) closeWith(r reason, text string) bool {
	c.wmu.Lock()
	if c.closing.Swap(true) {
		c.wmu.Unlock()
		return false
	}
	if text != "" {
		r.text = text
	}
	c.reason.CompareAndSwap(nil, &r)
	var buf [2 + wsframe.MaxControlPayload]byte
	// The close frame is exempt from the pending bound (nbio's own limit
	// has room for it): a slow consumer that catches up reads why it was
	// dropped.
	frame := wsframe.AppendClose(buf[:0], r.code, r.text)
	_ = c.writeRaw(frame)
	c.wmu.Unlock()
	nbc := c.nbc
	// Closing at once could reset the connection while the peer still has
	// unread data in flight, and the peer would never see our close frame.
	// Waiting for its answer (or a timeout) lets it read the frame.
	time.AfterFunc(c.srv.cfg.CloseTimeout, func() { _ = nbc.Close() })
	return true
}

// writeControl writes a control frame (ping/pong) with a short payload.
func (c *conn) writeControl(op byte, payload []byte) { c.sendFrame(op, payload) }

// send writes whole frames unless that would take the connection past
// MaxPendingBytes: then the connection is a slow consumer. It gets a 1008
// close frame queued behind what it has not read yet, and is dropped when
// CloseTimeout passes. nbio copies whatever the kernel does not take at
// once, so b may be reused as soon as send returns. Safe from any
// goroutine; it reports whether the frames were queued.
func (c *conn) send(b []byte) bool {
	if c.closing.Load() {
		return false
	}
	if p := c.pending(); p+int64(len(b)) > int64(c.srv.limits.Load().maxPending) {
		if c.closeWith(reasonSlow, "") {
			c.srv.slowConsumer(c, "pending bytes over max-pending")
		}
		return false
	}
	return c.write(b)
}

// write hands whole frames to nbio, which copies what the kernel does not
// take at once. It writes nothing once a close frame has been sent.
func (c *conn) write(b []byte) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closing.Load() {
		return false
	}
	return c.writeRaw(b) == nil
}

// isClosing reports that a close frame was sent or the socket is going
// (sink).
func (c *conn) isClosing() bool { return c.closing.Load() }

// closeSlow closes c as a slow consumer, and counts and logs it once
// (sink).
func (c *conn) closeSlow(why string) {
	if c.closeWith(reasonSlow, "") {
		c.srv.slowConsumer(c, why)
	}
}

// closeShutdown closes c with 1001 and text as its reason (sink).
func (c *conn) closeShutdown(text string) { c.closeWith(reasonShutdown, text) }

// writeRaw hands bytes to nbio, through TLS when the connection has it,
// and counts them in queued first (for TLS, the link counts the records
// it writes), so that nbio's report of written bytes never runs ahead.
// Called with wmu held, or before the connection is shared.
func (c *conn) writeRaw(b []byte) error {
	if c.tls != nil {
		_, err := c.tls.Write(b)
		return err
	}
	c.queued.Add(int64(len(b)))
	_, err := c.nbc.Write(b)
	return err
}

// pong takes the credit a pong returns (hub.pong).
func (c *conn) pong(p []byte) { c.srv.hub.pong(&c.cursor, p) }

// pending is the number of bytes queued but not yet taken by the kernel.
func (c *conn) pending() int64 { return c.queued.Load() - c.written.Load() }

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeText writes one text frame to this connection only.
func (c *conn) writeText(payload []byte) { c.sendFrame(opText, payload) }

// sendFrame sends one frame to this connection only, built in a pooled
// buffer: what send is given reaches nbio, so escape analysis would move a
// stack buffer to the heap, and every keepalive ping and pong would
// allocate.
func (c *conn) sendFrame(op byte, payload []byte) {
	if c.closing.Load() {
		return
	}
	pb := framePool.Get().(*[]byte)
	b := appendFrame((*pb)[:0], op, payload)
	c.send(b)
	if cap(b) <= 64<<10 {
		*pb = b[:0]
		framePool.Put(pb)
	}
}

// CloseAndClean implements nbhttp.ParserCloser: nbio calls it once the
// socket is closed, for whatever reason.
func (c *conn) CloseAndClean(err error) {
	c.closing.Store(true)
	c.gone.Store(true)
	c.srv.removeConn(c, err)
}

// isTimeout reports a read deadline expiry (nbio's own error, or a
// net.Error that says so).
func isTimeout(err error) bool {
	if errors.Is(err, nbio.ErrReadTimeout) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isOverflow reports nbio closing a socket because its pending writes
// exceeded MaxWriteBufferSize. send normally catches a slow consumer first;
// this is the backstop.
func isOverflow(err error) bool { return errors.Is(err, nbio.ErrOverflow) }
