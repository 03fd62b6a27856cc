package cluster

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/webinate/broker/broker"
)

// JetStream headers and error codes used here (nats-server's names).
const (
	hdrMsgID       = "Nats-Msg-Id"
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
	// errCodeBatchDuplicate (JSAtomicPublishContainsDuplicateMessageErr):
	// the batch holds a Nats-Msg-Id already stored. Batches are resent
	// whole with the same ids, so it means the batch was stored by an
	// earlier attempt whose acknowledgement was lost.
	errCodeBatchDuplicate = 10201
	// errCodeBatchTooLarge (JSAtomicPublishTooLargeBatchErrF).
	errCodeBatchTooLarge = 10199
)

// attemptTimeout bounds the wait for one acknowledgement; a request is
// retried (same ids) until its PublishTimeout.
const attemptTimeout = 2 * time.Second

// pubReq is one accepted batch waiting for JetStream.
type pubReq struct {
	events   [][]byte
	echo     bool
	done     func(error)
	deadline time.Time
}

// Publish implements broker.Bus. It queues the batch for the publisher
// goroutine; a batch over MaxBatch, or one that does not fit in the queue,
// is refused at once (done runs on the caller's goroutine then).
func (b *Bridge) Publish(events [][]byte, echo bool, done func(error)) {
	if len(events) > b.cfg.MaxBatch {
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
	b.queue = append(b.queue, &pubReq{events: events, echo: echo, done: done, deadline: time.Now().Add(b.cfg.PublishTimeout)})
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

// publisher sends the queue in order, one batch at a time: everything
// queued since the previous round, up to MaxBatch events, goes as one
// atomic batch (group commit), so throughput grows with load while each
// request's events stay contiguous. One batch in flight keeps the order
// of a node's requests even across reconnects and retries.
func (b *Bridge) publisher() {
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
			err := b.send(reqs)
			n := 0
			for _, r := range reqs {
				n += len(r.events)
			}
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
		}
	}
}

// take removes from the queue the requests of the next batch.
func (b *Bridge) take() []*pubReq {
	b.qmu.Lock()
	defer b.qmu.Unlock()
	n, i := 0, 0
	for i < len(b.queue) && (i == 0 || n+len(b.queue[i].events) <= b.cfg.MaxBatch) {
		n += len(b.queue[i].events)
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

// send publishes reqs as one message (a single event) or one atomic batch
// and waits for JetStream's acknowledgement, retrying with the same
// message ids until the earliest deadline among reqs.
func (b *Bridge) send(reqs []*pubReq) error {
	deadline := reqs[0].deadline
	var msgs []*nats.Msg
	for _, r := range reqs {
		deadline = minTime(deadline, r.deadline)
		subj := b.subjEvents
		if r.echo {
			subj = b.subjEcho
		}
		for _, ev := range r.events {
			b.msgSeq++
			m := nats.NewMsg(subj)
			m.Data = ev
			m.Header.Set(hdrMsgID, b.id+"-"+strconv.FormatUint(b.msgSeq, 10))
			msgs = append(msgs, m)
		}
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if !b.waitConnected(deadline) {
				return ErrTimeout
			}
		}
		wait := min(time.Until(deadline), attemptTimeout)
		if wait <= 0 {
			return ErrTimeout
		}
		seq, err := b.sendOnce(msgs, wait)
		if err == nil {
			for {
				old := b.accepted.Load()
				if seq <= old || b.accepted.CompareAndSwap(old, seq) {
					break
				}
			}
			return nil
		}
		if errors.Is(err, broker.ErrBatchTooLarge) || errors.Is(err, nats.ErrConnectionClosed) {
			return err
		}
		select {
		case <-b.closing:
			return ErrClosed
		default:
		}
		b.log.Debug().Err(err).Int("attempt", attempt).Int("events", len(msgs)).Msg("publish not confirmed, retrying")
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
		case <-b.wake:
		case <-time.After(20 * time.Millisecond):
		}
	}
	return time.Now().Before(deadline)
}

// pubAck is JetStream's answer to a publish (or a batch commit).
type pubAck struct {
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
	Error     *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
}

// sendOnce makes one attempt and returns the stream sequence of the last
// message (0 when the attempt found the batch already stored).
func (b *Bridge) sendOnce(msgs []*nats.Msg, wait time.Duration) (uint64, error) {
	last := msgs[len(msgs)-1]
	if len(msgs) > 1 {
		// A fresh batch id per attempt: the server may still hold the
		// incomplete remains of an earlier attempt under the old one.
		id := nuid.Next()
		for i, m := range msgs {
			m.Header.Set(hdrBatchID, id)
			m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
			if m != last {
				if err := b.nc.PublishMsg(m); err != nil {
					return 0, err
				}
			}
		}
		last.Header.Set(hdrBatchCommit, "1")
	}
	resp, err := b.nc.RequestMsg(last, wait)
	if err != nil {
		return 0, err
	}
	var ack pubAck
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, errors.New("cluster: bad JetStream acknowledgement: " + err.Error())
	}
	if e := ack.Error; e != nil {
		switch e.ErrCode {
		case errCodeBatchDuplicate:
			return 0, nil
		case errCodeBatchTooLarge:
			return 0, broker.ErrBatchTooLarge
		}
		return 0, errors.New("cluster: JetStream: " + e.Description)
	}
	return ack.Seq, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
