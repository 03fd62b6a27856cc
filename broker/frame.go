package broker

import "github.com/webinate/broker/wsframe"

// The RFC 6455 codec is package wsframe. These are the broker's short names
// for what its code uses everywhere (the fan-out, replies, meta routing,
// the publish API, the tests), so that it reads as the protocol does.

// WebSocket opcodes.
const (
	opContinuation = wsframe.OpContinuation
	opText         = wsframe.OpText
	opBinary       = wsframe.OpBinary
	opClose        = wsframe.OpClose
	opPing         = wsframe.OpPing
	opPong         = wsframe.OpPong
)

// Close status codes the broker sends, or reports (closeNoStatus).
const (
	closeNormal          = wsframe.CloseNormal
	closeGoingAway       = wsframe.CloseGoingAway
	closeProtocolError   = wsframe.CloseProtocolError
	closeUnsupportedData = wsframe.CloseUnsupportedData
	closeNoStatus        = wsframe.CloseNoStatus
	closeInvalidPayload  = wsframe.CloseInvalidPayload
	closePolicyViolation = wsframe.ClosePolicyViolation
	closeTooBig          = wsframe.CloseTooBig
	closeInternalError   = wsframe.CloseInternalError
)

// appendFrame appends one final, unmasked server frame: one encoding that
// is written unchanged to every recipient.
func appendFrame(dst []byte, op byte, payload []byte) []byte {
	return wsframe.AppendFrame(dst, op, payload)
}

// frameSize is the encoded size of a server frame carrying n payload bytes.
func frameSize(n int) int { return wsframe.FrameSize(n) }
