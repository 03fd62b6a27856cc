// Package cluster joins brokers into one over NATS JetStream: a Bridge is
// the broker.Bus of one node.
//
// # One order, exactly once
//
// Every event a node accepts is published to one JetStream stream (subject
// <prefix>.events, or <prefix>.echo for echo broadcasts, one event per
// message, the raw JSON byte for byte). Every node, the publisher
// included, delivers to its local connections only what it consumes from
// that stream, through an ordered consumer, in stream order, and its local
// event log numbers each event with its stream sequence number, so a
// number names the same event on every node. A publish request's events
// go as one JetStream atomic batch (consecutive stream numbers, all or
// nothing); a request is confirmed (202) only once JetStream acknowledged
// it. Each message carries a Nats-Msg-Id, so a publish retried after a
// lost acknowledgement is recognised by the stream's duplicate window
// instead of being stored twice. On the consuming side the ordered
// consumer restarts after a reconnect, a missed heartbeat or a gap (for
// example after a NATS slow-consumer drop) from the last stream number it
// delivered plus one, and the bridge and the local log both refuse a
// number at or below the last delivered: no event reaches a client twice.
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
// previous round goes as one batch), nats.go's goroutines for the
// consumer, the meta subscription and the connection callbacks, and one
// short-lived goroutine per cross-node MetaRequest (bounded by
// maxMetaInflight). Node.Deliver runs on the consumer's goroutine and
// never blocks.
package cluster
