package wsframe

import (
	"encoding/binary"
	"unicode/utf8"
)

// AppendHeader appends h in its one valid encoding: the shortest length
// form, the key after it when h.Masked. It encodes what it is given (RSV
// bits, any opcode, any FIN), so a test can build frames the parser
// refuses; only the low four bits of Op and the RSV bits of RSV are used.
// The caller appends the h.Length payload bytes, masked with h.Key when
// h.Masked (MaskBytes).
func AppendHeader(dst []byte, h Header) []byte {
	b0 := h.RSV&anyRSV | h.Op&0x0F
	if h.Fin {
		b0 |= 0x80
	}
	var m byte
	if h.Masked {
		m = 0x80
	}
	switch n := h.Length; {
	case n < 126:
		dst = append(dst, b0, m|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, b0, m|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, b0, m|127)
		dst = binary.BigEndian.AppendUint64(dst, n)
	}
	if h.Masked {
		dst = append(dst, h.Key[:]...)
	}
	return dst
}

// AppendFrame appends one final, unmasked frame: what a server sends.
// Server frames are never masked, which is what lets a server encode an
// event once and write the same bytes to every recipient.
func AppendFrame(dst []byte, op byte, payload []byte) []byte {
	dst = AppendHeader(dst, Header{Fin: true, Op: op, Length: uint64(len(payload))})
	return append(dst, payload...)
}

// AppendMaskedFrame appends one final frame masked with key: what a client
// sends (section 5.3 wants a fresh, unpredictable key per frame, which is
// the caller's to choose). payload itself is left as it is.
func AppendMaskedFrame(dst []byte, op byte, key [4]byte, payload []byte) []byte {
	dst = AppendHeader(dst, Header{Fin: true, Op: op, Masked: true, Key: key, Length: uint64(len(payload))})
	start := len(dst)
	dst = append(dst, payload...)
	MaskBytes(key, 0, dst[start:])
	return dst
}

// AppendClose appends an unmasked close frame with code and reason. The
// reason is cut to fit a control frame (MaxControlPayload), at a character
// boundary so that it stays valid UTF-8. CloseNoStatus, which must not be
// sent (section 7.4.1), appends a close frame with no payload: the way to
// say "no status".
func AppendClose(dst []byte, code int, reason string) []byte {
	if code == CloseNoStatus {
		return AppendFrame(dst, OpClose, nil)
	}
	if len(reason) > MaxControlPayload-2 {
		cut := MaxControlPayload - 2
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	dst = AppendHeader(dst, Header{Fin: true, Op: OpClose, Length: uint64(2 + len(reason))})
	dst = append(dst, byte(code>>8), byte(code))
	return append(dst, reason...)
}

// FrameSize is the encoded size of an unmasked frame carrying n payload
// bytes: what AppendFrame adds, for sizing a buffer before building.
func FrameSize(n int) int {
	switch {
	case n < 126:
		return 2 + n
	case n <= 0xFFFF:
		return 4 + n
	default:
		return 10 + n
	}
}

// Payload returns the payload of frame, which holds exactly one unmasked
// frame as AppendFrame builds it, or nil if frame is not one whole valid
// frame. It is for a server that keeps encoded frames and needs their
// contents back without keeping them twice.
func Payload(frame []byte) []byte {
	h, n, err := ParseHeader(frame)
	if err != nil || h.Masked || uint64(len(frame)-n) != h.Length {
		return nil
	}
	return frame[n:]
}

// MaskBytes XORs b with key, starting at key offset pos (the payload bytes
// already masked, mod 4), and returns the offset after b, so that a payload
// split across buffers can be masked piece by piece. Masking twice
// unmasks.
func MaskBytes(key [4]byte, pos int, b []byte) int {
	// Word-at-a-time for long payloads; byte loop for the tail.
	if len(b) >= 16 {
		// Rotate the key so that b[0] lines up with key[pos&3].
		var k [8]byte
		for i := range k {
			k[i] = key[(pos+i)&3]
		}
		kw := binary.LittleEndian.Uint64(k[:])
		for len(b) >= 8 {
			v := binary.LittleEndian.Uint64(b)
			binary.LittleEndian.PutUint64(b, v^kw)
			b = b[8:]
		}
	}
	for i := range b {
		b[i] ^= key[pos&3]
		pos++
	}
	return pos & 3
}

// ValidReceivedCloseCode reports whether a peer may send code in a close
// frame (section 7.4): the codes RFC 6455 and the IANA registry define for
// sending, and the ranges for libraries (3000-3999) and applications
// (4000-4999). Anything else (1004-1006 and 1015, reserved or report-only;
// codes not assigned yet) in a close frame is a protocol error.
func ValidReceivedCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
