package broker

import "encoding/binary"

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Close status codes the broker sends (RFC 6455 section 7.4.1).
const (
	closeNormal          = 1000
	closeGoingAway       = 1001
	closeProtocolError   = 1002
	closeUnsupportedData = 1003
	closeNoStatus        = 1005
	closeInvalidPayload  = 1007
	closePolicyViolation = 1008
	closeTooBig          = 1009
	closeInternalError   = 1011
)

// maxControlPayload is the largest payload a control frame may carry.
const maxControlPayload = 125

// appendFrame appends one unmasked, final server frame. Server frames are
// never masked, which is what lets one encoded frame be written unchanged to
// every recipient.
func appendFrame(dst []byte, op byte, payload []byte) []byte {
	return append(appendFrameHeader(dst, op, len(payload)), payload...)
}

// appendFrameHeader appends the header of an unmasked, final server frame
// carrying n payload bytes.
func appendFrameHeader(dst []byte, op byte, n int) []byte {
	switch {
	case n < 126:
		return append(dst, 0x80|op, byte(n))
	case n <= 0xFFFF:
		return append(dst, 0x80|op, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|op, 127)
		return binary.BigEndian.AppendUint64(dst, uint64(n))
	}
}

// frameSize is the encoded size of a server frame carrying n payload bytes.
func frameSize(n int) int {
	switch {
	case n < 126:
		return 2 + n
	case n <= 0xFFFF:
		return 4 + n
	default:
		return 10 + n
	}
}

// appendCloseFrame appends a close frame with a status code and a reason,
// truncated so the control frame stays within 125 bytes.
func appendCloseFrame(dst []byte, code int, reason string) []byte {
	if len(reason) > maxControlPayload-2 {
		reason = reason[:maxControlPayload-2]
	}
	var p [maxControlPayload]byte
	binary.BigEndian.PutUint16(p[:2], uint16(code))
	n := copy(p[2:], reason)
	return appendFrame(dst, opClose, p[:2+n])
}

// validReceivedCloseCode reports whether a peer may send code in a close
// frame (RFC 6455 section 7.4).
func validReceivedCloseCode(code int) bool {
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

// maskBytes XORs b with the 4-byte key starting at key offset pos and
// returns the next offset, so masking can resume across buffers.
func maskBytes(key [4]byte, pos int, b []byte) int {
	// Word-at-a-time for long payloads; byte loop for the tail.
	if len(b) >= 16 {
		// Rotate the key so that b[0] lines up with key[pos&3].
		var k [8]byte
		for i := 0; i < 8; i++ {
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
