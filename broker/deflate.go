package broker

import (
	"bytes"
	"compress/flate"
	"strconv"
	"strings"

	"github.com/webinate/broker/eventlog"
	"github.com/webinate/broker/wsframe"
)

// permessage-deflate (RFC 7692), negotiated per connection and compressed
// once per event.
//
// The broker answers every acceptable offer with server_no_context_takeover
// and client_no_context_takeover: each message, both ways, is compressed on
// its own. That is what makes one compression per event possible: the
// deflated frame of an event is the same bytes for every connection, so
// the event log stores it beside the plain frame (as variants, see
// logDeflate) and the fan-out writes it like any other log frame, with no
// compressor per connection and no compression on the delivery path.
// Client messages are inflated with a pooled reader, fresh per message,
// into a buffer bounded by MaxMessageSize.

// Log variants (0 the plain frames, k eventlog.Config.Variants[k-1]): the
// frames a connection reads, by its resume mode and compression.
const (
	logPlain      = 0 // the frames as published
	logSeq        = 1 // with "seq" and "epoch" (resume.go)
	logDeflate    = 2 // deflated, or plain when small or incompressible
	logDeflateSeq = 3 // the seq frame deflated, or plain like logDeflate
)

// logVariant is the log encoding a connection reads.
func logVariant(seqMode, deflate bool) int {
	v := logPlain
	if seqMode {
		v = logSeq
	}
	if deflate {
		v += logDeflate
	}
	return v
}

// logVariants are the event log's alternate encodings for epoch, in
// variant order (logSeq first). The deflate variants are built on the appender, once per
// event, and only while some connection reads them; an event appended
// before that is served plain (Lazy), which permessage-deflate allows, so
// that a resume never compresses per connection.
func (s *Server) logVariants(epoch string) []eventlog.Variant {
	seq := seqFrame(epoch)
	d := s.deflater
	return []eventlog.Variant{
		{Build: seq, Extra: seqFrameExtra(epoch)},
		{
			Build: func(dst []byte, _ uint64, frame []byte) []byte { return d.frame(dst, frame) },
			Lazy:  func(dst []byte, _ uint64, frame []byte) []byte { return append(dst, frame...) },
		},
		{
			Build: func(dst []byte, n uint64, frame []byte) []byte {
				d.seqTmp = seq(d.seqTmp[:0], n, frame)
				return d.frame(dst, d.seqTmp)
			},
			Extra: seqFrameExtra(epoch),
			Lazy:  seq,
		},
	}
}

// DefaultCompressionMin is the smallest event payload the broker deflates
// (Config.CompressionMin): below it the deflate header and the block
// overhead save too little to pay the CPU, and the event goes out plain
// (RSV1 clear), which permessage-deflate allows for any message.
const DefaultCompressionMin = 256

// deflateLevel is the compression level of event frames. Each event is
// compressed once, on the publisher's path under the log's lock, so the
// fast level keeps publishing cheap; JSON compresses well at it.
const deflateLevel = flate.BestSpeed

// deflateResponse is the broker's answer to an accepted offer.
const deflateResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// negotiateDeflate reads a handshake's Sec-WebSocket-Extensions values and
// returns the extension response for the first permessage-deflate offer
// the broker can honour, or "" to decline (no extension). A malformed
// header declines the extension; it does not fail the upgrade.
//
// Parameters (RFC 7692 section 7.1): the two no_context_takeover ones
// are accepted (the answer has both anyway: a server may add
// client_no_context_takeover unasked). server_max_window_bits below 15
// cannot be honoured: compress/flate always uses a 32 KiB window, and
// even without context takeover the window bounds back-references within
// a message, so such an offer is skipped; 15 is accepted and answered.
// client_max_window_bits (with a value 8-15 or none) only says the client
// could use a smaller window: the broker inflates any window, so it does
// not answer it and the client keeps its default. Anything else (an
// unknown or repeated parameter, a bad value) makes the offer unacceptable.
func negotiateDeflate(values []string) string {
	offers, ok := parseExtensions(values)
	if !ok {
		return ""
	}
	for _, o := range offers {
		if o.name != "permessage-deflate" {
			continue
		}
		if resp, ok := acceptDeflate(o.params); ok {
			return resp
		}
	}
	return ""
}

// acceptDeflate judges one permessage-deflate offer's parameters.
func acceptDeflate(params []extParam) (string, bool) {
	resp := deflateResponse
	seen := map[string]bool{}
	for _, p := range params {
		if seen[p.name] {
			return "", false // RFC 7692 section 7: a repeated parameter declines the offer
		}
		seen[p.name] = true
		switch p.name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if p.hasValue {
				return "", false
			}
		case "server_max_window_bits":
			if !p.hasValue || !validWindowBits(p.value) || p.value != "15" {
				return "", false
			}
			resp += "; server_max_window_bits=15"
		case "client_max_window_bits":
			if p.hasValue && !validWindowBits(p.value) {
				return "", false
			}
		default:
			return "", false
		}
	}
	return resp, true
}

