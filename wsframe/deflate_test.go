package wsframe

import (
	"bytes"
	"compress/flate"
	"runtime"
	"testing"
)

// deflateRaw is p as a permessage-deflate payload: DEFLATE with a sync
// flush, its 00 00 ff ff removed.
func deflateRaw(t testing.TB, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	_, _ = w.Write(p)
	_ = w.Flush()
	return bytes.TrimSuffix(b.Bytes(), DeflateTail)
}

// zipBomb is about 1 MiB that inflates to 1 GiB of zeros.
func zipBomb(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	_, _ = w.Write(make([]byte, 1<<20))
	_ = w.Flush()
	return bytes.Repeat(b.Bytes(), 1024)
}

// Inflate allocates about its limit, not what the data inflates to.
func TestInflateBoundedMemory(t *testing.T) {
	bomb := zipBomb(t)
	const limit = 64 << 10
	out, err := Inflate(nil, bomb[:64<<10], limit) // warm the pool
	if err != ErrInflateTooBig || len(out) != limit+1 {
		t.Fatalf("inflate: %v with %d bytes, want ErrInflateTooBig at %d", err, len(out), limit+1)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = Inflate(nil, bomb, limit)
	runtime.ReadMemStats(&after)
	if err != ErrInflateTooBig {
		t.Fatalf("inflate: %v, want ErrInflateTooBig", err)
	}
	// Output grows by doubling to limit+1; the reader is pooled (a GC may
	// have emptied the pool: allow one reader, about 45 KiB).
	if got := after.TotalAlloc - before.TotalAlloc; got > 4*limit+128<<10 {
		t.Fatalf("inflating a bomb with a %d-byte limit allocated %d bytes", limit, got)
	}
	// And a message that fits is inflated whole.
	msg := bytes.Repeat([]byte("x"), limit)
	if out, err := Inflate(nil, deflateRaw(t, msg), limit); err != nil || !bytes.Equal(out, msg) {
		t.Fatalf("inflate at the limit: %v, %d bytes", err, len(out))
	}
}

// Corrupt data is an error, not a panic or an endless read.
func TestInflateCorrupt(t *testing.T) {
	if _, err := Inflate(nil, []byte{0xff, 0xff, 0xff, 0xff, 0x00}, 1<<20); err == nil || err == ErrInflateTooBig {
		t.Fatalf("corrupt data: %v, want a flate error", err)
	}
}
