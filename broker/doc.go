// Package broker is the WebSocket event broker: the Users WebSocket API
// served from an nbio epoll reactor, a sharded subscriber table that fans
// each event out as one pre-encoded frame, and an admin listener with the
// publish API.
//
// # Goroutines
//
// nbio pollers own the sockets and call conn.Parse with the bytes read;
// client messages are handled right there and must not block. Handshakes
// and close notifications run on nbio's small handler pool. Each shard has
// one worker goroutine that writes queued frames to its connections; one
// sweeper goroutine pings and reaps idle connections; the admin listener
// is a net/http server. Nothing is started per connection or per message.
//
// # WebSocket framing
//
// The broker uses nbhttp for HTTP parsing and the upgrade request but owns
// the frame codec (conn.go) instead of nbio's websocket package, because
// that package answers invalid UTF-8 with 1002 instead of 1007, accepts
// unmasked client frames, and its Writev can drop buffers on a partial
// write. Server frames are unmasked, which is what lets one encoded frame
// go unchanged to every recipient.
package broker
