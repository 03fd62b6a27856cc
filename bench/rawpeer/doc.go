// Package rawpeer is the floor the broker's everyday fan-out is compared
// against (issue #20): a server that does nothing but frame each published
// event once and hand it to every client socket with one write(2). No
// per-connection queue, no writer goroutine, no buffering, no flow
// control: the publish request's goroutine (with one helper per further
// core, each taking a share of the clients, from 512 clients) loops over
// the clients and calls write(2) on each socket's descriptor
// (non-blocking, through syscall.RawConn, so the loop never waits for a
// slow client).
//
// Correctness without buffering: a frame the kernel does not take whole
// (the socket's send buffer is full, or holds only part of it) cannot be
// finished later without a queue, so the client is dropped: its
// connection is closed at once, and a flag set under the descriptor's
// write lock stops any other write to it, so no byte of another frame
// ever follows a torn one. Dropped counts them.
//
// It speaks only the subset of the Users WebSocket API (docs/PROTOCOL.md)
// the bench needs: the upgrade with the Origin check (a Users-Api-Key
// header with the right key admits a backend, treated like any client),
// POST /api/events with the key and /healthz on the admin listener (both
// from bench/peerapi, shared with bench/baseline), and for the bench's
// echo scenarios a reader per client that answers pings, closes, and
// echoes each text message back to its sender, or to every client when it
// carries "broadcast":true. It validates no client message and sends no
// error events; permessage-deflate is never negotiated.
package rawpeer
