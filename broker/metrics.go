package broker

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Prometheus metrics, served at GET /metrics on the admin listener (behind
// the API key, like the rest of the admin API but /healthz).
//
// Every Server has its own registry: nothing goes to
// prometheus.DefaultRegisterer, so several brokers in one process (tests,
// embedders) do not collide. The broker's counters are the atomics in
// stats; brokerCollector reads them at scrape time, so the hot path does
// no extra work for metrics and there are no per-connection labels.

// metricCollectors lists everything /metrics exports.
//
// Hook for the fan-out rewrite: its fan-out latency histogram and output
// memory gauge are to be appended here (for example s.hub.collectors()...).
// Each must be a prometheus.Collector owned by this Server, not a
// package-level metric, for the reason above.
func (s *Server) metricCollectors() []prometheus.Collector {
	cs := []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		brokerCollector{s},
		s.stats.fanoutLatency,
	}
	if s.bus != nil {
		cs = append(cs, busCollector{s}) // bus.go
	}
	return cs
}

// metricsHandler builds this Server's registry and its exposition handler.
// A collector that fails to register is a programming error (duplicate
// metric names), hence the panic: it shows up in the first test run.
func (s *Server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.metricCollectors()...)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

var (
	descConnections = prometheus.NewDesc("broker_connections",
		"WebSocket connections open now, by kind (client or backend).", []string{"kind"}, nil)
	descShardConnections = prometheus.NewDesc("broker_shard_connections",
		"WebSocket connections open now, by subscriber-table shard.", []string{"shard"}, nil)
	descDraining = prometheus.NewDesc("broker_draining",
		"1 while the broker is shutting down, else 0.", nil, nil)
	descAccepted = prometheus.NewDesc("broker_connections_accepted_total",
		"WebSocket upgrades completed.", nil, nil)
	descRefused = prometheus.NewDesc("broker_handshakes_refused_total",
		"Upgrade requests refused, by reason: origin (403, also an Origin over 1 KiB), api_key (401), example_key (403: the example socketApiKey from a non-loopback backend), token (401, JWT), full (503: max-conns or draining), per_ip (429: max-conns-per-ip), per_user (429: max-conns-per-user), accept_rate (503: max-accept-rate), bad_request (400/405/426), tls (TLS handshake failed, or plain HTTP on the TLS port).",
		[]string{"reason"}, nil)
	descMessagesIn = prometheus.NewDesc("broker_messages_received_total",
		"Complete messages received from connections.", nil, nil)
	descErrorsOut = prometheus.NewDesc("broker_error_events_sent_total",
		"Error events sent to connections.", nil, nil)
	descPublished = prometheus.NewDesc("broker_events_published_total",
		"Events accepted for fan-out (publish API and backend sockets).", nil, nil)
	descDeliveries = prometheus.NewDesc("broker_deliveries_total",
		"Event copies handed to sockets.", nil, nil)
	descWrites = prometheus.NewDesc("broker_socket_writes_total",
		"Write calls made by the fan-out workers.", nil, nil)
	descPanics = prometheus.NewDesc("broker_panics_total",
		"Panics recovered while handling a connection (each closed it with 1011).", nil, nil)
	descSlow = prometheus.NewDesc("broker_slow_consumers_total",
		"Connections closed with 1008 for falling behind: more than max-lag, off the event log, or past max-pending.", nil, nil)
	descPublishWaits = prometheus.NewDesc("broker_publish_waits_total",
		"Publish requests held by backpressure.", nil, nil)
	descPublishRefused = prometheus.NewDesc("broker_publish_refused_total",
		"Publish requests refused with 503 after waiting for a saturated broker.", nil, nil)
	descMetaForwarded = prometheus.NewDesc("broker_meta_requests_forwarded_total",
		"Client MetaRequests sent to a backend.", nil, nil)
	descMetaTimeouts = prometheus.NewDesc("broker_meta_requests_timed_out_total",
		"MetaRequests no backend answered within backend-timeout.", nil, nil)
	descMetaLate = prometheus.NewDesc("broker_meta_replies_dropped_total",
		"MetaRequest replies dropped: late, unknown clientId, or from another backend.", nil, nil)
	descMetaPending = prometheus.NewDesc("broker_meta_requests_pending",
		"MetaRequests waiting for a backend reply now.", nil, nil)
	descOutput = prometheus.NewDesc("broker_output_memory_bytes",
		"Buffered output: the event log plus what connections hold in nbio's write buffers (bounded by max-output-memory).", nil, nil)
	descHistoryBytes = prometheus.NewDesc("broker_history_bytes",
		"Memory the shared event log retains (bounded by history-size).", nil, nil)
	descHistoryEvents = prometheus.NewDesc("broker_history_events",
		"Events the shared event log retains.", nil, nil)
	descHeadSeq = prometheus.NewDesc("broker_event_sequence",
		"Sequence number of the newest event in the log.", nil, nil)
	descBehind = prometheus.NewDesc("broker_connections_behind",
		"Connections of the audience (neither stalled nor held) further behind than publish-lag at the workers' last pass; publishers wait while they are more than one in ten of it.", nil, nil)
	descStalled = prometheus.NewDesc("broker_connections_stalled",
		"Connections that owe a pong and have returned no credit for a while (or never): they have no vote in publisher backpressure and are cut at max-lag.", nil, nil)
	descForgedPongs = prometheus.NewDesc("broker_forged_pongs_total",
		"Credit-shaped pongs whose tag did not match a ping this connection was sent: they returned no credit.", nil, nil)
	descMemoryCloses = prometheus.NewDesc("broker_output_memory_closes_total",
		"Connections closed by the max-output-memory guard.", nil, nil)
	descPaced = prometheus.NewDesc("broker_input_paced_total",
		"Times a connection's input was held: over its message or broadcast rate, or a publisher while the broker is saturated.", nil, nil)
	descMetaPaced = prometheus.NewDesc("broker_meta_requests_paced_total",
		"Times a client's input was held at its MetaRequest budget (meta-inflight, meta-inflight-bytes) until a request of its was answered or expired.", nil, nil)
	descMetaRefused = prometheus.NewDesc("broker_meta_requests_refused_total",
		"MetaRequests refused with an error event, by reason: inflight (the client still over its budget when its hold ended), pending (meta-max-pending on this node), backend_busy (every backend's output over half of max-pending).",
		[]string{"reason"}, nil)
	descBroadcastPaced = prometheus.NewDesc("broker_broadcasts_paced_total",
		"Echo broadcasts that held their sender, by scope: connection (over its broadcast-rate or broadcast-bytes budget, sent at once) or node (waited before being appended: a publisher waiting, the broker saturated, or broadcast-node-bytes spent).",
		[]string{"scope"}, nil)
	descBroadcastRefused = prometheus.NewDesc("broker_broadcasts_refused_total",
		"Echo broadcasts refused with an error event after waiting as long as a publisher would for the node.", nil, nil)
	descCompressed = prometheus.NewDesc("broker_compressed_connections",
		"Connections that negotiated permessage-deflate.", nil, nil)
	descDeflateBytes = prometheus.NewDesc("broker_deflate_bytes_total",
		"Event bytes written to compressed connections, by kind: wire (as written, deflated or small and plain) and plain (the plain frames they stand for); plain minus wire is the egress saved.",
		[]string{"kind"}, nil)
	descInflated = prometheus.NewDesc("broker_inflated_messages_total",
		"Compressed client messages inflated.", nil, nil)
	descInflateRefused = prometheus.NewDesc("broker_inflate_refused_total",
		"Compressed client messages refused: inflating past max-message (1009) or corrupt (1007).", nil, nil)
	descCloses = prometheus.NewDesc("broker_closes_total",
		"Connections closed, by reason (the labels of /stats \"closed\").", []string{"reason"}, nil)
)

