package eventlog

import "errors"

// ErrSeqBehind is returned by AppendAt for a sequence number below Head:
// that number is already taken (by an event or a gap).
var ErrSeqBehind = errors.New("eventlog: sequence number below head")
