package wsframe

import (
	"encoding/binary"
	"io"
)

// Header is one frame's header, decoded.
type Header struct {
	Fin bool // the last frame of its message
	// RSV holds the reserved bits in their first-byte positions (RSV1,
	// RSV2, RSV3). The parser reports them; whether they are allowed
	// depends on the extensions negotiated (Rules.RSV).
	RSV    byte
	Op     byte    // the opcode, 0x0-0xF
	Masked bool    // the payload is masked with Key (client frames)
	Key    [4]byte // the masking key; zero when not Masked
	Length uint64  // payload bytes that follow the header
}

// Rules are what a receiver requires of the frames it reads beyond what
// RFC 6455 requires of every frame: they depend on which end it is and on
// the extensions it negotiated. The zero Rules judge the mask bit not at
// all and accept no reserved bit.
type Rules struct {
	// Masked requires every frame to be masked (ErrUnmasked): a server
	// reading a client (section 5.1).
	Masked bool
	// Unmasked requires every frame to be unmasked (ErrMasked): a client
	// reading a server (section 5.1).
	Unmasked bool
	// RSV is the reserved bits the negotiated extensions define (RSV1 for
	// permessage-deflate); a frame with any other set is ErrReservedBits.
	RSV byte
}

// Rules for the two ends of a connection on which no extension was
// negotiated.
var (
	// FromClient is what a server requires of its clients' frames.
	FromClient = Rules{Masked: true}
	// FromServer is what a client requires of its server's frames.
	FromServer = Rules{Unmasked: true}
)

// anyRSV accepts every reserved bit: ParseHeader only reports them.
const anyRSV = RSV1 | RSV2 | RSV3

// ParseHeader decodes the frame header at the start of b, judging neither
// its mask bit nor its reserved bits, which it only reports; it is
// Rules.ParseHeader with rules that accept both. See there.
func ParseHeader(b []byte) (Header, int, error) {
	return Rules{RSV: anyRSV}.ParseHeader(b)
}

// ParseHeader decodes the frame header at the start of b and returns it
// with its size n; the payload is the h.Length bytes after it. While b
// holds only part of a header the error is ErrShort. A fault is reported
// as soon as the bytes that show it are in, so that a receiver can refuse a
// frame before buffering it; with several, the first in the header's byte
// order: the receiver's rules (reserved bits, then the mask bit), the
// opcode, FIN and the length of a control frame, then the
// encoding of the length. With any error n is 0; h then holds what was
// decoded before it (Fin, RSV, Op and Masked once b has two bytes), so that
// a caller can name what it refused.
//
// What a receiver checks against its state (a continuation with no message
// to continue, message size limits, what the payload holds) is its own.
func (r Rules) ParseHeader(b []byte) (h Header, n int, err error) {
	if len(b) < 2 {
		return h, 0, ErrShort
	}
	b0, b1 := b[0], b[1]
	h.Fin = b0&0x80 != 0
	h.RSV = b0 & anyRSV
	h.Op = b0 & 0x0F
	h.Masked = b1&0x80 != 0
	length := uint64(b1 & 0x7F)
	switch {
	case h.RSV&^r.RSV != 0:
		return h, 0, ErrReservedBits
	case r.Masked && !h.Masked:
		return h, 0, ErrUnmasked
	case r.Unmasked && h.Masked:
		return h, 0, ErrMasked
	}
	if h.Op >= 0x8 { // control frame
		switch {
		case h.Op > OpPong:
			return h, 0, ErrReservedOpcode
		case !h.Fin:
			return h, 0, ErrFragmentedControl
		case length > MaxControlPayload:
			return h, 0, ErrControlTooLong
		}
	} else if h.Op > OpBinary {
		return h, 0, ErrReservedOpcode
	}
	n = 2
	switch length {
	case 126:
		if len(b) < 4 {
			return h, 0, ErrShort
		}
		length, n = uint64(binary.BigEndian.Uint16(b[2:4])), 4
		h.Length = length
		if length < 126 {
			return h, 0, ErrNonMinimalLength
		}
	case 127:
		if len(b) < 10 {
			return h, 0, ErrShort
		}
		length, n = binary.BigEndian.Uint64(b[2:10]), 10
		h.Length = length
		if length>>63 != 0 {
			return h, 0, ErrLengthOverflow
		}
		if length <= 0xFFFF {
			return h, 0, ErrNonMinimalLength
		}
	}
	h.Length = length
	if h.Masked {
		if len(b) < n+4 {
			return h, 0, ErrShort
		}
		h.Key = [4]byte(b[n : n+4])
		n += 4
	}
	return h, n, nil
}

// lengthEnd is where the length ends in a header whose second byte is b1:
// where its masking key starts, if it has one.
func lengthEnd(b1 byte) int {
	switch b1 & 0x7F {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

// ReadHeader reads exactly one frame header from src and decodes it under
// r; the caller reads the h.Length payload bytes that follow. It is for
// blocking readers (tools and tests on a plain socket); a reactor hands
// bytes to ParseHeader instead. It reads the first two bytes, the extended
// length and the key in turn and stops at the first fault, as ParseHeader
// reports them, so it never waits for bytes a faulty header does not need.
// A stream that ends inside the header is io.ErrUnexpectedEOF (io.EOF
// before its first byte).
func (r Rules) ReadHeader(src io.Reader) (Header, error) {
	var b [MaxHeaderLen]byte
	have, want := 0, 2
	for {
		if _, err := io.ReadFull(src, b[have:want]); err != nil {
			if err == io.EOF && have > 0 {
				err = io.ErrUnexpectedEOF
			}
			return Header{}, err
		}
		have = want
		h, _, err := r.ParseHeader(b[:have])
		if err != ErrShort {
			return h, err
		}
		// Short of a whole header: the length, then the key, is missing.
		if want = lengthEnd(b[1]); have >= want {
			want += 4
		}
	}
}