// brokerCollector reads the Server's counters at scrape time.
type brokerCollector struct{ s *Server }

var _ prometheus.Collector = brokerCollector{}

func (brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descConnections, descShardConnections, descDraining, descAccepted, descRefused,
		descMessagesIn, descErrorsOut, descPublished, descDeliveries, descWrites, descPanics,
		descSlow, descPublishWaits, descPublishRefused, descMetaForwarded, descMetaTimeouts,
		descMetaLate, descMetaPending, descCloses, descOutput, descHistoryBytes, descHistoryEvents,
		descHeadSeq, descBehind, descStalled, descForgedPongs, descMemoryCloses, descPaced,
		descMetaPaced, descMetaRefused, descBroadcastPaced, descBroadcastRefused,
		descCompressed, descDeflateBytes, descInflated, descInflateRefused,
	} {
		ch <- d
	}
}

func (c brokerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	st := &s.stats
	out := metricOut(ch)
	gauge, counter := out.gauge, out.counter

	total := s.hub.count.Load()
	backends := int64(s.meta.backendCount())
	// The two are read at slightly different moments; a backend that is
	// joining can be in one and not yet the other.
	clients := max(total-backends, 0)
	gauge(descConnections, float64(clients), "client")
	gauge(descConnections, float64(backends), "backend")
	for i, n := range s.hub.shardCounts() {
		gauge(descShardConnections, float64(n), strconv.Itoa(i))
	}
	out.flag(descDraining, s.draining.Load())

	counter(descAccepted, st.accepted.Load())
	counter(descRefused, st.refusedOrigin.Load(), "origin")
	counter(descRefused, st.refusedKey.Load(), "api_key")
	counter(descRefused, st.refusedToken.Load(), "token")
	counter(descRefused, st.refusedFull.Load(), "full")
	counter(descRefused, st.refusedPerIP.Load(), "per_ip")
	counter(descRefused, st.refusedPerUser.Load(), "per_user")
	counter(descRefused, st.refusedRate.Load(), "accept_rate")
	counter(descRefused, st.refusedExample.Load(), "example_key")
	counter(descRefused, st.badHandshake.Load(), "bad_request")
	counter(descRefused, st.refusedTLS.Load(), "tls")
	counter(descMessagesIn, st.messagesIn.Load())
	counter(descErrorsOut, st.errorsOut.Load())
	counter(descPublished, st.eventsPublished.Load())
	counter(descDeliveries, st.deliveries.Load())
	counter(descWrites, st.writes.Load())
	counter(descPanics, st.panics.Load())
	counter(descSlow, st.slowConsumers.Load())
	counter(descPublishWaits, st.publishWaits.Load())
	counter(descPublishRefused, st.publishRefused.Load())
	counter(descMetaForwarded, st.metaForwarded.Load())
	counter(descMetaTimeouts, st.metaTimeouts.Load())
	counter(descMetaLate, st.metaLate.Load())
	gauge(descMetaPending, float64(s.meta.pendingCount()))
	gauge(descOutput, float64(s.outputBytes()))
	gauge(descHistoryBytes, float64(s.events.Bytes()))
	gauge(descHistoryEvents, float64(s.events.Head()-s.events.Tail()))
	gauge(descHeadSeq, float64(s.events.Head()-1))
	gauge(descBehind, float64(s.hub.sumShards(func(sh *shard) int64 { return sh.behind.Load() })))
	gauge(descStalled, float64(s.hub.stalledCount()))
	counter(descForgedPongs, st.forgedPongs.Load())
	counter(descMemoryCloses, st.memoryCloses.Load())
	counter(descPaced, st.paced.Load())
	counter(descMetaPaced, st.metaPaced.Load())
	counter(descMetaRefused, st.metaRefusedInflight.Load(), "inflight")
	counter(descMetaRefused, st.metaRefusedPending.Load(), "pending")
	counter(descMetaRefused, st.metaRefusedBusy.Load(), "backend_busy")
	counter(descBroadcastPaced, st.broadcastPaced.Load(), "connection")
	counter(descBroadcastPaced, st.broadcastNodePaced.Load(), "node")
	counter(descBroadcastRefused, st.broadcastRefused.Load())
	gauge(descCompressed, float64(s.hub.compressedCount()))
	counter(descDeflateBytes, st.deflateWire.Load(), "wire")
	counter(descDeflateBytes, st.deflatePlain.Load(), "plain")
	counter(descInflated, st.inflated.Load())
	counter(descInflateRefused, st.inflateRefused.Load())

	// Copied first: ch may block, and closedBy must not wait for a scrape.
	st.mu.Lock()
	closed := make(map[string]int64, len(st.closed))
	for reason, n := range st.closed {
		closed[reason] = n
	}
	st.mu.Unlock()
	for reason, n := range closed {
		counter(descCloses, n, reason)
	}
}

// backendCount is the number of backend connections the router knows.
func (r *metaRouter) backendCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.backends)
}

// metricOut is where a collector sends its values, with one method per
// kind, so that a Collect reads as the list of what it exports.
type metricOut chan<- prometheus.Metric

func (ch metricOut) gauge(d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func (ch metricOut) counter(d *prometheus.Desc, v int64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

// flag is a gauge that is 1 while on, else 0.
func (ch metricOut) flag(d *prometheus.Desc, on bool) {
	v := 0.0
	if on {
		v = 1
	}
	ch.gauge(d, v)
}
