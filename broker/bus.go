package broker

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/webinate/broker/codec"
	"github.com/webinate/broker/eventlog"
)

// Bus joins this node to the other nodes of a cluster (package cluster
// implements it over NATS JetStream). Without one (Config.Bus nil) the
// broker is a single node, exactly as before.
//
// With a Bus, every event this node accepts (publish API, backend socket,
// echo broadcast) goes to the Bus instead of the local event log, and the
// local log is filled only by Node.Deliver, in the cluster's one order,
// with the cluster's sequence numbers: the same number names the same
// event on every node.
//
// Concurrency: every method may be called from any goroutine and none may
// block on the network (Publish and Request answer through callbacks).
type Bus interface {
	// Start connects and begins delivery to n. Every event published
	// after Start returns reaches n.Deliver once, in order.
	Start(n Node) error
	// Publish hands one accepted batch (validated raw events, all echo
	// broadcasts or all server events) to the cluster; the Bus owns the
	// slices from then on. done is called exactly once, and must not
	// block: nil once the cluster has stored the whole batch,
	// contiguously; otherwise an error, and the caller tells its publisher
	// that nothing was published. A batch refused at once (too large,
	// queue full) is answered on the caller's goroutine.
	Publish(events [][]byte, echo bool, done func(error))
	// Request sends a client's MetaRequest (with authUser already added)
	// to a node that has a backend. done gets that node's answer (the
	// reply to give the client, an error event included), or
	// ErrNoRemoteBackend, or another error (no answer in time).
	Request(msg []byte, timeout time.Duration, done func(reply []byte, err error))
	// ServeMeta tells the Bus whether this node has backends and so can
	// answer other nodes' MetaRequests. It is called with r.mu held by
	// metaRouter and must only note the change.
	ServeMeta(on bool)
	// Accepted is the log number of the last event the cluster stored for
	// this node (0 for none): once the local log's head is past it, every
	// event this node confirmed has been delivered here (drain waits for
	// that).
	Accepted() uint64
	// Saturated reports whether the cluster asks this node's publishers
	// to wait although this node's own clients keep up: another node
	// announced that its clients are behind (Node.Saturated), or this
	// node has fallen behind the cluster's order. The publish API and
	// backend sockets then pace exactly as for local saturation, so one
	// node's publishers cannot outrun the other nodes' fan-out. It must
	// be cheap: it is called for every publish and while pacing.
	Saturated() bool
	// Epoch names the cluster's numbering (the local log's epoch, the same
	// on every node that numbers the same stream alike). Before Start it
	// may be provisional: the Bus names the numbering it found with
	// Node.Reset, in Start and whenever the numbering is replaced.
	Epoch() string
	// Status is the connection's state and counters, for /healthz and
	// /stats.
	Status() BusStatus
	// Close stops delivery and disconnects. Callbacks still pending get
	// an error.
	Close() error
}

// Node is the side of the broker a Bus calls.
type Node interface {
	// Deliver appends events to the local log back to back, numbered from
	// seq on (numbers the Bus derives from the cluster's order, the same
	// on every node), for the local connections. A seq at or below one
	// already delivered is ignored (counted as a duplicate). The bytes are
	// not kept after it returns.
	Deliver(seq uint64, events []BusEvent)
	// Saturated reports whether this node's fan-out is behind (its
	// publishers would be held): the Bus tells the other nodes, so that
	// their publishers wait too.
	Saturated() bool
	// ServeMeta forwards another node's MetaRequest to a local backend;
	// respond is called exactly once with what that node's client gets.
	ServeMeta(msg []byte, respond func(reply []byte))
	// Answer is this node's part of another node's cluster query
	// (ClusterQuery: disconnect a user, count who is online); nil when
	// it has no answer to give. It does not block on the network.
	Answer(kind string, req []byte) []byte
	// Reset starts the local log's history afresh, named epoch, from
	// number seq or the log's head if that is higher, and returns the
	// number it used: nothing before it is retained, so a resume from
	// before it (or from another epoch) gets a gap event, while a
	// connection that had everything keeps its place (numbers never go
	// backwards on a node). The Bus calls it in Start, before any
	// delivery, to say where the history it reads back begins, and when
	// it finds the cluster's numbering replaced (its stream deleted and
	// created again) or events gone before it delivered them. Calls are
	// serialised with Deliver.
	Reset(epoch string, seq uint64) uint64
	// Retention is how much history the local log keeps (bytes, and age
	// if nonzero): the Bus reads back at most that much in Start.
	Retention() (maxBytes int, maxAge time.Duration)
}

