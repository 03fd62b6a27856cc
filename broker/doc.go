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
// one worker goroutine that copies the event log to its connections; one
// sweeper goroutine pings and reaps idle connections; one guard enforces
// max-output-memory; the admin listener is a net/http server. Nothing is
// started per connection or per message (a connection whose token expires
// has one timer, identity.go).
// With TLS (tls.go) the poller also decrypts, and runs each TLS handshake.
//
// # Live reload
//
// Reload (reload.go) swaps what may change while running (origin matcher,
// API key, JWT verifier, limits, lag bounds, certificate) through atomic
// pointers: readers never lock, and see the old or the new value whole.
//
// # Fan-out
//
// A published event is framed once and appended once to the node's event
// log (eventlog), shared by every connection; a connection is a cursor
// into it (cursor.go: its place in the log and its credit account, embedded
// in conn). Each shard worker, on each pass, copies to each connection what
// its credit window allows, in as few write calls as possible (group
// commit); that, not a timer, is what batches under load. The worker
// reaches the socket only through the sink interface (hub.go), which conn
// implements, so the whole flow policy runs in hub_test.go against
// thousands of fake connections and a simulated clock (hub.clock). Credit
// returns with pongs to tagged pings (hub.pong, creditTag). A connection
// more than MaxLag behind, or whose next event left the log, is a slow
// consumer and gets a 1008 close frame behind what it has in flight;
// publishers wait while the audience (connections that return credit) is
// behind (hub.saturated). Replies written to one connection (echo, errors,
// MetaRequests) have their own backstop, MaxPendingBytes.
//
// # MetaRequests
//
// metaRouter forwards a client's MetaRequest to one backend (round robin,
// failing over on write errors) with a per-request clientId, and routes
// the reply to the one client that asked; timeouts and backend
// disconnects are answered with error events.
//
// # Cluster
//
// With Config.Bus set (package cluster: NATS JetStream), the node is one of
// several: the accept hooks (publishToBus for the publish API, toBus for
// backend sockets and echo broadcasts) hand events to the Bus instead of
// the local log, and the Bus fills the log through Node.Deliver, in the
// cluster's one order, numbered from the shared stream (hub.broadcastAt,
// eventlog.AppendAt). A MetaRequest on a node without backends goes to
// another node's backend through the Bus (metaRouter.viaBus; the serving
// side is metaRouter.route with a remote asker). Without a Bus nothing of
// this runs.
//
// # Lock order
//
// shard.mu is taken alone, never across a socket write (the worker copies
// its connection list). The event log's lock is taken alone. conn.wmu,
// then metaRouter.mu (a backend joins the routing under wmu with its 101);
// metaRouter.mu is never held while writing to a socket. conn.wmu, then
// tlsLink.mu (TLS
// record layer), then nbio's per-connection lock, which is innermost
// (inside every socket write). The poller takes tlsLink.mu alone, to
// decrypt, and never holds it while parsing.
//
// # WebSocket framing
//
// The broker uses nbhttp for HTTP parsing and the upgrade request but owns
// the frame codec (package wsframe, with the message state machine on top
// of it in conn.go) instead of nbio's websocket package, because
// that package answers invalid UTF-8 with 1002 instead of 1007, accepts
// unmasked client frames, and its Writev can drop buffers on a partial
// write. Server frames are unmasked, which is what lets one encoded frame
// go unchanged to every recipient.
package broker
