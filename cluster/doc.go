// Package cluster joins brokers into one over NATS JetStream: a Bridge is
// the broker.Bus of one node.
//
// # One order, exactly once
//
// Every event a node accepts is published to one JetStream stream
// (subject <prefix>.events). The publisher goroutine sends, as one stream
// message, everything queued since its previous round: one or more whole
// requests, each event's raw JSON byte for byte (wire.go), so a request's
// events are contiguous and in order, and can never interleave with
// another node's. Every node, the publisher included, delivers to its
// local connections only what it consumes from that stream, through an
// ordered consumer, in stream order. Its local event log numbers event i
// of stream message S as LogSeq(S, i) = S<<SeqBits + i: numbers derived
// from the stream alone, identical on every node, so a client can later
// resume on any node from the same number (the numbers a message leaves
// unused are gaps in the log).
//
// A request is confirmed (the publish API's 202) only once JetStream
// acknowledged the message holding it. Each message carries a
// Nats-Msg-Id, so a message resent after a lost acknowledgement is
// recognised within the stream's duplicate window instead of stored
// twice. On the consuming side the ordered consumer restarts after a
// reconnect, a missed heartbeat or a gap (for example after a NATS
// slow-consumer drop) from the last stream message it delivered plus one,
// and the bridge and the local log both refuse a number at or below the
// last delivered: no event reaches a client twice.
//
// JetStream atomic batches (one stream message per event, committed
// together) would have kept log numbers equal to stream numbers, but on
// file storage each batch is staged in a store of its own: measured at
// about 11 ms per batch on the embedded server, against tens of
// microseconds for one message (BENCHMARKS.md, Cluster).
//
// # History, and the stream's identity
//
// A node that starts (or restarts) reads back from the stream as much
// history as its local log keeps (-history-size, by the stream's average
// message size, and -history-age) before the broker opens its port, and
// its log's history begins where what it read does: a client resumes on
// it with a number from any node, or from before the restart, and gets a
// replay; a number older than that gets a gap event, never a silent skip.
// The numbers name one stream instance, so the epoch names it too:
// nats:<stream>:<creation time, unix nanos>. A node notices within about
// a second that its stream was deleted (unhealthy until it is back; it
// creates it again after a few seconds unless someone else does), or
// replaced, or lost messages before they were delivered here, and starts
// a new history rather than going deaf or skipping. See stream.go.
//
// # Outage
//
// While NATS is unreachable, nodes keep their clients and serve local echo.
// Accepted events wait in a bounded queue (Config.MaxQueued events, each
// for at most Config.PublishTimeout); past either bound they are refused
// (the publish API answers 503), never dropped silently. nats.go's own
// reconnect buffer is disabled so that nothing is sent behind the queue's
// back. After reconnecting, the queue is published in order and the
// consumer resumes from where it stopped.
//
// # Backpressure across nodes
//
// Every node delivers every event, so a publisher must wait while any
// node's fan-out is behind, not only its own node's. Each node judges its
// own clients (broker.Node.Saturated: more than one in ten of the
// connections that return credit is behind; sockets that read nothing
// have no vote and are cut instead) and, while saturated,
// announces it on <prefix>.load (core NATS, every 25 ms, plus once when it
// has caught up); the others hold their publishers (Bus.Saturated) until
// it clears, or for at most 500 ms after its last announcement if it went
// away. A node more than 256 stream messages behind the stream counts as
// saturated too. See load.go.
//
// # MetaRequests
//
// A node with backends queue-subscribes to <prefix>.meta (group
// "backends") while it has at least one; a node without any sends its
// clients' MetaRequests there as NATS requests and the reply comes back on
// its own inbox, to the one client that asked.
//
// # Goroutines
//
// One publisher goroutine (group commit: everything queued since its
// previous round goes as one message), one announcer of this node's
// saturation (load.go), one watcher of the stream (stream.go), nats.go's
// goroutines for the consumer, the meta subscription and the connection
// callbacks, and one short-lived goroutine per cross-node MetaRequest
// (bounded by maxMetaInflight). Node.Deliver runs on the consumer's
// goroutine and never blocks; the bridge serialises it with the watcher's
// resets (Bridge.smu).
package cluster