// BusEvent is one event a Bus delivers: the raw JSON as it was accepted,
// and whether it is an echo broadcast (never targeted).
type BusEvent struct {
	Raw  []byte
	Echo bool
}

// Errors a Bus reports through its callbacks.
var (
	// ErrNoRemoteBackend: no node in the cluster has a backend connected.
	ErrNoRemoteBackend = errors.New("broker: no backend connected to any node")
	// ErrBatchTooLarge: the batch is larger than the cluster can store
	// as one message (events or bytes); the publish API answers 413.
	ErrBatchTooLarge = errors.New("broker: request too large for the cluster: more events or bytes than one stream message holds")
)

// BusStatus is a Bus's health and counters (the "cluster" object in
// /stats).
type BusStatus struct {
	// State is "connected", "reconnecting", "connecting" or "closed".
	State string `json:"state"`
	// Healthy is false once the Bus has been disconnected longer than its
	// stated bound, or cannot deliver: /healthz then answers 503.
	Healthy bool `json:"healthy"`
	// DownSince is when the current disconnection began (zero when
	// connected).
	DownSince    time.Time `json:"downSince,omitzero"`
	Disconnects  int64     `json:"disconnects"`
	Reconnects   int64     `json:"reconnects"`
	SlowConsumer int64     `json:"slowConsumer"` // NATS slow-consumer errors
	Published    int64     `json:"published"`    // events confirmed stored by the cluster
	Failed       int64     `json:"failed"`       // events refused (outage, timeout, queue full)
	Queued       int64     `json:"queued"`       // events waiting to be stored
	Delivered    int64     `json:"delivered"`    // events consumed from the cluster
	Resets       int64     `json:"resets"`       // consumer restarts (reconnect, gap detected)
	LastSeq      uint64    `json:"lastSeq"`      // last stream sequence delivered here
	// Pending is stream messages stored after the last one delivered
	// here: how far this node is behind the cluster's order.
	Pending uint64 `json:"pending"`
	// PeersSaturated is the other nodes that currently ask publishers to
	// wait (their clients are behind); Backpressure says whether this
	// node's publishers are held for the cluster (Bus.Saturated).
	PeersSaturated []string `json:"peersSaturated,omitempty"`
	Backpressure   bool     `json:"backpressure"`
	// PeerHolds counts the times another node began to hold this node's
	// publishers.
	PeerHolds int64 `json:"peerHolds"`
	// Duplicates counts redeliveries dropped: by the Bus (a number at or
	// below the last delivered) plus those the local log refused.
	Duplicates int64 `json:"duplicates"`
	// Stream names the cluster's stream; StreamCreated is its creation
	// time, part of the epoch, so a stream created again is told apart.
	Stream        string    `json:"stream,omitempty"`
	StreamCreated time.Time `json:"streamCreated,omitzero"`
	// StreamMissingSince is when this node found its stream gone (zero
	// while it is there); the node is unhealthy until it is back and
	// delivery resumed.
	StreamMissingSince time.Time `json:"streamMissingSince,omitzero"`
	// StreamResets counts the times this node found the stream replaced
	// (deleted and created again, or its numbering gone back) and started
	// a new epoch.
	StreamResets int64 `json:"streamResets"`
	// Lost counts stream messages removed (purged, expired) before this
	// node delivered them: its clients were cut and resumes get a gap.
	Lost int64 `json:"lost"`
	// Filled is the events read back from the stream into the local log
	// at start, so that clients can resume here from any node.
	Filled int64 `json:"filled"`
}

// Reasons sent to a backend or echo sender whose event the cluster did
// not take, and to clients whose MetaRequest found no node.
const errClusterDown = "cluster unavailable: event not published"

// busNode is the Node the broker gives its Bus.
type busNode struct{ s *Server }

// Deliver implements Node.
func (n busNode) Deliver(seq uint64, evs []BusEvent) {
	s := n.s
	size := 0
	for _, ev := range evs {
		size += frameSize(len(ev.Raw))
	}
	buf := make([]byte, 0, size) // one allocation for the frames; the log copies them
	items := make([]item, len(evs))
	for i, ev := range evs {
		start := len(buf)
		buf = appendFrame(buf, opText, ev.Raw)
		frame := buf[start:len(buf):len(buf)]
		if ev.Echo {
			items[i] = item{frame: frame, etype: codec.Echo} // never targeted
		} else {
			items[i] = s.itemFor(ev.Raw, frame)
		}
	}
	if err := s.hub.broadcastAt(seq, items...); err != nil {
		if errors.Is(err, eventlog.ErrSeqBehind) {
			s.stats.busDuplicates.Add(1)
		}
	}
}

