package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/webinate/broker/internal/monoclock"
)

// The stream's identity and this node's position in it.
//
// A node's log numbers derive from the stream (LogSeq), so they mean
// something for one stream only: the one created at a given time, which
// the epoch names (nats:<stream>:<created unix nanos>). While nodes run,
// the stream can be deleted and created again (by an operator, a tool,
// another node), and it can lose messages a node has not delivered yet
// (a purge, its limits). A node that carried on regardless would deliver
// nothing (the new stream's numbers are at or below the last it
// delivered) or skip events without telling anyone. So:
//
//   - Start reads back from the stream as much history as the local log
//     keeps (fillFrom) before the broker opens its port, and places the
//     log's tail where that history begins: a client can resume here from
//     any node, or from before this node restarted, and a number older
//     than the history gets a gap event.
//   - The first message of every consumer is checked against the stream's
//     identity (the ordered consumer re-creates itself after a reconnect,
//     a missed heartbeat or a deleted consumer, possibly on a new stream).
//   - A watcher asks for the stream's info every watchInterval. Gone: the
//     node is unhealthy, stops consuming and, if nobody else has by then,
//     creates the stream again after recreateAfter, numbered on from
//     where it stopped. Replaced (another creation time, or its numbers
//     gone back): a new epoch, the log's history starts afresh (connected
//     clients keep their place, a resume from the old epoch gets a gap),
//     and the new stream is consumed from its start.
//   - A message after a hole in the stream's numbers (messages removed
//     before this node delivered them) starts the log's history at it:
//     the connections that had not got them are cut, resumes get a gap.
//
// The log never goes backwards on a node: when a new stream's numbers
// would reuse ones this node has delivered, they are offset (base) and
// the offset is part of the epoch (nats:<stream>:<created>:<base>), so
// that nobody confuses them with another node's. A node restarted later
// needs no offset; nor does any node when the stream is created again by
// a node (it starts at the last number plus one).
const (
	// watchInterval is how often a node checks its stream: a deleted
	// stream makes /healthz unhealthy within about this long.
	watchInterval = time.Second
	// recreateAfter is how long a node leaves its stream missing before
	// it creates it again itself, giving an operator's own creation (with
	// other settings) the chance to come first.
	recreateAfter = 3 * time.Second
	// maxFillWait bounds how long Start waits for the history it reads
	// back; past it the broker starts anyway (a resume from a number not
	// read yet gets a gap event, never a skip).
	maxFillWait = 10 * time.Second
	// infoTimeout bounds one stream info request.
	infoTimeout = 2 * time.Second
	// noStreamPause spaces the publisher's retries while no stream takes
	// its subject (deleted), instead of spinning until the deadline.
	noStreamPause = 100 * time.Millisecond
)

// streamConfig is the stream every node creates or updates; firstSeq, if
// nonzero, is where a new stream's numbering begins.
func (b *Bridge) streamConfig(firstSeq uint64) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        b.cfg.Stream,
		Description: "webinate broker events (cluster " + b.cfg.Subject + ")",
		Subjects:    []string{b.subjEvents},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		MaxAge:      b.cfg.StreamMaxAge,
		MaxBytes:    b.cfg.StreamMaxBytes,
		Duplicates:  DefaultDuplicateWindow,
		Replicas:    b.cfg.Replicas,
		FirstSeq:    firstSeq,
	}
}

