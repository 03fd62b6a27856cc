package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"

	"github.com/webinate/broker/broker"
	"github.com/webinate/broker/internal/monoclock"
)

// maxMetaInflight bounds the cross-node MetaRequests one node waits for at
// once (one goroutine each); beyond it a client is told no backend is
// available.
const maxMetaInflight = 1024

// metaQueue is the queue group of the nodes that have backends.
const metaQueue = "backends"

// Bridge is one node's connection to the cluster: it implements broker.Bus.
type Bridge struct {
	cfg Config
	log zerolog.Logger
	id  string // random per process: Nats-Msg-Id prefix

	subjEvents, subjMeta, subjLoad string

	nc   *nats.Conn
	js   jetstream.JetStream
	node broker.Node

	// Stream identity and position (stream.go). smu serialises
	// deliveries with the watcher's resets; the fields below it are
	// guarded by it.
	smu        sync.Mutex
	cc         jetstream.ConsumeContext // nil while stopped
	gen        uint64                   // consumer generation: older ones' messages are dropped
	consName   string                   // the consumer whose messages are known to be from this stream
	created    time.Time                // creation time of the stream numbered from
	origin     uint64                   // its first sequence number ever
	streamLast uint64                   // its last sequence number at the last check
	tailSet    bool                     // the log's history start is placed
	filling    bool                     // reading back history (Start)
	fillFirst  uint64                   // ... from this stream message
	fillEnd    uint64                   // ... up to this one
	fillCutoff int64                    // ... skipping older messages (unix nanos; 0: none)
	fillDone   chan struct{}
	edgeSeq    uint64 // the last message read but left out of the history ...
	edge       uint64 // ... and the log number after its events

	base         atomic.Uint64 // added to stream sequence numbers (renumberLocked)
	epoch        atomic.Pointer[string]
	createdAt    atomic.Int64 // created, unix nanos, for Status
	missingSince atomic.Int64 // unix nanos, for display; 0 while the stream is there
	missingMono  atomic.Int64 // monoclock.Now at the same moment, for recreateAfter
	kick         chan struct{}

	// Publish queue (publish.go).
	qmu     sync.Mutex
	queue   []*pubReq
	queued  int // events in queue and in the batch being sent
	wake    chan struct{}
	msgSeq  uint64 // Nats-Msg-Id counter, publisher goroutine only
	closing chan struct{}
	wg      sync.WaitGroup
	// ctx is cancelled by Close: JetStream requests in flight end at once.
	ctx    context.Context
	cancel context.CancelFunc

	metaMu  sync.Mutex
	metaSub *nats.Subscription
	metaSem chan struct{}

	// Cross-node backpressure (load.go).
	peersMu    sync.Mutex
	peers      map[string]peerLoad // by peer id: saturated peers
	peersUntil atomic.Int64        // monoclock.Now: latest expiry in peers
	peerHolds  atomic.Int64        // times a peer began to hold publishers
	pending    atomic.Uint64       // stream messages not yet delivered here

	// Cluster queries (query.go).
	subjNodes string
	members   members

	maxMsg int64             // largest message payload: the server's max_payload, less headers
	evs    []broker.BusEvent // consumer scratch

	lastSeq   atomic.Uint64 // last stream sequence delivered (or passed over)
	accepted  atomic.Uint64 // highest stream sequence this node published, plus base
	downSince atomic.Int64  // unix nanos, for display; 0 while connected
	downMono  atomic.Int64  // monoclock.Now at the same moment, for the unhealthy bound
	closed    atomic.Bool

	disconnects, reconnects, slow        atomic.Int64
	published, failed, delivered, resets atomic.Int64
	skipped, bad                         atomic.Int64
	streamResets, lost, filled           atomic.Int64
}

var _ broker.Bus = (*Bridge)(nil)

