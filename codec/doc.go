// Package codec owns the broker's JSON wire format: it decides what an inbound
// message is (echo, meta request, server event, or invalid and why), splits and
// validates publish API bodies, and builds the few replies the broker itself
// writes (error and echo events).
//
// The package is pure: no logging, no sockets, no global state. Every function
// is safe for concurrent use.
//
// # Forwarding byte for byte
//
// The broker forwards events exactly as they were published or sent, so the
// codec never re-encodes an event. Validation therefore has to match what a
// recipient's JSON.parse will see in the same bytes:
//
//   - JSON syntax is checked strictly for the whole document: sonic's
//     validator checks structure, numbers and literals; string escapes and
//     raw control characters, which that validator lets through, are
//     checked by the codec's own field walk, which visits every string
//     anyway.
//   - Invalid UTF-8 is rejected, even where the transport already guarantees
//     it, because the publish API takes raw HTTP bodies.
//   - A duplicated top-level "eventType", "message", "broadcast" or "error"
//     key is rejected rather than resolved: JSON.parse keeps the last
//     occurrence, so validating the first would let a client smuggle, say, a
//     Login event inside an echo that the broker broadcasts. Keys are
//     compared after unescaping for the same reason ("event\u0054ype" is
//     "eventType" to JSON.parse). Other duplicate keys are forwarded as they
//     are; they carry no meaning for the broker.
//
// # Integers
//
// An integer eventType is a JSON number with no fraction and no exponent that
// fits an int. 10.0, 1e1 and "10" are not integers, even though many decoders
// would accept them, because the protocol promises recipients an integer.
//
// # Engine
//
// sonic (github.com/bytedance/sonic) does the syntax validation and the
// PeekEventType lookup. The field walk over an already validated document is
// a small hand-written top-level scanner: it touches only the bytes it needs,
// allocates nothing and, unlike a decoder, sees duplicate keys.
package codec