// Saturated implements Node: the local judgement only (never the Bus's,
// or two nodes would hold each other's publishers forever).
func (n busNode) Saturated() bool { return n.s.hub.saturated() }

// saturated reports whether publishers should wait: this node's fan-out
// is behind, or the cluster's is (another node's, see Bus.Saturated).
func (s *Server) saturated() bool {
	return s.hub.saturated() || (s.bus != nil && s.bus.Saturated())
}

// saturatedReason is the 503 text for a publish refused by backpressure.
func (s *Server) saturatedReason() string {
	if s.bus != nil && !s.hub.saturated() && s.bus.Saturated() {
		return "cluster is saturated: subscribers on another node are not keeping up; nothing was published, retry later"
	}
	return "broker is saturated: subscribers are not keeping up; nothing was published, retry later"
}

// ServeMeta implements Node.
func (n busNode) ServeMeta(msg []byte, respond func(reply []byte)) {
	n.s.meta.serve(msg, respond)
}

// Reset implements Node. Appends come only from Deliver, which the Bus
// serialises with Reset, so the head read here is still the head when the
// log resets.
func (n busNode) Reset(epoch string, seq uint64) uint64 {
	lg := n.s.events
	seq = max(seq, lg.Head())
	_ = lg.Reset(epoch, seq, n.s.logVariants(epoch))
	n.s.hub.wakeAll() // connections behind the new tail are cut now, not at the next tick
	return seq
}

// Retention implements Node.
func (n busNode) Retention() (int, time.Duration) {
	return n.s.cfg.HistorySize, n.s.cfg.HistoryAge
}

// toBus is the accept hook of the backend socket and echo broadcasts: with
// a Bus it publishes msg there (a failure is answered to c with an error
// event) and reports true; without one it reports false and the caller
// appends to the local log.
func (s *Server) toBus(c *conn, msg []byte, echo bool, etype int) bool {
	if s.bus == nil {
		return false
	}
	ev := append([]byte(nil), msg...) // nbio reuses msg after we return
	s.bus.Publish([][]byte{ev}, echo, func(err error) {
		if err != nil {
			s.replyError(c, etype, errClusterDown)
		}
	})
	return true
}

// publishToBus is the publish API's accept hook with a Bus: it answers 202
// only once the cluster stored the events, else 503 (or 413 for a batch
// the cluster cannot keep contiguous), and nothing of the request was
// published. It writes the response.
func (s *Server) publishToBus(w http.ResponseWriter, events [][]byte) {
	done := make(chan error, 1)
	s.bus.Publish(events, false, func(err error) { done <- err })
	// The Bus bounds its own wait: the request is answered either way,
	// even if the publisher has gone, so nothing is left half-known.
	if err := <-done; err != nil {
		s.stats.publishRefused.Add(1)
		if errors.Is(err, ErrBatchTooLarge) {
			httpError(w, http.StatusRequestEntityTooLarge, err.Error())
			return
		}
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusServiceUnavailable, "cluster did not store the events ("+err.Error()+"): retry later")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(strconv.AppendInt([]byte(`{"accepted":`), int64(len(events)), 10))
	_, _ = w.Write([]byte("}"))
}

