package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Forged pongs (Config.StalledForgeInterval): stalled subscribers that
// never read but keep answering credit pings they never saw, hoping the
// server takes the guesses for real pongs and keeps buffering for them.
// A server that hands out credit per pong without checking it would write
// to such a socket without bound, and never see it fall behind, so never
// cut it. The broker's credit ping is a 25-byte payload: marker 'b', the
// data position (8 bytes), the cursor (8 bytes) and a keyed tag (8 bytes);
// before the tag it was the first 17 bytes alone. The forger sends both
// shapes in turn, with positions cycling through the first window (what a
// server would have written to a socket that never read), a huge cursor
// and a random tag.

// Defaults and bounds of the forged pongs.
const (
	// DefaultStalledForgeWindow is the window the forged positions cycle
	// through: the broker's default -write-window.
	DefaultStalledForgeWindow = 16 << 10
	// MinStalledForgeInterval is the shortest Config.StalledForgeInterval:
	// a bounded rate per socket, so the forgers are an attack on credit,
	// not a message flood (the broker paces floods by itself).
	MinStalledForgeInterval = time.Millisecond
)

// forgeStep is how far the forged position moves from one pong to the
// next within the window: prime, so every position of a window of any
// size is visited in turn.
const forgeStep = 997

// forgeCursor is the forged pongs' cursor: far past anything a server
// has, as if the client had read everything there will ever be.
const forgeCursor = 1 << 62

// forgeState is the forger's own state of one stalled connection; only
// the forger goroutine touches it.
type forgeState struct {
	k    uint64 // pongs begun so far
	rest []byte // the unsent end of a frame a short write cut
	done bool   // the socket failed a write or was seen closed: leave it
}

// forgePayload is the k-th forged credit pong's payload: the 25-byte
// tagged shape for even k, the older 17-byte one for odd k.
func forgePayload(b []byte, k uint64, window int) []byte {
	pos := 1 + (k*forgeStep)%uint64(max(1, window))
	b = append(b, 'b')
	b = binary.BigEndian.AppendUint64(b, pos)
	b = binary.BigEndian.AppendUint64(b, forgeCursor)
	if k%2 == 0 {
		b = binary.BigEndian.AppendUint64(b, rand.Uint64())
	}
	return b
}

// forgeCounts are a worker's forged-pong tallies.
type forgeCounts struct {
	sent    atomic.Int64 // whole pong frames handed to the kernel
	blocked atomic.Int64 // turns skipped: the socket's send buffer was full
	failed  atomic.Int64 // sockets left after a failed write
}

// forgePongs starts the forger: every interval it writes one forged
// credit pong (masked, as a client must) to each stalled connection that
// is still open, without ever waiting on a socket (a full send buffer
// skips the turn). It leaves a connection once the watcher has seen it
// leave ESTABLISHED or a write fails. conns is called every turn, as
// reconnects replace connections. The returned stop is idempotent and
// waits for the forger to end.
func forgePongs(ctx context.Context, conns func() []*stalledConn, interval time.Duration, window int, n *forgeCounts) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		var scratch forgeScratch
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for _, sc := range conns() {
				sc.forge(&scratch, window, n)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// forgeScratch is the forger's reused buffers.
type forgeScratch struct{ payload, frame []byte }

// forge makes sc's turn: the rest of a cut frame if there is one, else
// the next forged pong.
func (sc *stalledConn) forge(s *forgeScratch, window int, n *forgeCounts) {
	f := &sc.forgeSt
	if f.done {
		return
	}
	if sc.closedAt.Load() != 0 || sc.isRetired() {
		f.done = true
		return
	}
	out := f.rest
	if len(out) == 0 {
		s.payload = forgePayload(s.payload[:0], f.k, window)
		s.frame = appendMaskedFrame(s.frame[:0], 0xA, s.payload)
		f.k++
		out = s.frame
	}
	w, err := sc.writeNow(out)
	switch {
	case errors.Is(err, unix.EAGAIN):
		n.blocked.Add(1) // a new frame is dropped, a cut one kept
	case err != nil:
		f.done = true
		n.failed.Add(1)
	case w == len(out):
		n.sent.Add(1)
		f.rest = f.rest[:0]
	default:
		f.rest = append(f.rest[:0], out[w:]...) // copied: out may be the scratch frame
	}
}

// writeNow writes what the socket takes of b without waiting (the socket
// is non-blocking; a full buffer is EAGAIN) and without SIGPIPE.
func (sc *stalledConn) writeNow(b []byte) (int, error) {
	rc, err := sc.conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var werr error
	if err := rc.Write(func(fd uintptr) bool {
		n, werr = unix.SendmsgN(int(fd), b, nil, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
		return true // never wait for writability
	}); err != nil {
		return 0, err
	}
	if werr != nil {
		return 0, werr
	}
	return n, nil
}
