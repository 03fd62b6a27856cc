package bench

import (
	"bytes"
	"compress/flate"
	"fmt"
	"sync"
	"testing"

	"github.com/webinate/broker/wsframe"
)

// deflateAll compresses each payload as a permessage-deflate sender with
// no context takeover does: a fresh stream each, sync-flushed, its
// DeflateTail removed.
func deflateAll(t *testing.T, level int, plains [][]byte) [][]byte {
	t.Helper()
	out := make([][]byte, len(plains))
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range plains {
		b.Reset()
		w.Reset(&b)
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		out[i] = bytes.Clone(bytes.TrimSuffix(b.Bytes(), wsframe.DeflateTail))
	}
	return out
}

func mixEvents(n int) [][]byte {
	plains := make([][]byte, n)
	for i := range plains {
		plains[i] = appendMixEvent(nil, 1, int64(i), 1_700_000_000_000_000_000+int64(i))
	}
	return plains
}

// The cached path yields exactly the inflated bytes, the second time from
// the cache. With one set, more payloads than ways evict each other in
// turn, so every lookup must miss and still get its own bytes, never
// another's; among them two payloads of one length differing in one byte.
func TestInflateCache(t *testing.T) {
	plains := mixEvents(len(mixSizes))
	comp := deflateAll(t, flate.DefaultCompression, plains)
	// Stored (level 0), so that the compressed forms differ in one byte too.
	a := bytes.Repeat([]byte("a"), 300)
	b := bytes.Clone(a)
	b[150] = 'b'
	ab := deflateAll(t, flate.NoCompression, [][]byte{a, b})
	if len(ab[0]) != len(ab[1]) || bytes.Equal(ab[0], ab[1]) {
		t.Fatalf("stored pair: %d and %d bytes", len(ab[0]), len(ab[1]))
	}
	plains, comp = append(plains, a, b), append(comp, ab...)
	if len(comp) <= inflateWays {
		t.Fatalf("%d payloads do not overflow a set of %d", len(comp), inflateWays)
	}
	for _, sets := range []int{1, inflateCacheSets} {
		ic := newInflateCache(sets)
		for round := range 3 {
			for i, c := range comp {
				got, hit, err := ic.inflate(c)
				if err != nil {
					t.Fatalf("sets %d: %v", sets, err)
				}
				if !bytes.Equal(got, plains[i]) {
					t.Fatalf("sets %d round %d payload %d: got %.40q, want %.40q", sets, round, i, got, plains[i])
				}
				if sets == 1 && hit {
					t.Fatalf("one set: payload %d hit", i)
				}
				// Many sets: no set gets more than its ways of these few.
				if sets > 1 && round > 0 && !hit {
					t.Errorf("sets %d round %d payload %d: miss", sets, round, i)
				}
			}
		}
	}
	// Payloads that share a set and come in turn (the events of a batch,
	// subscriber after subscriber) are each inflated once, not once per
	// turn.
	ic := newInflateCache(1)
	for round := range 100 {
		for i, c := range comp[:inflateWays] {
			if _, hit, _ := ic.inflate(c); hit != (round > 0) {
				t.Fatalf("round %d payload %d: hit %v", round, i, hit)
			}
		}
	}
	if _, _, err := newInflateCache(8).inflate([]byte{0xff, 0xff, 0xff}); err == nil {
		t.Error("corrupt payload inflated")
	}
}

// Pollers share one cache: concurrent lookups of payloads that evict each
// other (more payloads than slots) still get exactly their own bytes.
func TestInflateCacheConcurrent(t *testing.T) {
	plains := mixEvents(40)
	comp := deflateAll(t, flate.DefaultCompression, plains)
	ic := newInflateCache(4)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 400 {
				i := (g*7 + k) % len(comp)
				got, _, err := ic.inflate(comp[i])
				if err == nil && !bytes.Equal(got, plains[i]) {
					err = fmt.Errorf("payload %d: wrong bytes", i)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
