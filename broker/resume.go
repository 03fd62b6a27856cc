package broker

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/webinate/broker/codec"
	"github.com/webinate/broker/wsframe"
)

// Resume (docs/PROTOCOL.md, "Resume"): a connection that asks with ?seq=1
// gets every event from the log with "seq" and "epoch" members first; with
// ?since=N it first gets every retained event after N that it would have
// received, then the live stream, with no gap and no duplicate: its cursor
// simply starts at N+1 instead of at the head.

// seqFrameExtra bounds what seqFrame adds to a frame: the members
// `"seq":<20 digits>,"epoch":"<epoch>",` and up to 8 more header bytes.
func seqFrameExtra(epoch string) int { return len(`"seq":,"epoch":"",`) + 20 + len(epoch) + 8 }

// seqFrame returns a builder of the alternate frames the event log stores
// for opt-in connections: the same event with "seq" and "epoch" as its
// first members. The rest of the object is the published bytes.
func seqFrame(epoch string) func(dst []byte, seq uint64, frame []byte) []byte {
	return func(dst []byte, seq uint64, frame []byte) []byte {
		payload := wsframe.Payload(frame)
		i := 0
		for i < len(payload) && isJSONSpace(payload[i]) {
			i++
		}
		if i == len(payload) || payload[i] != '{' {
			return append(dst, frame...) // not an object: cannot carry seq
		}
		rest := payload[i+1:]
		j := 0
		for j < len(rest) && isJSONSpace(rest[j]) {
			j++
		}
		var b [64]byte
		p := append(b[:0], `{"seq":`...)
		p = strconv.AppendUint(p, seq, 10)
		p = append(p, `,"epoch":"`...)
		p = append(p, epoch...)
		p = append(p, '"')
		if j < len(rest) && rest[j] != '}' {
			p = append(p, ',')
		}
		return appendFrame2(dst, opText, p, rest)
	}
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// appendFrame2 appends one server frame whose payload is a followed by b.
func appendFrame2(dst []byte, op byte, a, b []byte) []byte {
	dst = wsframe.AppendHeader(dst, wsframe.Header{Fin: true, Op: op, Length: uint64(len(a) + len(b))})
	dst = append(dst, a...)
	return append(dst, b...)
}

// newEpoch names this process's log: sequence numbers from another epoch
// (a restarted broker) are recognisably foreign.
func newEpoch() string {
	var e [8]byte
	_, _ = rand.Read(e[:])
	return hex.EncodeToString(e[:])
}

// resumeRequest is what the handshake asked for.
type resumeRequest struct {
	seq   bool   // ?seq=1: frames carry seq and epoch
	since uint64 // ?since=N: resume after N
	has   bool   // since was given
	epoch string // ?epoch=E: the log N came from, if the client says
}

// parseResume reads ?seq=, ?since= and ?epoch=; anything malformed is an
// error that names it.
func parseResume(q url.Values) (resumeRequest, error) {
	var r resumeRequest
	one := func(name string) (string, bool, error) {
		v, ok := q[name]
		if !ok {
			return "", false, nil
		}
		if len(v) != 1 || v[0] == "" {
			return "", false, fmt.Errorf("%s: give it once, with a value", name)
		}
		return v[0], true, nil
	}
	v, ok, err := one("seq")
	if err != nil {
		return r, err
	}
	if ok {
		switch v {
		case "1", "true":
			r.seq = true
		case "0", "false":
		default:
			return r, fmt.Errorf("seq: %q is not 1 or 0", v)
		}
	}
	v, ok, err = one("since")
	if err != nil {
		return r, err
	}
	if ok {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return r, fmt.Errorf("since: %q is not a sequence number", v)
		}
		r.since, r.has, r.seq = n, true, true
	}
	v, ok, err = one("epoch")
	if err != nil {
		return r, err
	}
	if ok {
		if !r.has {
			return r, errors.New("epoch: only with since")
		}
		r.epoch = v
	}
	return r, nil
}

// resumeAt places c's cursor for its resume request. It runs under the
// shard lock in addWith, before the 101; it returns the gap event to send
// right after the 101, or nil.
func (s *Server) resumeAt(c *conn, r resumeRequest) []byte {
	lg := s.events
	head, tail := lg.Head(), lg.Tail()
	c.next = head
	if !r.has {
		return nil
	}
	var why string
	switch {
	case r.epoch != "" && r.epoch != lg.Epoch():
		why = "resume: since is from another epoch (another broker process or log); refetch state"
	case r.since >= head:
		why = "resume: since is ahead of this log (it comes from another log); refetch state"
	case r.since+1 < tail:
		why = "resume: events after since are no longer retained; refetch state"
	default:
		c.next = r.since + 1
		s.stats.resumes.Add(1)
		return nil
	}
	s.stats.resumeGaps.Add(1)
	b := codec.AppendError(nil, 0, why)
	b = b[:len(b)-1] // reopen the object for the positions
	b = fmt.Appendf(b, `,"since":%d,"oldest":%d,"seq":%d,"epoch":%q}`, r.since, tail, head-1, lg.Epoch())
	return appendFrame(nil, opText, b)
}
