// Package eventlog is the broker's shared, bounded log of framed events.
//
// Every event is encoded once and stored once; a reader (a connection) holds
// only a cursor, the sequence number of the next event it needs. Memory for
// a backlog is therefore the log's, bounded by Config.MaxBytes, and not
// connections times backlog. A reader whose cursor falls behind Tail has lost
// events: the broker treats it as a slow consumer.
//
// Sequence numbers start at 1 and increase by one per event appended with
// Append; Epoch names the log, so a number from another process is
// recognisably foreign. AppendAt lets a node mirror a numbering that comes
// from elsewhere (a cluster's shared stream): it may skip numbers, and a
// skipped number (a gap) names no event and is stepped over by readers, so
// the same number means the same event on every node. Gaps cost nothing:
// a segment's slots carry their numbers only once a gap has appeared in
// it, and readers then find slots by binary search. Reset starts a new
// history, under a new epoch, where the mirrored numbering begins or after
// it was replaced: nothing before it is retained, and numbers still never
// go backwards.
//
// Events live in segments, each a fixed byte buffer filled front to back.
// A published slot is never written again: trimming drops whole segments
// from the index, and a reader still writing a dropped segment's bytes to
// a socket keeps that memory alive through its slice until it is done.
//
// Concurrency: Append, AppendAt, Reset and Trim serialise on one mutex.
// Every other method is lock-free and safe from any number of goroutines
// concurrently with appends.
//
// The package is pure: no sockets, no logging, no clocks (callers pass the
// time), so it is tested on its own.
package eventlog
