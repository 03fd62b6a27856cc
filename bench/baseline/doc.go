// Package baseline is a reference server for the Users WebSocket API
// (shared/PROTOCOL.md) written in the common goroutine-per-connection style:
// net/http + gorilla/websocket, one read goroutine and one write goroutine
// with a buffered channel per connection, and a hub that is a map behind a
// mutex. It exists only so the load-test harness can measure the broker's
// advantage against a plain implementation instead of asserting it.
//
// It deliberately keeps the simple design: broadcast forwards an event's
// bytes without re-encoding but still performs one WriteMessage per event per
// connection. It has no MetaRequest routing: a client's MetaRequest is always
// answered with "no backend available".
//
// Concurrency: Start launches the listeners; every connection owns exactly
// two goroutines (reader and writer). The hub lock is held only while
// enqueueing; a connection whose send buffer is full is closed as a slow
// consumer rather than blocking the publisher.
package baseline
