// Package peerapi is what the bench's reference servers (bench/baseline,
// bench/rawpeer) share of the Users WebSocket API (docs/PROTOCOL.md): the
// upgrade's admission (an approved Origin, or the API key of a backend)
// and the admin listener's POST /api/events and /healthz. Keeping it in
// one place means the peers differ only in how they deliver, which is
// what the comparison is about.
package peerapi