// New validates cfg. It connects nothing; Start (called by the broker)
// does.
func New(cfg Config, log zerolog.Logger) (*Bridge, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Bridge{
		cfg:        cfg,
		log:        log.With().Str("component", "cluster").Logger(),
		id:         nuid.Next(),
		subjEvents: cfg.Subject + ".events",
		subjMeta:   cfg.Subject + ".meta",
		subjLoad:   cfg.Subject + ".load",
		peers:      make(map[string]peerLoad),
		wake:       make(chan struct{}, 1),
		closing:    make(chan struct{}),
		metaSem:    make(chan struct{}, maxMetaInflight),
		kick:       make(chan struct{}, 1),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	e := "nats:" + cfg.Stream // provisional: Start names the stream instance
	b.epoch.Store(&e)
	return b, nil
}

// Start implements broker.Bus: it connects, makes sure the stream exists,
// reads back from it as much history as the local log keeps (at most
// maxFillWait) and goes on consuming from there. The broker opens its
// port only after Start, so no client resumes here before the history is
// in.
func (b *Bridge) Start(n broker.Node) error {
	b.node = n
	opts := []nats.Option{
		nats.Name(b.cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// No hidden buffer: while disconnected a publish fails at once
		// and stays in our own bounded queue, in order (see publish.go).
		nats.ReconnectBufSize(-1),
		nats.Timeout(2 * time.Second),
		// A dead server (not a closed socket) is noticed within ~6 s.
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(b.onDisconnect),
		nats.ReconnectHandler(b.onReconnect),
		nats.ErrorHandler(b.onAsyncError),
	}
	switch {
	case b.cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(b.cfg.CredsFile))
	case b.cfg.User != "" || b.cfg.Password != "":
		opts = append(opts, nats.UserInfo(b.cfg.User, b.cfg.Password))
	case b.cfg.Token != "":
		opts = append(opts, nats.Token(b.cfg.Token))
	}
	nc, err := nats.Connect(strings.Join(b.cfg.URLs, ","), opts...)
	if err != nil {
		return fmt.Errorf("cluster: connect %s: %w", strings.Join(b.cfg.URLs, ","), err)
	}
	b.nc = nc
	b.maxMsg = nc.MaxPayload() - 256 // room for the Nats-Msg-Id header
	stop := func() {
		b.smu.Lock()
		b.stopLocked()
		b.smu.Unlock()
		nc.Close()
	}
	began := time.Now()
	if err := b.startStream(); err != nil {
		stop()
		return err
	}
	b.waitFill()
	if err := b.startLoad(); err != nil {
		stop()
		return fmt.Errorf("cluster: subscribe %s: %w", b.subjLoad, err)
	}
	if err := b.startQuery(); err != nil {
		stop()
		return fmt.Errorf("cluster: subscribe %s: %w", b.cfg.Subject+".query.*", err)
	}
	b.wg.Add(2)
	go func() {
		defer b.wg.Done()
		b.publisher()
	}()
	go func() {
		defer b.wg.Done()
		b.watch()
	}()
	b.log.Info().Str("url", nc.ConnectedUrlRedacted()).Str("stream", b.cfg.Stream).Str("epoch", b.Epoch()).
		Str("subject", b.cfg.Subject).Uint64("fromSeq", b.lastSeq.Load()+1).
		Int64("historyRead", b.filled.Load()).Dur("took", time.Since(began)).Msg("joined cluster")
	return nil
}

func (b *Bridge) onConsumeError(_ jetstream.ConsumeContext, err error) {
	b.resets.Add(1)
	b.log.Debug().Err(err).Msg("consumer error; the ordered consumer resumes after the last delivered event")
	b.kickWatch() // a deleted consumer may mean a deleted stream: look now
}

func (b *Bridge) onDisconnect(_ *nats.Conn, err error) {
	if b.closed.Load() {
		return
	}
	if b.downSince.CompareAndSwap(0, time.Now().UnixNano()) {
		b.downMono.Store(monoclock.Now())
	}
	b.disconnects.Add(1)
	b.log.Warn().Err(err).Msg("disconnected from NATS: serving local clients only, publishes queue")
}

func (b *Bridge) onReconnect(nc *nats.Conn) {
	down := b.downSince.Swap(0)
	b.reconnects.Add(1)
	ev := b.log.Info().Str("url", nc.ConnectedUrlRedacted())
	if down > 0 {
		ev.Dur("down", time.Duration(monoclock.Now()-b.downMono.Load()))
	}
	ev.Msg("reconnected to NATS")
	b.signal()
}

// onAsyncError counts NATS slow-consumer errors: the server or the client
// dropped messages for a subscription that did not keep up. For the
// event consumer the ordered consumer notices the gap and restarts from
// the last delivered number, so nothing is lost, but it is surfaced
// (/healthz, /stats) because it means this node is not keeping up.
func (b *Bridge) onAsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrSlowConsumer) {
		n := b.slow.Add(1)
		if n == 1 || n%100 == 0 {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			b.log.Warn().Int64("count", n).Str("subject", subj).Msg("NATS slow consumer: messages dropped, consumer resyncs")
		}
		return
	}
	b.log.Warn().Err(err).Msg("NATS error")
}

