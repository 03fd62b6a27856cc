package cluster

import "errors"

// Errors reported to a publisher through broker.Bus callbacks.
var (
	// ErrQueueFull: more than Config.MaxQueued events are waiting for NATS.
	ErrQueueFull = errors.New("cluster: publish queue full (NATS unreachable or slow)")
	// ErrTimeout: the cluster did not confirm within Config.PublishTimeout.
	ErrTimeout = errors.New("cluster: not confirmed by NATS in time")
	// ErrClosed: the bridge is closed.
	ErrClosed = errors.New("cluster: bridge closed")
)
