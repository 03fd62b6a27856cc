package cluster

import (
	"encoding/binary"
	"errors"

	"github.com/webinate/broker/broker"
)

// One stream message carries the events of one publisher round (one or
// more whole requests, see publisher), each byte for byte:
//
//	version byte (wireVersion)
//	per event: uvarint length, flags byte (flagEcho), the raw JSON
//
// A message is the unit JetStream stores and numbers, so a request's
// events can never be split or interleaved with another node's.
const (
	wireVersion = 1
	flagEcho    = 1
)

// SeqBits: event i of the stream message with sequence S gets the number
// S<<SeqBits + i in every node's log. The numbers derive from the stream
// alone, so they agree on every node and a client can later resume on any
// node from the same number (S = n >> SeqBits); the numbers a message does
// not use are a gap (eventlog.AppendAt). MaxEvents bounds a message.
const (
	SeqBits   = 10
	MaxEvents = 1 << SeqBits
)

// LogSeq is the log number of event i of stream message streamSeq.
func LogSeq(streamSeq uint64, i int) uint64 { return streamSeq<<SeqBits + uint64(i) }

var errBadMessage = errors.New("cluster: malformed stream message")

// encodedSize is what appendEvent adds for an event of n bytes.
func encodedSize(n int) int {
	k := 1
	for x := uint64(n); x >= 0x80; x >>= 7 {
		k++
	}
	return k + 1 + n
}

func appendEvent(dst, ev []byte, echo bool) []byte {
	if len(dst) == 0 {
		dst = append(dst, wireVersion)
	}
	dst = binary.AppendUvarint(dst, uint64(len(ev)))
	var f byte
	if echo {
		f = flagEcho
	}
	dst = append(dst, f)
	return append(dst, ev...)
}

// decode splits a message into events that alias data.
func decode(data []byte, out []broker.BusEvent) ([]broker.BusEvent, error) {
	if len(data) == 0 || data[0] != wireVersion {
		return out, errBadMessage
	}
	p := data[1:]
	for len(p) > 0 {
		n, k := binary.Uvarint(p)
		if k <= 0 || uint64(len(p)-k) < n+1 {
			return out, errBadMessage
		}
		flags := p[k]
		ev := p[k+1 : k+1+int(n)]
		out = append(out, broker.BusEvent{Raw: ev, Echo: flags&flagEcho != 0})
		p = p[k+1+int(n):]
	}
	if len(out) == 0 || len(out) > MaxEvents {
		return out, errBadMessage
	}
	return out, nil
}
