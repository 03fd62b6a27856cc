package cluster

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/webinate/broker/broker"
)

// hdrMsgID is JetStream's deduplication header: a message resent with the
// same id within the stream's duplicate window is acknowledged as a
// duplicate instead of being stored again.
const hdrMsgID = "Nats-Msg-Id"

// attemptTimeout bounds the wait for one acknowledgement; a message is
// resent (same id) until the earliest PublishTimeout among its requests.
const attemptTimeout = 2 * time.Second

// pubReq is one accepted batch waiting for JetStream.
type pubReq struct {
	events   [][]byte
	echo     bool
	size     int // encoded bytes
	done     func(error)
	deadline time.Time
}

// Publish implements broker.Bus. It queues the batch for the publisher
// goroutine; a batch larger than one message may hold, or one that does
// not fit in the queue, is refused at once (done runs on the caller's
// goroutine then).
func (b *Bridge) Publish(events [][]byte, echo bool, done func(error)) {
	size := 1
	for _, e := range events {
		size += encodedSize(len(e))
	}
	if len(events) > b.cfg.MaxBatch || int64(size) > b.maxMsg {
		b.failed.Add(int64(len(events)))
		done(broker.ErrBatchTooLarge)
		return
	}
	b.qmu.Lock()
	if b.closed.Load() {
		b.qmu.Unlock()
		done(ErrClosed)
		return
	}
	if b.queued+len(events) > b.cfg.MaxQueued {
		b.qmu.Unlock()
		b.failed.Add(int64(len(events)))
		done(ErrQueueFull)
		return
	}
	b.queue = append(b.queue, &pubReq{events: events, echo: echo, size: size, done: done, deadline: time.Now().Add(b.cfg.PublishTimeout)})
	b.queued += len(events)
	b.qmu.Unlock()
	b.signal()
}

func (b *Bridge) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// publisher sends the queue in order, one stream message at a time:
// everything queued since the previous round, up to MaxBatch events and
// the server's max payload, goes as one message (group commit), so
// throughput grows with load while each request's events stay contiguous.
// One message in flight keeps this node's requests in order across
// reconnects and retries.
func (b *Bridge) publisher() {
	var buf []byte
	for {
		select {
		case <-b.closing:
			b.failQueued(ErrClosed)
			return
		case <-b.wake:
		}
		for {
			reqs := b.take()
			if len(reqs) == 0 {
				break
			}
			buf = buf[:0]
			n := 0
			for _, r := range reqs {
				for _, ev := range r.events {
					buf = appendEvent(buf, ev, r.echo)
				}
				n += len(r.events)
			}
			err := b.send(buf, reqs)
			b.qmu.Lock()
			b.queued -= n
			b.qmu.Unlock()
			if err != nil {
				b.failed.Add(int64(n))
			} else {
				b.published.Add(int64(n))
			}
			for _, r := range reqs {
				r.done(err)
			}
			if cap(buf) > 4<<20 {
				buf = nil
			}
		}
	}
}

// take removes from the queue the requests of the next message.
func (b *Bridge) take() []*pubReq {
	b.qmu.Lock()
	defer b.qmu.Unlock()
	n, size, i := 0, 1, 0
	for i < len(b.queue) {
		r := b.queue[i]
		if i > 0 && (n+len(r.events) > b.cfg.MaxBatch || int64(size+r.size-1) > b.maxMsg) {
			break
		}
		n += len(r.events)
		size += r.size - 1
		i++
	}
	reqs := append([]*pubReq(nil), b.queue[:i]...)
	clear(b.queue[:i])
	b.queue = b.queue[i:]
	if len(b.queue) == 0 {
		b.queue = nil
	}
	return reqs
}

func (b *Bridge) failQueued(err error) {
	b.qmu.Lock()
	q := b.queue
	b.queue = nil
	b.qmu.Unlock()
	for _, r := range q {
		r.done(err)
	}
}

// send publishes data as one stream message and waits for JetStream's
// acknowledgement, resending with the same message id until the earliest
// deadline among reqs.
func (b *Bridge) send(data []byte, reqs []*pubReq) error {
	deadline := reqs[0].deadline
	for _, r := range reqs[1:] {
		if r.deadline.Before(deadline) {
			deadline = r.deadline
		}
	}
	b.msgSeq++
	m := nats.NewMsg(b.subjEvents)
	m.Data = data
	m.Header.Set(hdrMsgID, b.id+"-"+strconv.FormatUint(b.msgSeq, 10))
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !b.waitConnected(deadline) {
			return ErrTimeout
		}
		wait := min(time.Until(deadline), attemptTimeout)
		if wait <= 0 {
			return ErrTimeout
		}
		seq, err := b.sendOnce(m, wait)
		if err == nil {
			seq += b.base.Load() // this node's log numbers (stream.go)
			for {
				old := b.accepted.Load()
				if seq <= old || b.accepted.CompareAndSwap(old, seq) {
					break
				}
			}
			return nil
		}
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrMaxPayload) {
			return err
		}
		pause := time.Duration(0)
		if errors.Is(err, nats.ErrNoResponders) {
			pause = noStreamPause // no stream takes the subject (deleted): answered at once
		}
		select {
		case <-b.closing:
			return ErrClosed
		case <-time.After(pause):
		}
		b.log.Debug().Err(err).Int("attempt", attempt).Msg("publish not confirmed, resending")
	}
}

// waitConnected waits for the connection until deadline (or close).
func (b *Bridge) waitConnected(deadline time.Time) bool {
	for !b.nc.IsConnected() {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-b.closing:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return time.Now().Before(deadline)
}

// pubAck is JetStream's answer to a publish.
type pubAck struct {
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
	Error     *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// sendOnce makes one attempt and returns the message's stream sequence
// (the original one for a duplicate).
func (b *Bridge) sendOnce(m *nats.Msg, wait time.Duration) (uint64, error) {
	resp, err := b.nc.RequestMsg(m, wait)
	if err != nil {
		return 0, err
	}
	var ack pubAck
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, errors.New("cluster: bad JetStream acknowledgement: " + err.Error())
	}
	if e := ack.Error; e != nil {
		return 0, errors.New("cluster: JetStream: " + e.Description)
	}
	return ack.Seq, nil
}
