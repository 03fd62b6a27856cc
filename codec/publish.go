package codec

// SplitPublish validates a publish API body: one JSON object, or a non-empty
// JSON array of objects, each a valid server event (see ValidateEvent). It is
// all or nothing: any invalid element fails the whole body, and the error
// names the element's index ("codec: event 3: unknown eventType 42").
//
// The returned events are sub-slices of body, exactly as they appear there
// (inner whitespace and extra fields included), with capacity clipped so an
// append to one cannot overwrite the next. Nothing is re-encoded, which is
// what lets the broker forward events byte for byte.
func SplitPublish(body []byte) ([][]byte, error) {
	if p := validate(body); p != pNone {
		return nil, newError(-1, p, 0, -1)
	}
	events, err := splitValid(body)
	if err != nil && !strictStrings(body) {
		// An element-level error may have been found before the walk
		// reached a bad string elsewhere; invalid JSON is the more basic
		// complaint, and reporting it keeps the answer independent of
		// element order.
		return nil, ErrInvalidJSON
	}
	return events, err
}

// splitValid splits a body that sonic has validated structurally; strings
// are checked as each element is walked.
func splitValid(body []byte) ([][]byte, error) {
	b := trimSpace(body)
	switch b[0] { // validate rejects blank input, so b[0] exists
	case '{':
		if _, err := checkEvent(b, 0, -1); err != nil {
			return nil, err
		}
		return [][]byte{b[:len(b):len(b)]}, nil
	case '[':
	default:
		return nil, &reasonError{index: -1, reason: "body must be a JSON object or an array of objects", kind: ErrNotObject}
	}

	i := skipSpace(b, 1)
	if b[i] == ']' {
		return nil, ErrEmptyBatch
	}
	events := make([][]byte, 0, 16)
	for n := 0; ; n++ {
		if b[i] != '{' {
			return nil, newError(n, pNotObject, 0, -1)
		}
		end, err := checkEvent(b, i, n)
		if err != nil {
			return nil, err
		}
		events = append(events, b[i:end:end])
		if i = skipSpace(b, end); i >= len(b) {
			return nil, ErrInvalidJSON
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return events, nil
		default:
			return nil, ErrInvalidJSON
		}
	}
}