// Status implements broker.Bus.
func (b *Bridge) Status() broker.BusStatus {
	st := broker.BusStatus{
		Duplicates:   b.skipped.Load(),
		Disconnects:  b.disconnects.Load(),
		Reconnects:   b.reconnects.Load(),
		SlowConsumer: b.slow.Load(),
		Published:    b.published.Load(),
		Failed:       b.failed.Load(),
		Delivered:    b.delivered.Load(),
		Resets:       b.resets.Load(),
		LastSeq:      b.lastSeq.Load(),
		Pending:      b.pending.Load(),
		PeerHolds:    b.peerHolds.Load(),
		Stream:       b.cfg.Stream,
		StreamResets: b.streamResets.Load(),
		Lost:         b.lost.Load(),
		Filled:       b.filled.Load(),
	}
	if c := b.createdAt.Load(); c != 0 {
		st.StreamCreated = time.Unix(0, c).UTC()
	}
	st.PeersSaturated = b.saturatedPeers()
	st.Backpressure = b.Saturated()
	b.qmu.Lock()
	st.Queued = int64(b.queued)
	b.qmu.Unlock()
	if b.nc == nil {
		st.State = "connecting"
		return st
	}
	switch b.nc.Status() {
	case nats.CONNECTED:
		st.State = "connected"
	case nats.RECONNECTING, nats.DISCONNECTED:
		st.State = "reconnecting"
	case nats.CONNECTING:
		st.State = "connecting"
	default:
		st.State = "closed"
	}
	st.Healthy = st.State == "connected"
	if d := b.downSince.Load(); d > 0 {
		st.DownSince = time.Unix(0, d)
		st.Healthy = time.Duration(monoclock.Now()-b.downMono.Load()) < b.cfg.UnhealthyAfter && st.State != "closed"
	}
	if m := b.missingSince.Load(); m != 0 {
		st.StreamMissingSince = time.Unix(0, m)
		st.Healthy = false
	}
	return st
}

// Epoch implements broker.Bus: the stream instance names the numbering,
// nats:<stream>:<created unix nanos>, with :<offset> on a node whose
// numbers are offset (see stream.go); before Start, nats:<stream>.
func (b *Bridge) Epoch() string { return *b.epoch.Load() }

// Accepted implements broker.Bus: the log number of the first event of
// the last message this node published (the log's head is past it once
// that message has been delivered here).
func (b *Bridge) Accepted() uint64 {
	s := b.accepted.Load()
	if s == 0 {
		return 0
	}
	return LogSeq(s, 0)
}

// ServeMeta implements broker.Bus: queue-subscribe to MetaRequests while
// this node has backends.
func (b *Bridge) ServeMeta(on bool) {
	b.metaMu.Lock()
	defer b.metaMu.Unlock()
	if b.nc == nil || b.closed.Load() {
		return
	}
	switch {
	case on && b.metaSub == nil:
		sub, err := b.nc.QueueSubscribe(b.subjMeta, metaQueue, b.onMeta)
		if err != nil {
			b.log.Warn().Err(err).Msg("cannot serve MetaRequests for other nodes")
			return
		}
		b.metaSub = sub
	case !on && b.metaSub != nil:
		_ = b.metaSub.Unsubscribe()
		b.metaSub = nil
	}
}

// onMeta hands another node's MetaRequest to a local backend.
func (b *Bridge) onMeta(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	b.node.ServeMeta(m.Data, func(reply []byte) { _ = m.Respond(reply) })
}

// Request implements broker.Bus.
func (b *Bridge) Request(msg []byte, timeout time.Duration, done func([]byte, error)) {
	select {
	case b.metaSem <- struct{}{}:
	default:
		done(nil, broker.ErrNoRemoteBackend)
		return
	}
	go func() {
		defer func() { <-b.metaSem }()
		r, err := b.nc.Request(b.subjMeta, msg, timeout)
		if errors.Is(err, nats.ErrNoResponders) {
			err = broker.ErrNoRemoteBackend
		}
		if err != nil {
			done(nil, err)
			return
		}
		done(r.Data, nil)
	}()
}

// Close implements broker.Bus. Publishes still queued fail with ErrClosed.
func (b *Bridge) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	close(b.closing)
	b.cancel()
	b.wg.Wait()
	// A Publish that queued just before closed was set is answered too.
	b.failQueued(ErrClosed)
	b.smu.Lock()
	b.stopLocked()
	b.smu.Unlock()
	b.metaMu.Lock()
	b.metaSub = nil
	b.metaMu.Unlock()
	if b.nc != nil {
		b.nc.Close()
	}
	return nil
}
