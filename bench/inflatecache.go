package bench

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/webinate/broker/wsframe"
)

// maxInflate bounds one inflated message (64 MiB: the harness has no
// message limit of its own, only a guard against a runaway stream).
const maxInflate = 1 << 26

// Bounds of inflateCache: sets of inflateWays entries each, and the
// largest message it keeps, so that it never holds more than a few MiB
// however large the events.
const (
	inflateCacheSets    = 128
	inflateWays         = 8
	inflateCacheMaxSize = 64 << 10
)

// inflateCache lets the subscribers of one harness process inflate each
// published event once instead of once each. With no context takeover
// (what the harness offers) a server that compresses an event once sends
// every subscriber the same compressed bytes, and inflating them is most
// of what the harness spends per delivery: with -compression it took 1.4
// of the machine's 2 cores (issue #20), leaving too little to judge the
// server. An entry is found by a hash of the compressed bytes, which picks
// a set, and used only if it holds exactly those bytes (compared whole),
// so different payloads never share a result. A set holds inflateWays
// entries, replaced oldest first: the events of one batch reach each
// subscriber one after another, so two of them in a direct-mapped slot
// would evict each other at every subscriber (seen: 400 inflations of one
// event for 200 subscribers).
//
// It is safe for concurrent use by every goroutine nbio parses on. Hits
// take no lock: a way is an atomic pointer to an entry whose compressed
// bytes never change. A miss takes its set's lock to look again and
// install the entry, then inflates under the entry's sync.Once, so that
// lookups arriving meanwhile wait for that one inflation rather than each
// doing their own. The plain bytes it returns are shared by every
// subscriber that got the event and must not be modified (the handlers
// only read them).
type inflateCache struct {
	seed maphash.Seed
	sets []inflateSet
	mask uint64
}

// inflateSet is one set of ways; mu serializes installing entries.
type inflateSet struct {
	mu   sync.Mutex
	next int // the way to replace next, under mu
	ways [inflateWays]atomic.Pointer[inflateEntry]
}

// inflateEntry is one compressed payload and, once inflated, what it
// inflates to (or the error).
type inflateEntry struct {
	compressed []byte
	once       sync.Once
	plain      []byte
	err        error
}

// newInflateCache makes a cache of n sets, n rounded up to a power of two.
func newInflateCache(n int) *inflateCache {
	size := 1
	for size < n {
		size <<= 1
	}
	return &inflateCache{seed: maphash.MakeSeed(), sets: make([]inflateSet, size), mask: uint64(size - 1)}
}

// find returns the entry holding exactly p, or nil.
func (s *inflateSet) find(p []byte) *inflateEntry {
	for i := range s.ways {
		if e := s.ways[i].Load(); e != nil && bytes.Equal(e.compressed, p) {
			return e
		}
	}
	return nil
}

// inflate returns the permessage-deflate payload p inflated, and whether
// another lookup had inflated it. p is only read; the result is shared.
func (ic *inflateCache) inflate(p []byte) (plain []byte, hit bool, err error) {
	set := &ic.sets[maphash.Bytes(ic.seed, p)&ic.mask]
	e := set.find(p)
	if e == nil {
		set.mu.Lock()
		if e = set.find(p); e == nil {
			e = &inflateEntry{compressed: bytes.Clone(p)}
			set.ways[set.next].Store(e)
			set.next = (set.next + 1) % inflateWays
		}
		set.mu.Unlock()
	}
	ran := false
	e.once.Do(func() {
		ran = true
		if e.plain, e.err = wsframe.Inflate(nil, e.compressed, maxInflate); e.err != nil {
			e.err = fmt.Errorf("bench: inflate: %w", e.err)
		}
	})
	if ran && len(e.plain) > inflateCacheMaxSize {
		set.drop(e) // too big to keep
	}
	return e.plain, !ran, e.err
}

// drop empties the way holding e, if any still does.
func (s *inflateSet) drop(e *inflateEntry) {
	for i := range s.ways {
		s.ways[i].CompareAndSwap(e, nil)
	}
}
