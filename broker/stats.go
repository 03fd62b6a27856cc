package broker

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

func newFanoutLatency() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "broker_fanout_latency_seconds",
		Help:    "Publish accepted to written to the last socket of a shard, per fan-out pass.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14), // 100 µs .. ~15 s
	})
}

// stats are the broker's counters. They are read by the admin /stats
// endpoint and tests; counting replaces per-message logging on hot paths.
type stats struct {
	accepted        atomic.Int64 // upgrades completed
	refusedOrigin   atomic.Int64 // 403
	refusedKey      atomic.Int64 // 401: backend key
	refusedToken    atomic.Int64 // 401: JWT
	refusedFull     atomic.Int64 // 503: max conns or draining
	refusedPerIP    atomic.Int64 // 429: max-conns-per-ip
	refusedPerUser  atomic.Int64 // 429: max-conns-per-user
	refusedRate     atomic.Int64 // 503: max-accept-rate
	refusedExample  atomic.Int64 // 403: example key from a non-loopback backend
	refusedTLS      atomic.Int64 // TLS handshake failed, or plain HTTP on the TLS port
	badHandshake    atomic.Int64 // 400/405/426
	messagesIn      atomic.Int64 // complete client messages
	errorsOut       atomic.Int64 // error events sent
	eventsPublished atomic.Int64 // events accepted for fan-out
	deliveries      atomic.Int64 // event copies handed to sockets
	writes          atomic.Int64 // write calls made by shard workers
	panics          atomic.Int64
	slowConsumers   atomic.Int64 // connections dropped for falling behind (max-lag, the log, max-pending)
	forgedPongs     atomic.Int64 // credit-shaped pongs whose tag did not match: no credit given
	tokenExpired    atomic.Int64 // connections closed 4001: their token expired
	refreshes       atomic.Int64 // TokenRefresh accepted
	refreshRefused  atomic.Int64 // TokenRefresh refused (bad token, other user)
	disconnected    atomic.Int64 // connections closed 4002 by the disconnect API
	keyRotated      atomic.Int64 // backends closed 4003 after the key changed
	refusedBanned   atomic.Int64 // 403: the user is banned for now
	memoryCloses    atomic.Int64 // connections closed by the output-memory guard
	paced           atomic.Int64 // times a sender's input was held (rate or backpressure)
	resumes         atomic.Int64 // handshakes that resumed from ?since=
	resumeGaps      atomic.Int64 // ... that could not, and got the gap event
	publishWaits    atomic.Int64 // publish requests held by backpressure
	publishRefused  atomic.Int64 // ... and refused with 503 after PublishWait
	metaForwarded   atomic.Int64 // MetaRequests sent to a backend
	metaTimeouts    atomic.Int64 // MetaRequests a backend did not answer in time
	metaLate        atomic.Int64 // replies that arrived after their timeout
	busDuplicates   atomic.Int64 // cluster deliveries refused: number already in the log

	// permessage-deflate (deflate.go): log bytes written to compressed
	// connections, the plain frames they stand for, client messages
	// inflated, and those refused (over max-message, or corrupt).
	deflateWire    atomic.Int64
	deflatePlain   atomic.Int64
	inflated       atomic.Int64
	inflateRefused atomic.Int64

	// Budgets (see Config): clients held or refused for what they ask of
	// backends and put in the log.
	metaPaced           atomic.Int64 // clients held at their MetaRequest budget
	metaRefusedInflight atomic.Int64 // ... refused: still over it when the hold ended
	metaRefusedPending  atomic.Int64 // MetaRequests refused: the node's cap
	metaRefusedBusy     atomic.Int64 // ... refused: every backend busy
	broadcastPaced      atomic.Int64 // echo broadcasts over the sender's count or byte budget
	broadcastNodePaced  atomic.Int64 // ... held before appending: publishers first, or the node's budget
	broadcastRefused    atomic.Int64 // ... refused after waiting that long

	// fanoutLatency observes, per worker pass that wrote events, the time
	// from the oldest event it wrote being accepted to the pass's last
	// write: publish accepted -> written to the last socket of a shard.
	fanoutLatency prometheus.Histogram

	mu     sync.Mutex
	closed map[string]int64 // by close reason label
}

