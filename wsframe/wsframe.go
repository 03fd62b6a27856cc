// Package wsframe is the RFC 6455 codec: frame headers read and written,
// masking, close codes and the handshake's token helpers. It is pure: no
// sockets, no reactor, no connection state. A connection's state machine
// (fragmentation, message limits, UTF-8, what to do with each frame) belongs
// to its caller; this package only says what a header holds and whether the
// protocol allows it, so that the broker, its load-test harness and its
// tests all read and build frames the same way, and the rules can be fuzzed
// without a socket.
//
// Nothing here allocates on the paths a connection takes per frame:
// ParseHeader reads from the caller's buffer and the Append functions write
// into the caller's, so a server can parse every frame and build its pings,
// pongs and closes in buffers it reuses.
package wsframe

import "errors"

// Opcodes (RFC 6455 section 5.2). Untyped, so that they compare with the
// byte a caller holds without conversions.
const (
	OpContinuation = 0x0 // continues the fragmented message in progress
	OpText         = 0x1 // a UTF-8 text message, or its first fragment
	OpBinary       = 0x2 // a binary message, or its first fragment
	OpClose        = 0x8 // starts or answers the closing handshake
	OpPing         = 0x9 // asks for a pong with the same payload
	OpPong         = 0xA // answers a ping (or is sent unsolicited as a heartbeat)
)

// Reserved bits, as they stand in a frame's first byte (RFC 6455 section
// 5.2). Extensions give them meaning: permessage-deflate (RFC 7692) marks a
// compressed message with RSV1. Header.RSV holds them in these positions.
const (
	RSV1 = 0x40
	RSV2 = 0x20
	RSV3 = 0x10
)

// Close status codes (RFC 6455 section 7.4.1). NoStatus, Abnormal and
// TLSHandshake are for reporting only: an endpoint must never send them
// (see ValidReceivedCloseCode).
const (
	CloseNormal          = 1000 // the purpose of the connection is fulfilled
	CloseGoingAway       = 1001 // the endpoint is going away: shutdown, idle, navigation
	CloseProtocolError   = 1002 // the peer broke the protocol
	CloseUnsupportedData = 1003 // a kind of data the endpoint does not accept (binary, here)
	CloseNoStatus        = 1005 // the close frame carried no code
	CloseAbnormal        = 1006 // the connection ended without a close frame
	CloseInvalidPayload  = 1007 // data inconsistent with its type (text that is not UTF-8)
	ClosePolicyViolation = 1008 // a policy was broken (rate, slow consumer)
	CloseTooBig          = 1009 // a message too big to process
	CloseMandatoryExt    = 1010 // the client needed an extension the server did not agree
	CloseInternalError   = 1011 // the server hit an unexpected condition
	CloseTLSHandshake    = 1015 // the TLS handshake failed
)

// MaxControlPayload is the largest payload a control frame (close, ping,
// pong) may carry (RFC 6455 section 5.5). A buffer of 2+MaxControlPayload
// bytes holds any control frame a server sends.
const MaxControlPayload = 125

// MaxHeaderLen is the longest a frame header can be: two bytes, an 8-byte
// extended length and a 4-byte masking key.
const MaxHeaderLen = 14

// ErrShort reports that b holds only part of a header: not a fault, the
// rest has not arrived yet. ParseHeader returns it with n == 0.
var ErrShort = errors.New("wsframe: incomplete frame header")

// Faults a header can have. Each is a protocol error (close code 1002)
// unless the caller maps it otherwise; they are sentinels so that a caller
// can choose its close reason with ==.
var (
	// ErrReservedBits: a reserved bit is set that no negotiated extension
	// defines (section 5.2). Rules.RSV says which are defined.
	ErrReservedBits = errors.New("wsframe: reserved bits set without a negotiated extension")
	// ErrUnmasked: a client's frame without a mask (section 5.1); only
	// with Rules.Masked.
	ErrUnmasked = errors.New("wsframe: frame must be masked")
	// ErrMasked: a server's frame with a mask (section 5.1); only with
	// Rules.Unmasked.
	ErrMasked = errors.New("wsframe: frame must not be masked")
	// ErrReservedOpcode: an opcode RFC 6455 reserves (0x3-0x7, 0xB-0xF).
	ErrReservedOpcode = errors.New("wsframe: reserved opcode")
	// ErrFragmentedControl: a control frame without FIN (section 5.5).
	ErrFragmentedControl = errors.New("wsframe: fragmented control frame")
	// ErrControlTooLong: a control frame whose payload is over
	// MaxControlPayload bytes (section 5.5).
	ErrControlTooLong = errors.New("wsframe: control frame payload over 125 bytes")
	// ErrNonMinimalLength: a length in a longer form than it needs
	// (section 5.2: "the minimal number of bytes MUST be used"). Refusing
	// it keeps every header's encoding unique.
	ErrNonMinimalLength = errors.New("wsframe: payload length not in its shortest form")
	// ErrLengthOverflow: a 64-bit length with its most significant bit set
	// (section 5.2), which no sender may use and which would overflow a
	// signed size.
	ErrLengthOverflow = errors.New("wsframe: payload length has its top bit set")
)