// startStream creates or updates the stream and starts the ordered
// consumer where the history to read back begins (fillFrom); the fill
// ends at the stream's last message as of now (see endFillLocked).
func (b *Bridge) startStream() error {
	js, err := jetstream.New(b.nc)
	if err != nil {
		return fmt.Errorf("cluster: jetstream: %w", err)
	}
	b.js = js
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	cfg := b.streamConfig(0)
	if st, err := js.Stream(ctx, b.cfg.Stream); err == nil {
		// Keep where its numbering began (a stream a node created again).
		cfg.FirstSeq = st.CachedInfo().Config.FirstSeq
	}
	st, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return fmt.Errorf("cluster: stream %s: %w", b.cfg.Stream, err)
	}
	info := st.CachedInfo()
	maxBytes, maxAge := b.node.Retention()
	b.smu.Lock()
	defer b.smu.Unlock()
	b.identifyLocked(info)
	from := fillFrom(info.State, maxBytes)
	start := from
	if from > max(info.State.FirstSeq, 1) && from <= info.State.LastSeq {
		// One message more, not delivered: where its numbers end is where
		// the history begins, so a client that had all of it resumes.
		start = from - 1
	}
	b.fillFirst = from
	b.lastSeq.Store(start - 1)
	b.fillEnd = info.State.LastSeq
	if maxAge > 0 {
		b.fillCutoff = time.Now().Add(-maxAge).UnixNano()
	}
	b.filling = true
	b.fillDone = make(chan struct{})
	if from > b.fillEnd {
		b.endFillLocked() // nothing to read back
	}
	if err := b.consumeLocked(start); err != nil {
		return fmt.Errorf("cluster: consumer on %s: %w", b.cfg.Stream, err)
	}
	return nil
}

// fillFrom is the first stream message to read back into a log of
// maxBytes: the stream's average message size says how many fit. It
// reads twice that, since a log event costs more than its share of a
// stream message or less depending on its size; the log trims the excess.
func fillFrom(st jetstream.StreamState, maxBytes int) uint64 {
	if st.Msgs == 0 {
		return st.LastSeq + 1
	}
	avg := max(st.Bytes/st.Msgs, 1)
	n := 2*uint64(max(maxBytes, 0))/avg + 1
	if n >= st.Msgs {
		return max(st.FirstSeq, 1)
	}
	return st.LastSeq + 1 - n
}

// waitFill waits until the history is read back, or maxFillWait.
func (b *Bridge) waitFill() {
	t := time.NewTimer(maxFillWait)
	defer t.Stop()
	select {
	case <-b.fillDone:
	case <-t.C:
		b.log.Warn().Dur("waited", maxFillWait).Uint64("upTo", b.fillEnd).Uint64("readTo", b.lastSeq.Load()).
			Msg("history not read back from the stream in time: starting anyway; resumes from numbers not read yet get a gap event")
	}
	b.smu.Lock()
	b.endFillLocked()
	b.smu.Unlock()
}

// endFillLocked ends reading back (once) and, if no message was
// delivered, places the log's history at the next one.
func (b *Bridge) endFillLocked() {
	if b.filling {
		b.filling = false
		close(b.fillDone)
	}
	if !b.tailSet {
		b.tailSet = true
		b.node.Reset(b.Epoch(), b.histStart(b.lastSeq.Load()+1))
	}
}

// histStart is where the log's history begins when its first message is
// stream message s: nothing if s is the stream's first message ever (its
// numbers below name nothing); past the last event of s-1 if that message
// was read (and left out); otherwise s's first number, since the messages
// before s are not in this log.
func (b *Bridge) histStart(s uint64) uint64 {
	switch {
	case s <= b.origin:
		return 1
	case b.edgeSeq != 0 && b.edgeSeq == s-1:
		return b.edge
	}
	return LogSeq(s+b.base.Load(), 0)
}

// identifyLocked records which stream this node numbers from.
func (b *Bridge) identifyLocked(info *jetstream.StreamInfo) {
	b.created = info.Created
	b.createdAt.Store(info.Created.UnixNano())
	b.origin = max(info.Config.FirstSeq, 1)
	b.streamLast = info.State.LastSeq
	e := "nats:" + b.cfg.Stream + ":" + strconv.FormatInt(info.Created.UnixNano(), 10)
	if base := b.base.Load(); base > 0 {
		e += ":" + strconv.FormatUint(base, 10)
	}
	b.epoch.Store(&e)
}

// stopLocked stops the consumer; messages it still hands over are
// dropped (their generation is old).
func (b *Bridge) stopLocked() {
	b.gen++
	if b.cc != nil {
		b.cc.Stop()
		b.cc = nil
	}
}

// consumeLocked starts an ordered consumer at stream message from.
func (b *Bridge) consumeLocked(from uint64) error {
	b.stopLocked()
	gen := b.gen
	b.consName = ""
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	cons, err := b.js.OrderedConsumer(ctx, b.cfg.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
		NamePrefix:    "broker_" + b.id + "_" + strconv.FormatUint(gen, 10),
	})
	if err != nil {
		return err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { b.onMsg(gen, m) }, jetstream.ConsumeErrHandler(b.onConsumeError))
	if err != nil {
		return err
	}
	b.cc = cc
	return nil
}

