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
	cc   jetstream.ConsumeContext

	// Publish queue (publish.go).
	qmu     sync.Mutex
	queue   []*pubReq
	queued  int // events in queue and in the batch being sent
	wake    chan struct{}
	msgSeq  uint64 // Nats-Msg-Id counter, publisher goroutine only
	closing chan struct{}
	wg      sync.WaitGroup

	metaMu  sync.Mutex
	metaSub *nats.Subscription
	metaSem chan struct{}

	// Cross-node backpressure (load.go).
	peersMu    sync.Mutex
	peers      map[string]peerLoad // by peer id: saturated peers
	peersUntil atomic.Int64        // unix nanos: latest expiry in peers
	peerHolds  atomic.Int64        // times a peer began to hold publishers
	pending    atomic.Uint64       // stream messages not yet delivered here

	// Cluster queries (query.go).
	subjNodes string
	members   members

	maxMsg int64             // largest message payload: the server's max_payload, less headers
	evs    []broker.BusEvent // consumer scratch

	lastSeq   atomic.Uint64 // last stream sequence delivered
	accepted  atomic.Uint64 // highest stream sequence this node published
	downSince atomic.Int64  // unix nanos; 0 while connected
	closed    atomic.Bool

	disconnects, reconnects, slow        atomic.Int64
	published, failed, delivered, resets atomic.Int64
	skipped, bad                         atomic.Int64
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
	}
	return b, nil
}

// Start implements broker.Bus: it connects, makes sure the stream exists
// and starts consuming from the stream's next sequence number.
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
	if err := b.startStream(); err != nil {
		nc.Close()
		return err
	}
	if err := b.startLoad(); err != nil {
		b.cc.Stop()
		nc.Close()
		return fmt.Errorf("cluster: subscribe %s: %w", b.subjLoad, err)
	}
	if err := b.startQuery(); err != nil {
		b.cc.Stop()
		nc.Close()
		return fmt.Errorf("cluster: subscribe %s: %w", b.cfg.Subject+".query.*", err)
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.publisher()
	}()
	b.log.Info().Str("url", nc.ConnectedUrlRedacted()).Str("stream", b.cfg.Stream).
		Str("subject", b.cfg.Subject).Uint64("fromSeq", b.lastSeq.Load()+1).Msg("joined cluster")
	return nil
}

// startStream creates or updates the stream and starts the ordered
// consumer at the stream's next sequence number: this node delivers every
// event stored after it joined.
func (b *Bridge) startStream() error {
	js, err := jetstream.New(b.nc)
	if err != nil {
		return fmt.Errorf("cluster: jetstream: %w", err)
	}
	b.js = js
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
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
	})
	if err != nil {
		return fmt.Errorf("cluster: stream %s: %w", b.cfg.Stream, err)
	}
	last := st.CachedInfo().State.LastSeq
	b.lastSeq.Store(last)
	cons, err := js.OrderedConsumer(ctx, b.cfg.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   last + 1,
		NamePrefix:    "broker_" + b.id,
	})
	if err != nil {
		return fmt.Errorf("cluster: consumer on %s: %w", b.cfg.Stream, err)
	}
	cc, err := cons.Consume(b.onMsg, jetstream.ConsumeErrHandler(b.onConsumeError))
	if err != nil {
		return fmt.Errorf("cluster: consume %s: %w", b.cfg.Stream, err)
	}
	b.cc = cc
	return nil
}

// onMsg delivers one stream message to the local log. The ordered
// consumer hands messages over one at a time, in order.
func (b *Bridge) onMsg(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	seq := md.Sequence.Stream
	if seq <= b.lastSeq.Load() {
		// Redelivered after a consumer reset: already delivered.
		b.skipped.Add(1)
		return
	}
	evs, err := decode(m.Data(), b.evs[:0])
	b.lastSeq.Store(seq)
	b.pending.Store(md.NumPending)
	if err != nil {
		b.bad.Add(1)
		b.log.Warn().Uint64("streamSeq", seq).Err(err).Msg("skipping a stream message this broker cannot read")
		return
	}
	b.delivered.Add(int64(len(evs)))
	b.node.Deliver(LogSeq(seq, 0), evs)
	clear(evs)
	b.evs = evs[:0]
}

func (b *Bridge) onConsumeError(_ jetstream.ConsumeContext, err error) {
	b.resets.Add(1)
	b.log.Debug().Err(err).Msg("consumer error; the ordered consumer resumes after the last delivered event")
}

func (b *Bridge) onDisconnect(_ *nats.Conn, err error) {
	if b.closed.Load() {
		return
	}
	b.downSince.CompareAndSwap(0, time.Now().UnixNano())
	b.disconnects.Add(1)
	b.log.Warn().Err(err).Msg("disconnected from NATS: serving local clients only, publishes queue")
}

func (b *Bridge) onReconnect(nc *nats.Conn) {
	down := b.downSince.Swap(0)
	b.reconnects.Add(1)
	ev := b.log.Info().Str("url", nc.ConnectedUrlRedacted())
	if down > 0 {
		ev.Dur("down", time.Duration(time.Now().UnixNano()-down))
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
		st.Healthy = time.Since(st.DownSince) < b.cfg.UnhealthyAfter && st.State != "closed"
	}
	return st
}

// Epoch implements broker.Bus: the stream names the numbering.
func (b *Bridge) Epoch() string { return "nats:" + b.cfg.Stream }

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
	b.wg.Wait()
	// A Publish that queued just before closed was set is answered too.
	b.failQueued(ErrClosed)
	if b.cc != nil {
		b.cc.Stop()
	}
	b.metaMu.Lock()
	b.metaSub = nil
	b.metaMu.Unlock()
	if b.nc != nil {
		b.nc.Close()
	}
	return nil
}