// validWindowBits: 8 to 15, in decimal without leading zeros.
func validWindowBits(v string) bool {
	n, err := strconv.Atoi(v)
	return err == nil && n >= 8 && n <= 15 && strconv.Itoa(n) == v
}

// extension is one element of a Sec-WebSocket-Extensions list.
type extension struct {
	name   string
	params []extParam
}

type extParam struct {
	name, value string
	hasValue    bool
}

// parseExtensions parses Sec-WebSocket-Extensions values (RFC 6455
// section 9.1): extension *( ";" param [ "=" (token | quoted-string) ] ),
// comma separated, across any number of header lines. It reports false
// for anything that does not parse.
func parseExtensions(values []string) ([]extension, bool) {
	var out []extension
	for _, v := range values {
		p := extParser{s: v}
		for {
			p.space()
			if p.done() {
				break
			}
			name := p.token()
			if name == "" {
				return nil, false
			}
			e := extension{name: strings.ToLower(name)}
			for {
				p.space()
				if p.done() || p.peek() == ',' {
					break
				}
				if p.peek() != ';' {
					return nil, false
				}
				p.i++
				p.space()
				pn := p.token()
				if pn == "" {
					return nil, false
				}
				prm := extParam{name: strings.ToLower(pn)}
				p.space()
				if !p.done() && p.peek() == '=' {
					p.i++
					p.space()
					val, ok := p.value()
					if !ok {
						return nil, false
					}
					prm.value, prm.hasValue = val, true
				}
				e.params = append(e.params, prm)
			}
			out = append(out, e)
			if !p.done() { // a comma
				p.i++
			}
		}
	}
	return out, true
}

type extParser struct {
	s string
	i int
}

func (p *extParser) done() bool { return p.i >= len(p.s) }
func (p *extParser) peek() byte { return p.s[p.i] }
func (p *extParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// token reads an RFC 7230 token ("" if there is none).
func (p *extParser) token() string {
	start := p.i
	for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// value reads a token or a quoted-string whose content is a token (RFC
// 6455 section 9.1 requires that of extension parameter values).
func (p *extParser) value() (string, bool) {
	if p.done() {
		return "", false
	}
	if p.peek() != '"' {
		t := p.token()
		return t, t != ""
	}
	p.i++
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != '"' {
		if !isTokenChar(p.s[p.i]) {
			return "", false
		}
		p.i++
	}
	if p.done() || p.i == start {
		return "", false
	}
	v := p.s[start:p.i]
	p.i++
	return v, true
}

func isTokenChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	return !strings.ContainsRune("()<>@,;:\\\"/[]?={}", rune(c))
}

// deflater compresses event frames for the log's deflate variants. It is
// used only by the log's appender (under the log's lock: eventlog calls
// variant builders there), so one compressor serves the whole node.
type deflater struct {
	min    int // payloads shorter than this stay plain
	w      *flate.Writer
	buf    bytes.Buffer
	seqTmp []byte // the seq frame being deflated (logDeflateSeq)
}

func newDeflater(min int) *deflater {
	w, _ := flate.NewWriter(nil, deflateLevel) // the level is valid
	return &deflater{min: min, w: w}
}

// frame appends the permessage-deflate encoding of the server frame
// plain to dst: one final frame with RSV1 whose payload is the deflated
// payload without its closing 00 00 ff ff (RFC 7692 section 7.2.1), or
// plain unchanged when its payload is under min bytes or deflating would
// not make the frame smaller. So the result is never longer than plain,
// which is what sizes the log's variant buffers.
func (d *deflater) frame(dst, plain []byte) []byte {
	h, n, err := wsframe.ParseHeader(plain)
	if err != nil || !h.Fin || h.Op != opText && h.Op != opBinary || int(h.Length) < d.min {
		return append(dst, plain...)
	}
	d.buf.Reset()
	d.w.Reset(&d.buf)
	_, _ = d.w.Write(plain[n:]) // writes to a bytes.Buffer do not fail
	_ = d.w.Flush()
	out := d.buf.Bytes()
	out = bytes.TrimSuffix(out, wsframe.DeflateTail)
	if frameSize(len(out)) >= len(plain) {
		return append(dst, plain...)
	}
	dst = wsframe.AppendHeader(dst, wsframe.Header{Fin: true, RSV: wsframe.RSV1, Op: h.Op, Length: uint64(len(out))})
	return append(dst, out...)
}