// onMsg delivers one stream message to the local log. The ordered
// consumer hands messages over one at a time, in order; smu serialises
// them with the watcher's resets.
func (b *Bridge) onMsg(gen uint64, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	b.smu.Lock()
	defer b.smu.Unlock()
	if gen != b.gen {
		return // a consumer this node has stopped
	}
	if md.Consumer != b.consName {
		// A consumer's first message: it may have re-created itself on
		// a stream other than the one this node numbers from.
		if !b.verifyLocked() {
			return
		}
		b.consName = md.Consumer
	}
	seq := md.Sequence.Stream
	last := b.lastSeq.Load()
	if seq <= last {
		// Redelivered after a consumer reset: already delivered.
		b.skipped.Add(1)
		return
	}
	b.pending.Store(md.NumPending)
	if b.filling && !b.tailSet && (seq < b.fillFirst || b.fillCutoff > 0 && md.Timestamp.UnixNano() < b.fillCutoff) {
		// Read only for where its numbers end (the message before the
		// history), or older than the log keeps (-history-age).
		b.lastSeq.Store(seq)
		b.edgeSeq, b.edge = seq, LogSeq(seq, MaxEvents)
		if evs, err := decode(m.Data(), b.evs[:0]); err == nil {
			b.edge = LogSeq(seq, len(evs))
			clear(evs)
		}
		if seq >= b.fillEnd {
			b.endFillLocked()
		}
		return
	}
	base := b.base.Load()
	switch {
	case !b.tailSet:
		b.tailSet = true
		b.node.Reset(b.Epoch(), b.histStart(seq))
	case seq > last+1:
		b.lost.Add(int64(seq - last - 1))
		b.log.Warn().Uint64("from", last+1).Uint64("to", seq-1).
			Msg("stream messages were removed (purged or expired) before this node delivered them: clients that had not got them are cut, and a resume from before gets a gap event")
		b.node.Reset(b.Epoch(), LogSeq(seq+base, 0))
	}
	b.lastSeq.Store(seq)
	evs, err := decode(m.Data(), b.evs[:0])
	if err != nil {
		b.bad.Add(1)
		b.log.Warn().Uint64("streamSeq", seq).Err(err).Msg("skipping a stream message this broker cannot read")
	} else {
		b.delivered.Add(int64(len(evs)))
		if b.filling {
			b.filled.Add(int64(len(evs)))
		}
		b.node.Deliver(LogSeq(seq+base, 0), evs)
		clear(evs)
		b.evs = evs[:0]
	}
	// The fill ends at the stream's last message as of the start, not when
	// NumPending reaches 0: that counts only what the server has not sent
	// yet, and the consumer may hold the rest of the history in its
	// buffer, so the port would open before it is in the log.
	if b.filling && seq >= b.fillEnd {
		b.endFillLocked()
	}
}

// verifyLocked reports whether the stream is still the one this node
// numbers from; if not, or if it cannot tell, it stops the consumer and
// leaves the decision to the watcher (which resumes from the last message
// delivered, or starts a new epoch). Deliveries wait meanwhile, which is
// what they must do.
func (b *Bridge) verifyLocked() bool {
	ctx, cancel := context.WithTimeout(b.ctx, infoTimeout)
	defer cancel()
	st, err := b.js.Stream(ctx, b.cfg.Stream)
	if err == nil {
		info := st.CachedInfo()
		if info.Created.Equal(b.created) && info.State.LastSeq >= b.lastSeq.Load() {
			return true
		}
	}
	b.stopLocked()
	b.kickWatch()
	return false
}

func (b *Bridge) kickWatch() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// watch checks the stream every watchInterval, and when kicked.
func (b *Bridge) watch() {
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		select {
		case <-b.closing:
			return
		case <-t.C:
		case <-b.kick:
		}
		b.checkStream()
	}
}