// serveClusterHealth is /healthz on a cluster node: it also reports NATS,
// and a node cut off from the others too long is unhealthy (it serves only
// local echo).
func (s *Server) serveClusterHealth(w http.ResponseWriter, conns string) {
	st := s.busStatus()
	status := "ok"
	if !st.Healthy {
		status = "cluster_unavailable"
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	stream := ""
	if !st.StreamMissingSince.IsZero() {
		stream = `,"stream":"missing"` // deleted: nothing is stored or delivered until it is back
	}
	slow := ""
	if st.SlowConsumer > 0 {
		// NATS dropped messages for this node at least once: it was not
		// keeping up (the consumer re-read them; see package cluster).
		slow = `,"natsSlowConsumers":` + strconv.FormatInt(st.SlowConsumer, 10)
	}
	_, _ = w.Write([]byte(`{"status":"` + status + `","connections":` + conns + `,"nats":"` + st.State + `"` + stream + slow + `}`))
}

// busStatus is the Bus's status with the broker's own counters added.
func (s *Server) busStatus() *BusStatus {
	if s.bus == nil {
		return nil
	}
	st := s.bus.Status()
	st.Duplicates += s.stats.busDuplicates.Load()
	return &st
}

// waitDelivered waits, during a drain, until every event this node
// confirmed to a publisher has come back from the cluster into the local
// log, so the drain writes it to the local connections; or until stop.
func (s *Server) waitDelivered(stop <-chan struct{}) {
	if s.bus == nil {
		return
	}
	for s.events.Head() <= s.bus.Accepted() {
		select {
		case <-stop:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// busCollector exports BusStatus to /metrics (cluster nodes only).
type busCollector struct{ s *Server }

var busDescs = struct {
	up, healthy, disconnects, reconnects, slow, published, failed, queued, delivered, duplicates *prometheus.Desc
	pending, backpressure, peerHolds                                                             *prometheus.Desc
	streamMissing, streamResets, lost, filled                                                    *prometheus.Desc
}{
	up:            prometheus.NewDesc("broker_cluster_connected", "1 while connected to NATS, else 0.", nil, nil),
	healthy:       prometheus.NewDesc("broker_cluster_healthy", "1 unless disconnected from NATS past unhealthyAfter, or the stream is missing (/healthz 503).", nil, nil),
	disconnects:   prometheus.NewDesc("broker_cluster_disconnects_total", "Disconnections from NATS.", nil, nil),
	reconnects:    prometheus.NewDesc("broker_cluster_reconnects_total", "Reconnections to NATS.", nil, nil),
	slow:          prometheus.NewDesc("broker_cluster_nats_slow_consumer_total", "NATS slow-consumer errors (messages dropped by NATS; the consumer re-reads them).", nil, nil),
	published:     prometheus.NewDesc("broker_cluster_published_total", "Events this node published that the cluster stored.", nil, nil),
	failed:        prometheus.NewDesc("broker_cluster_publish_failed_total", "Events the cluster did not store (outage past publishTimeout, queue full, too large): refused to their publisher.", nil, nil),
	queued:        prometheus.NewDesc("broker_cluster_queued", "Events waiting to be stored by the cluster.", nil, nil),
	delivered:     prometheus.NewDesc("broker_cluster_delivered_total", "Events consumed from the cluster's stream.", nil, nil),
	duplicates:    prometheus.NewDesc("broker_cluster_duplicates_total", "Deliveries refused because the log had that number already.", nil, nil),
	pending:       prometheus.NewDesc("broker_cluster_pending", "Stream messages stored after the last one delivered here (how far this node is behind the cluster).", nil, nil),
	backpressure:  prometheus.NewDesc("broker_cluster_backpressure", "1 while this node's publishers wait for the cluster: another node's fan-out is behind, or this node is behind the stream.", nil, nil),
	peerHolds:     prometheus.NewDesc("broker_cluster_peer_holds_total", "Times another node began to hold this node's publishers (its clients were behind).", nil, nil),
	streamMissing: prometheus.NewDesc("broker_cluster_stream_missing", "1 while this node's stream is gone (deleted): unhealthy, nothing stored or delivered.", nil, nil),
	streamResets:  prometheus.NewDesc("broker_cluster_stream_resets_total", "Times the stream was found replaced (deleted and created again): a new epoch began.", nil, nil),
	lost:          prometheus.NewDesc("broker_cluster_lost_total", "Stream messages removed (purged, expired) before this node delivered them.", nil, nil),
	filled:        prometheus.NewDesc("broker_cluster_history_filled_total", "Events read back from the stream into the local log at start.", nil, nil),
}

func (busCollector) Describe(ch chan<- *prometheus.Desc) {
	d := busDescs
	for _, x := range []*prometheus.Desc{d.up, d.healthy, d.disconnects, d.reconnects, d.slow, d.published, d.failed, d.queued, d.delivered, d.duplicates, d.pending, d.backpressure, d.peerHolds, d.streamMissing, d.streamResets, d.lost, d.filled} {
		ch <- x
	}
}

func (c busCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.busStatus()
	d, out := busDescs, metricOut(ch)
	out.flag(d.up, st.State == "connected")
	out.flag(d.healthy, st.Healthy)
	out.counter(d.disconnects, st.Disconnects)
	out.counter(d.reconnects, st.Reconnects)
	out.counter(d.slow, st.SlowConsumer)
	out.counter(d.published, st.Published)
	out.counter(d.failed, st.Failed)
	out.gauge(d.queued, float64(st.Queued))
	out.counter(d.delivered, st.Delivered)
	out.counter(d.duplicates, st.Duplicates)
	out.gauge(d.pending, float64(st.Pending))
	out.flag(d.backpressure, st.Backpressure)
	out.counter(d.peerHolds, st.PeerHolds)
	out.flag(d.streamMissing, !st.StreamMissingSince.IsZero())
	out.counter(d.streamResets, st.StreamResets)
	out.counter(d.lost, st.Lost)
	out.counter(d.filled, st.Filled)
}