func (s *stats) closedBy(label string) {
	s.mu.Lock()
	if s.closed == nil {
		s.closed = make(map[string]int64)
	}
	s.closed[label]++
	s.mu.Unlock()
}

// Stats is a snapshot of the broker's counters.
type Stats struct {
	Connections     int64 `json:"connections"`
	Accepted        int64 `json:"accepted"`
	RefusedOrigin   int64 `json:"refusedOrigin"`
	RefusedKey      int64 `json:"refusedKey"`
	RefusedToken    int64 `json:"refusedToken"`
	RefusedFull     int64 `json:"refusedFull"`
	RefusedPerIP    int64 `json:"refusedPerIP"`
	RefusedPerUser  int64 `json:"refusedPerUser"`
	RefusedRate     int64 `json:"refusedRate"`
	RefusedExample  int64 `json:"refusedExampleKey"`
	RefusedTLS      int64 `json:"refusedTLS"`
	BadHandshake    int64 `json:"badHandshake"`
	MessagesIn      int64 `json:"messagesIn"`
	ErrorsOut       int64 `json:"errorsOut"`
	EventsPublished int64 `json:"eventsPublished"`
	Deliveries      int64 `json:"deliveries"`
	Writes          int64 `json:"writes"`
	Panics          int64 `json:"panics"`
	SlowConsumers   int64 `json:"slowConsumers"`
	ForgedPongs     int64 `json:"forgedPongs"`
	TokenExpired    int64 `json:"tokenExpired"`
	Refreshes       int64 `json:"tokenRefreshes"`
	RefreshRefused  int64 `json:"tokenRefreshRefused"`
	Disconnected    int64 `json:"disconnected"`
	KeyRotated      int64 `json:"keyRotated"`
	RefusedBanned   int64 `json:"refusedBanned"`
	// Stalled is the connections that owe a pong and have returned no
	// credit for a while (or never): they have no vote in backpressure.
	Stalled        int64            `json:"stalled"`
	MemoryCloses   int64            `json:"memoryCloses"`
	Paced          int64            `json:"paced"`
	Resumes        int64            `json:"resumes"`
	ResumeGaps     int64            `json:"resumeGaps"`
	OutputBytes    int64            `json:"outputBytes"`
	HistoryBytes   int64            `json:"historyBytes"`
	HistoryEvents  uint64           `json:"historyEvents"`
	HeadSeq        uint64           `json:"headSeq"`
	Epoch          string           `json:"epoch"`
	PublishWaits   int64            `json:"publishWaits"`
	PublishRefused int64            `json:"publishRefused"`
	MetaForwarded  int64            `json:"metaForwarded"`
	MetaTimeouts   int64            `json:"metaTimeouts"`
	MetaLate       int64            `json:"metaLate"`
	MetaPending    int              `json:"metaPending"`
	Closed         map[string]int64 `json:"closed"`
	// Cluster is the Bus's state and counters; absent on a single node.
	Cluster *BusStatus `json:"cluster,omitempty"`

	// Budgets: clients held at their MetaRequest budget, MetaRequests
	// refused (over it when the hold ended, the node's cap, every backend
	// busy); echo broadcasts paced by the sender's count or byte budget,
	// held before appending (publishers first, the node's budget), and
	// refused after that wait.
	MetaPaced           int64 `json:"metaPaced"`
	MetaRefusedInflight int64 `json:"metaRefusedInflight"`
	MetaRefusedPending  int64 `json:"metaRefusedPending"`
	MetaRefusedBusy     int64 `json:"metaRefusedBusy"`
	BroadcastPaced      int64 `json:"broadcastPaced"`
	BroadcastNodePaced  int64 `json:"broadcastNodePaced"`
	BroadcastRefused    int64 `json:"broadcastRefused"`

	// Compression (permessage-deflate): connections that negotiated it;
	// event bytes written to them and the plain frames those bytes stand
	// for (for seq-mode connections, the frames without seq and epoch), so
	// DeflatePlainBytes - DeflateWireBytes is the egress saved; client
	// messages inflated, and refused (over max-message, or corrupt).
	CompressedConnections int64 `json:"compressedConnections"`
	DeflateWireBytes      int64 `json:"deflateWireBytes"`
	DeflatePlainBytes     int64 `json:"deflatePlainBytes"`
	Inflated              int64 `json:"inflatedMessages"`
	InflateRefused        int64 `json:"inflateRefused"`
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := &s.stats
	out := Stats{
		Connections:     s.hub.count.Load(),
		Accepted:        st.accepted.Load(),
		RefusedOrigin:   st.refusedOrigin.Load(),
		RefusedKey:      st.refusedKey.Load(),
		RefusedToken:    st.refusedToken.Load(),
		RefusedFull:     st.refusedFull.Load(),
		RefusedPerIP:    st.refusedPerIP.Load(),
		RefusedPerUser:  st.refusedPerUser.Load(),
		RefusedRate:     st.refusedRate.Load(),
		RefusedExample:  st.refusedExample.Load(),
		RefusedTLS:      st.refusedTLS.Load(),
		BadHandshake:    st.badHandshake.Load(),
		MessagesIn:      st.messagesIn.Load(),
		ErrorsOut:       st.errorsOut.Load(),
		EventsPublished: st.eventsPublished.Load(),
		Deliveries:      st.deliveries.Load(),
		Writes:          st.writes.Load(),
		Panics:          st.panics.Load(),
		SlowConsumers:   st.slowConsumers.Load(),
		ForgedPongs:     st.forgedPongs.Load(),
		TokenExpired:    st.tokenExpired.Load(),
		Refreshes:       st.refreshes.Load(),
		RefreshRefused:  st.refreshRefused.Load(),
		Disconnected:    st.disconnected.Load(),
		KeyRotated:      st.keyRotated.Load(),
		RefusedBanned:   st.refusedBanned.Load(),
		Stalled:         s.hub.stalledCount(),
		MemoryCloses:    st.memoryCloses.Load(),
		Paced:           st.paced.Load(),
		Resumes:         st.resumes.Load(),
		ResumeGaps:      st.resumeGaps.Load(),
		OutputBytes:     s.outputBytes(),
		HistoryBytes:    s.events.Bytes(),
		HistoryEvents:   s.events.Head() - s.events.Tail(),
		HeadSeq:         s.events.Head() - 1,
		Epoch:           s.events.Epoch(),
		PublishWaits:    st.publishWaits.Load(),
		PublishRefused:  st.publishRefused.Load(),
		MetaForwarded:   st.metaForwarded.Load(),
		MetaTimeouts:    st.metaTimeouts.Load(),
		MetaLate:        st.metaLate.Load(),
		MetaPending:     s.meta.pendingCount(),
		Closed:          map[string]int64{},
		Cluster:         s.busStatus(),

		MetaPaced:           st.metaPaced.Load(),
		MetaRefusedInflight: st.metaRefusedInflight.Load(),
		MetaRefusedPending:  st.metaRefusedPending.Load(),
		MetaRefusedBusy:     st.metaRefusedBusy.Load(),
		BroadcastPaced:      st.broadcastPaced.Load(),
		BroadcastNodePaced:  st.broadcastNodePaced.Load(),
		BroadcastRefused:    st.broadcastRefused.Load(),

		CompressedConnections: s.hub.compressedCount(),
		DeflateWireBytes:      st.deflateWire.Load(),
		DeflatePlainBytes:     st.deflatePlain.Load(),
		Inflated:              st.inflated.Load(),
		InflateRefused:        st.inflateRefused.Load(),
	}
	st.mu.Lock()
	for k, v := range st.closed {
		out.Closed[k] = v
	}
	st.mu.Unlock()
	return out
}
