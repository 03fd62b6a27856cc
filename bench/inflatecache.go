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

// Bounds of inflateCache: slots, and the largest message it keeps, so
// that it never holds more than a few MiB however large the events.
const (
	inflateCacheSlots   = 1024
	inflateCacheMaxSize = 64 << 10
)

// inflateCache lets the subscribers of one harness process inflate each
// published event once instead of once each. With no context takeover
// (what the harness offers) a server that compresses an event once sends
// every subscriber the same compressed bytes, and inflating them is most
// of what the harness spends per delivery: with -compression it took 1.4
// of the machine's 2 cores (issue #20), leaving too little to judge the
// server. An entry is found by a hash of the compressed bytes and used
// only if it holds exactly those bytes (compared whole), so different
// payloads never share a result; collisions only cost a miss.
//
// It is safe for concurrent use by every goroutine nbio parses on. A slot
// is an atomic pointer to an entry whose compressed bytes never change;
// the first lookup of a payload installs its entry and inflates it under
// the entry's sync.Once, and lookups arriving meanwhile wait for that one
// inflation rather than each doing their own. The plain bytes it returns
// are shared by every subscriber that got the event and must not be
// modified (the handlers only read them).
type inflateCache struct {
	seed  maphash.Seed
	slots []atomic.Pointer[inflateEntry]
	mask  uint64
}

// inflateEntry is one compressed payload and, once inflated, what it
// inflates to (or the error).
type inflateEntry struct {
	compressed []byte
	once       sync.Once
	plain      []byte
	err        error
}

// newInflateCache makes a cache of n slots, n rounded up to a power of two.
func newInflateCache(n int) *inflateCache {
	size := 1
	for size < n {
		size <<= 1
	}
	return &inflateCache{seed: maphash.MakeSeed(), slots: make([]atomic.Pointer[inflateEntry], size), mask: uint64(size - 1)}
}

// inflate returns the permessage-deflate payload p inflated, and whether
// another lookup had inflated it. p is only read; the result is shared.
func (ic *inflateCache) inflate(p []byte) (plain []byte, hit bool, err error) {
	slot := &ic.slots[maphash.Bytes(ic.seed, p)&ic.mask]
	e := slot.Load()
	if e == nil || !bytes.Equal(e.compressed, p) {
		n := &inflateEntry{compressed: bytes.Clone(p)}
		if slot.CompareAndSwap(e, n) {
			e = n
		} else if e = slot.Load(); e == nil || !bytes.Equal(e.compressed, p) {
			// Another payload took the slot just now: inflate uncached.
			e = n
		}
	}
	ran := false
	e.once.Do(func() {
		ran = true
		if e.plain, e.err = wsframe.Inflate(nil, e.compressed, maxInflate); e.err != nil {
			e.err = fmt.Errorf("bench: inflate: %w", e.err)
		}
		if len(e.plain) > inflateCacheMaxSize {
			slot.CompareAndSwap(e, nil) // too big to keep
		}
	})
	return e.plain, !ran, e.err
}
