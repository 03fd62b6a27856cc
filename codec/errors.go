package codec

import (
	"errors"
	"strconv"
)

// Sentinel errors. Errors returned by this package wrap exactly one of these,
// so callers can branch with errors.Is while the message carries the detail
// (for SplitPublish, the index of the offending event).
var (
	// ErrInvalidJSON reports input that is not one syntactically valid JSON
	// document (including invalid escapes, raw control characters in
	// strings, and trailing data).
	ErrInvalidJSON = errors.New("codec: invalid JSON")

	// ErrInvalidUTF8 reports input that is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("codec: invalid UTF-8")

	// ErrNotObject reports a message or event that is valid JSON but not an
	// object, or a publish body that is neither an object nor an array.
	ErrNotObject = errors.New("codec: message is not a JSON object")

	// ErrNoEventType reports an object without a top-level integer
	// eventType (missing, or not an integer that fits an int).
	ErrNoEventType = errors.New("codec: missing integer eventType")

	// ErrEventType reports an integer eventType that is unknown or not
	// allowed from this sender.
	ErrEventType = errors.New("codec: eventType not allowed")

	// ErrField reports a known field ("error", "message", "broadcast") with
	// a value of the wrong JSON type.
	ErrField = errors.New("codec: invalid field")

	// ErrDuplicateKey reports a top-level "eventType", "message",
	// "broadcast" or "error" key that occurs more than once.
	ErrDuplicateKey = errors.New("codec: duplicate key")

	// ErrEmptyBatch reports a publish body that is an empty array; publishing
	// nothing is almost certainly a client bug, so it is not silently
	// accepted.
	ErrEmptyBatch = errors.New("codec: empty event array")
)

// reasonError carries a human-readable reason, the sentinel it belongs to and,
// for elements of a publish array, the element index. It exists so the reason
// text shown to clients and the error text shown to publishers come from one
// place.
type reasonError struct {
	index  int // -1 when the error is not about one array element
	reason string
	kind   error
}

func (e *reasonError) Error() string {
	if e.index < 0 {
		return "codec: " + e.reason
	}
	return "codec: event " + strconv.Itoa(e.index) + ": " + e.reason
}

func (e *reasonError) Unwrap() error { return e.kind }