// checkStream compares the stream with the one this node numbers from.
func (b *Bridge) checkStream() {
	if !b.nc.IsConnected() {
		return // an outage is not a missing stream (Status reports it)
	}
	// Taken before asking: deliveries may go on meanwhile, and a stream
	// whose last message is below what was delivered before asking has
	// gone back.
	last := b.lastSeq.Load()
	ctx, cancel := context.WithTimeout(b.ctx, infoTimeout)
	st, err := b.js.Stream(ctx, b.cfg.Stream)
	cancel()
	b.smu.Lock()
	defer b.smu.Unlock()
	if b.closed.Load() {
		return
	}
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		b.missingLocked()
		return
	case err != nil:
		return // no answer: ask again next time
	}
	info := st.CachedInfo()
	if !info.Created.Equal(b.created) || info.State.LastSeq < last {
		b.renumberLocked(info)
	} else if b.cc == nil {
		if err := b.consumeLocked(b.lastSeq.Load() + 1); err != nil {
			b.log.Warn().Err(err).Msg("cannot consume the stream; retrying")
			return
		}
	}
	b.streamLast = max(b.streamLast, info.State.LastSeq)
	if b.cc != nil {
		if since := b.missingSince.Swap(0); since != 0 {
			b.log.Info().Dur("missing", time.Duration(monoclock.Now()-b.missingMono.Load())).Str("epoch", b.Epoch()).
				Msg("stream is back: delivering again")
		}
	}
}

// missingLocked handles a stream not found: stop consuming and say so,
// then, if nobody has created it again within recreateAfter, create it.
func (b *Bridge) missingLocked() {
	since := b.missingSince.Load()
	if since == 0 {
		b.missingMono.Store(monoclock.Now())
		b.missingSince.Store(time.Now().UnixNano())
		b.stopLocked()
		b.log.Warn().Str("stream", b.cfg.Stream).Str("epoch", b.Epoch()).Dur("recreateAfter", recreateAfter).
			Msg("stream not found (deleted): nothing is stored or delivered and /healthz is unhealthy until it is back; this node creates it again unless another does first")
		return
	}
	if time.Duration(monoclock.Now()-b.missingMono.Load()) < recreateAfter {
		return
	}
	// Numbered on from the last message known here, so that the nodes
	// that had delivered as much keep numbers that only go up and need
	// no offset (see renumberLocked).
	first := max(b.lastSeq.Load(), b.streamLast) + b.base.Load() + 1
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	_, err := b.js.CreateStream(ctx, b.streamConfig(first))
	switch {
	case err == nil:
		b.log.Warn().Str("stream", b.cfg.Stream).Uint64("firstSeq", first).Msg("created the stream again")
		b.kickWatch()
	case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
		b.kickWatch() // another node was first
	default:
		b.log.Warn().Err(err).Msg("cannot create the stream again; retrying")
	}
}

// renumberLocked switches to a stream that replaced the one this node
// numbered from: a new epoch, the log's history afresh (connections keep
// their place: the head does not move back), the new stream consumed from
// its first message. If the new numbers would reuse numbers this node has
// delivered, they are offset past them.
func (b *Bridge) renumberLocked(info *jetstream.StreamInfo) {
	b.stopLocked()
	old := b.Epoch()
	lastEff := b.lastSeq.Load() + b.base.Load()
	origin := max(info.Config.FirstSeq, 1)
	var base uint64
	if origin <= lastEff {
		base = lastEff
	}
	b.base.Store(base)
	b.identifyLocked(info)
	b.node.Reset(b.Epoch(), 0)
	b.lastSeq.Store(origin - 1)
	b.accepted.Store(0) // what was confirmed on the old stream is gone with it
	b.pending.Store(0)  // the old stream's backlog is not this one's
	b.tailSet = true
	b.streamResets.Add(1)
	b.log.Warn().Str("stream", b.cfg.Stream).Str("oldEpoch", old).Str("epoch", b.Epoch()).
		Time("created", info.Created).Uint64("firstSeq", info.State.FirstSeq).Uint64("offset", base).
		Msg("stream was replaced (deleted and created again): new epoch; resumes from the old one get a gap event")
	if err := b.consumeLocked(origin); err != nil {
		b.log.Warn().Err(err).Msg("cannot consume the new stream; retrying")
	}
}
