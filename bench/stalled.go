package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/webinate/broker/wsframe"
)

// stalledConn is a subscriber that never reads. It is a plain socket, not
// an nbio connection: after the handshake nothing touches it, so the
// kernel's receive buffer fills, the TCP window closes and the server sees
// exactly what a frozen client looks like (no reads, no pong to its pings).
// Only at the end does readStalled read what is there, to learn how the
// server closed it. With Config.StalledReconnect the harness instead
// retires it (closes it unread) and dials a new one in its place.
type stalledConn struct {
	id, node int
	addr     string // the node it was dialled to, and from (nil: any)
	src      net.IP
	conn     *net.TCPConn
	br       *bufio.Reader // holds anything read with the 101
	// born is when its handshake completed, unix nanos.
	born int64
	// mu serialises the watcher's polls with retire, which may run on a
	// reconnect goroutine; retired (under mu) stops the polls.
	mu      sync.Mutex
	retired bool
	// ended is when the harness retired it, or when the final read began
	// for a socket's last connection (unix nanos); written before the
	// report is made, read after.
	ended int64
	// closedAt is when the watcher first saw the socket leave ESTABLISHED
	// (the server's FIN or RST arrived), unix nanos; 0 if never.
	closedAt atomic.Int64
	// base is the kernel's bytes-received count at the first byte after
	// the 101 (TCP_INFO at dial time, less what bufio holds).
	base uint64
	// arrivals is the watcher's record of the bytes-received count, one
	// entry per change: when a close frame is found at the final read, its
	// end's stream offset tells from this when it had arrived, without the
	// socket ever having been read during the run. Written by the watcher
	// only, read after it stopped.
	arrivals []arrival
	// outcome (outcome*), code (of the close frame) and closeEnd (the
	// stream offset after it) are set by finalRead, read after readStalled
	// returns.
	outcome, code int
	closeEnd      uint64
	// forgeSt is the forger's (Config.StalledForgeInterval), its only.
	forgeSt forgeState
}

// arrival is a bytes-received count first seen at unix nanos t.
type arrival struct {
	t     int64
	bytes uint64
}

// stalledReport is what the stalled subscribers of one worker (or all of
// them) showed at the end of a run.
type stalledReport struct {
	Count int64 `json:"count"`
	// Closed shows any sign of the server closing: a close frame, reset
	// or EOF at the final read, or the watcher seeing it leave ESTABLISHED.
	Closed int64 `json:"closed"`
	// Closed1008 saw a close frame with code 1008 (policy violation, the
	// slow-consumer close); ClosedOther a close frame with another code.
	Closed1008  int64 `json:"closed1008"`
	ClosedOther int64 `json:"closedOther"`
	// Reset and EOF ended without a close frame: the server reset or shut
	// the connection (the frame may have been lost with a reset).
	Reset int64 `json:"reset"`
	EOF   int64 `json:"eof"`
	// Open is still open at the end of the final read.
	Open int64 `json:"open"`
	// CloseCodes counts close frames by code.
	CloseCodes map[string]int64 `json:"closeCodes"`
	// Unconnected is stalled sockets with no connection at the end: their
	// last re-dial (Config.StalledReconnect) failed.
	Unconnected int64 `json:"unconnected"`
	// Connections is every connection the stalled sockets made: Count plus
	// Reconnects. Reconnects is successful re-dials, ReconnectFailed the
	// others (by kind in ReconnectErrors). ClosedBeforeReconnect is
	// retired connections the server had already closed (close frame, FIN
	// or RST seen) when the harness replaced them, ClosedBeforeReconnect1008
	// those with a 1008 close frame.
	Connections               int64            `json:"connections"`
	Reconnects                int64            `json:"reconnects"`
	ReconnectFailed           int64            `json:"reconnectFailed"`
	ReconnectErrors           map[string]int64 `json:"reconnectErrors"`
	ClosedBeforeReconnect     int64            `json:"closedBeforeReconnect"`
	ClosedBeforeReconnect1008 int64            `json:"closedBeforeReconnect1008"`
	// ForgedPongs, ForgeBlocked and ForgeFailed are the forger's tallies
	// (see StalledStats).
	ForgedPongs  int64 `json:"forgedPongs"`
	ForgeBlocked int64 `json:"forgeBlocked"`
	ForgeFailed  int64 `json:"forgeFailed"`
	// Lives has one entry per connection, retired or last.
	Lives []connLife `json:"lives"`
}

// connLife is one stalled connection's span, unix nanos: its handshake,
// when the server's close first showed (0: never during the run) and
// when it ended for the harness (retired, or its final read began).
type connLife struct {
	Born   int64 `json:"born"`
	Closed int64 `json:"closed"`
	End    int64 `json:"end"`
}

func (s *stalledReport) add(o stalledReport) {
	s.Count += o.Count
	s.Closed += o.Closed
	s.Closed1008 += o.Closed1008
	s.ClosedOther += o.ClosedOther
	s.Reset += o.Reset
	s.EOF += o.EOF
	s.Open += o.Open
	s.Unconnected += o.Unconnected
	s.Connections += o.Connections
	s.Reconnects += o.Reconnects
	s.ReconnectFailed += o.ReconnectFailed
	s.ClosedBeforeReconnect += o.ClosedBeforeReconnect
	s.ClosedBeforeReconnect1008 += o.ClosedBeforeReconnect1008
	s.ForgedPongs += o.ForgedPongs
	s.ForgeBlocked += o.ForgeBlocked
	s.ForgeFailed += o.ForgeFailed
	if s.CloseCodes == nil {
		s.CloseCodes = map[string]int64{}
	}
	for k, v := range o.CloseCodes {
		s.CloseCodes[k] += v
	}
	if s.ReconnectErrors == nil {
		s.ReconnectErrors = map[string]int64{}
	}
	for k, v := range o.ReconnectErrors {
		s.ReconnectErrors[k] += v
	}
	s.Lives = append(s.Lives, o.Lives...)
}

// stalled outcomes, from the final read.
const (
	outcomeOpen = iota
	outcomeClose
	outcomeReset
	outcomeEOF
)

// dialStalled performs the WebSocket handshake on a plain TCP socket and
// returns it unread. Ending ctx aborts it.
func dialStalled(ctx context.Context, addr, path, origin string, local net.IP, timeout time.Duration) (*stalledConn, error) {
	c, err := localDialer(local, timeout).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	ok := false
	defer func() {
		if !ok {
			_ = tc.Close()
		}
	}()
	// The handshake below blocks on the socket; a deadline in the past
	// wakes it when ctx ends.
	defer context.AfterFunc(ctx, func() { _ = tc.SetDeadline(time.Unix(1, 0)) })()
	key, err := handshakeKey()
	if err != nil {
		return nil, err
	}
	if path == "" {
		path = "/"
	}
	_ = tc.SetDeadline(time.Now().Add(timeout))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\nOrigin: " + origin + "\r\n\r\n"
	if _, err := io.WriteString(tc, req); err != nil {
		return nil, err
	}
	// The 101 is all the server sends before the first event (the harness
	// settles before publishing), so a small buffer reads nothing more.
	br := bufio.NewReaderSize(tc, 512)
	status, accept := 0, ""
	for first := true; ; first = false {
		line, err := br.ReadString('\n')
		if err != nil {
			if ne, isNet := err.(net.Error); isNet && ne.Timeout() {
				return nil, errDialTimeout
			}
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if first {
			f := strings.Fields(line)
			if len(f) < 2 {
				return nil, fmt.Errorf("bench: bad status line %q", line)
			}
			status, _ = strconv.Atoi(f[1])
			continue
		}
		if line == "" {
			break
		}
		if k, v, found := strings.Cut(line, ":"); found && strings.EqualFold(strings.TrimSpace(k), "Sec-WebSocket-Accept") {
			accept = strings.TrimSpace(v)
		}
	}
	if status != 101 {
		return nil, &HandshakeError{Status: status}
	}
	if accept != wsframe.AcceptKey(key) {
		return nil, errors.New("bench: bad Sec-WebSocket-Accept")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	_ = tc.SetDeadline(time.Time{})
	ok = true
	sc := &stalledConn{addr: addr, src: local, conn: tc, br: br, born: time.Now().UnixNano()}
	if _, got, _ := tcpState(tc); got >= uint64(br.Buffered()) {
		sc.base = got - uint64(br.Buffered())
	}
	return sc, nil
}

// stalledWatchInterval is how often watchStalled looks at each socket's
// TCP state (one getsockopt each; no data is read).
const stalledWatchInterval = 200 * time.Millisecond

// watchStalled notes when each stalled socket leaves ESTABLISHED, which
// is when the server's FIN or RST reached it, without reading from it.
// conns is called at every poll, as reconnects replace connections. The
// returned stop is idempotent.
func watchStalled(conns func() []*stalledConn) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(stalledWatchInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				for _, sc := range conns() {
					sc.watch(now.UnixNano())
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// watch records one poll at now (unix nanos), unless sc was retired.
func (sc *stalledConn) watch(now int64) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if !sc.retired {
		sc.poll(now)
	}
}

// retire ends sc for a reconnect, at now (unix nanos): a last look at its
// TCP state, then a look, without waiting, at what the kernel already
// holds for it, for the server's close frame (a server that cut it has
// usually sent the frame, and its FIN only later), then a reset: the
// connection is dropped as by a client that never reads and hangs up.
// This is the only time a connection is read before the final read.
func (sc *stalledConn) retire(now int64) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.retired {
		return
	}
	sc.poll(now)
	sc.retired, sc.ended = true, now
	sc.scanHeld()
	_ = sc.conn.SetLinger(0)
	_ = sc.conn.Close()
}

// retireBufs holds scanHeld's read buffers between reconnect waves.
var retireBufs = sync.Pool{New: func() any { return new([64 << 10]byte) }}

// scanHeld reads what is already buffered for sc (in bufio and in the
// kernel), never waiting for more, and sets its outcome to outcomeClose if
// a whole close frame is there. sc.mu is held.
func (sc *stalledConn) scanHeld() {
	var fs frameScanner
	found := func() bool {
		sc.setOutcome(outcomeClose, fs.code)
		sc.closeEnd = fs.pos
		return true
	}
	if n := sc.br.Buffered(); n > 0 {
		if b, _ := sc.br.Peek(n); fs.feed(b) {
			found()
			return
		}
	}
	rc, err := sc.conn.SyscallConn()
	if err != nil {
		return
	}
	buf := retireBufs.Get().(*[64 << 10]byte)
	defer retireBufs.Put(buf)
	for {
		n := 0
		// One non-blocking read per call: returning true tells the runtime
		// not to wait for readability.
		if err := rc.Read(func(fd uintptr) bool {
			n, _ = unix.Read(int(fd), buf[:])
			return true
		}); err != nil || n <= 0 {
			return // nothing more held (EAGAIN), EOF or an error
		}
		if fs.feed(buf[:n]) && found() {
			return
		}
	}
}

// isRetired reports whether retire ran.
func (sc *stalledConn) isRetired() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.retired
}

// poll is watch's body; sc.mu is held.
func (sc *stalledConn) poll(now int64) {
	est, bytes, ok := tcpState(sc.conn)
	if !ok {
		return
	}
	if n := len(sc.arrivals); n == 0 || sc.arrivals[n-1].bytes != bytes {
		sc.arrivals = append(sc.arrivals, arrival{t: now, bytes: bytes})
	}
	if !est && sc.closedAt.Load() == 0 {
		sc.closedAt.Store(now)
	}
}

// tcpState reads TCP_INFO: whether the socket is in ESTABLISHED and how
// many bytes it has received (read by us or not).
func tcpState(c *net.TCPConn) (established bool, bytesReceived uint64, ok bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return false, 0, false
	}
	_ = rc.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			established, bytesReceived, ok = info.State == unix.BPF_TCP_ESTABLISHED, info.Bytes_received, true
		}
	})
	return established, bytesReceived, ok
}

// closeTime is when the server's close first showed: its close frame's
// last byte arriving (found from the arrivals record) or FIN/RST,
// whichever was first; 0 if neither showed during the run.
func (sc *stalledConn) closeTime() int64 {
	t := sc.closedAt.Load()
	if sc.outcome == outcomeClose {
		want := sc.base + sc.closeEnd
		for _, a := range sc.arrivals {
			if a.bytes >= want {
				if t == 0 || a.t < t {
					t = a.t
				}
				break
			}
		}
	}
	return t
}

// readStalled reads every stalled socket's last connection (those retired
// for a reconnect whose re-dial failed are skipped) until a close frame,
// EOF, a reset, or timeout from now, and summarises what it found with
// the retired connections.
func readStalled(conns, retired []*stalledConn, timeout time.Duration) stalledReport {
	if timeout <= 0 {
		timeout = DefaultStalledReadTimeout
	}
	now := time.Now()
	deadline := now.Add(timeout)
	var wg sync.WaitGroup
	for _, sc := range conns {
		if sc.isRetired() {
			continue
		}
		// A last poll, as retire takes: "during the run" lasts until the
		// connection's end for the harness.
		sc.watch(now.UnixNano())
		sc.ended = now.UnixNano()
		wg.Add(1)
		go func() { // one goroutine each, only for this bounded final read
			defer wg.Done()
			sc.finalRead(deadline)
		}()
	}
	wg.Wait()
	return summarizeStalled(conns, retired)
}

// finalRead fills sc's outcome and close code.
func (sc *stalledConn) finalRead(deadline time.Time) {
	_ = sc.conn.SetReadDeadline(deadline)
	var fs frameScanner
	buf := make([]byte, 64<<10)
	src := io.Reader(sc.br)
	for {
		n, err := src.Read(buf)
		if fs.feed(buf[:n]) {
			sc.setOutcome(outcomeClose, fs.code)
			sc.closeEnd = fs.pos
			return
		}
		if err != nil {
			switch {
			case errors.Is(err, io.EOF):
				sc.setOutcome(outcomeEOF, 0)
			case errors.Is(err, syscall.ECONNRESET):
				sc.setOutcome(outcomeReset, 0)
			case errors.Is(err, os.ErrDeadlineExceeded):
				sc.setOutcome(outcomeOpen, 0)
			default:
				sc.setOutcome(outcomeReset, 0) // any other socket error: the connection is gone
			}
			return
		}
	}
}

// Set by finalRead before readStalled's WaitGroup is released.
func (sc *stalledConn) setOutcome(o, code int) {
	sc.outcome, sc.code = o, code
}

// summarizeStalled reports on conns, each stalled socket's last connection
// (retired if its re-dial failed), and the retired connections before them.
func summarizeStalled(conns, retired []*stalledConn) stalledReport {
	r := stalledReport{Count: int64(len(conns)), CloseCodes: map[string]int64{},
		ReconnectErrors: map[string]int64{}, Lives: []connLife{}}
	for _, sc := range retired {
		t := sc.closeTime()
		if t != 0 || sc.outcome == outcomeClose {
			r.ClosedBeforeReconnect++
		}
		if sc.outcome == outcomeClose && sc.code == 1008 {
			r.ClosedBeforeReconnect1008++
		}
		r.Lives = append(r.Lives, connLife{Born: sc.born, Closed: t, End: sc.ended})
	}
	for _, sc := range conns {
		if sc.isRetired() {
			r.Unconnected++ // already counted among the retired
			continue
		}
		switch sc.outcome {
		case outcomeClose:
			r.CloseCodes[strconv.Itoa(sc.code)]++
			if sc.code == 1008 {
				r.Closed1008++
			} else {
				r.ClosedOther++
			}
		case outcomeReset:
			r.Reset++
		case outcomeEOF:
			r.EOF++
		default:
			r.Open++
		}
		t := sc.closeTime()
		r.Lives = append(r.Lives, connLife{Born: sc.born, Closed: t, End: sc.ended})
		if sc.outcome != outcomeOpen || t != 0 {
			r.Closed++
		}
	}
	return r
}

// frameScanner walks server frames skipping payloads, until a close frame
// is complete. It never buffers more than a header. A header that breaks
// RFC 6455 leaves frame boundaries unknown: the scanner stops there, and
// the connection's outcome is what its socket does next.
type frameScanner struct {
	hdr     []byte
	skip    uint64 // payload bytes left in the current frame
	inClose bool
	broken  bool   // a faulty header: nothing after it is read as frames
	payload []byte // the close frame's first bytes (the code)
	code    int
	pos     uint64 // bytes consumed so far
}

// feed consumes p and reports whether a whole close frame has been seen;
// code is then its status code (1005 if it carried none).
func (f *frameScanner) feed(p []byte) bool {
	for len(p) > 0 && !f.broken {
		if f.skip > 0 {
			n := min(f.skip, uint64(len(p)))
			if f.inClose && len(f.payload) < 2 {
				f.payload = append(f.payload, p[:min(int(n), 2-len(f.payload))]...)
			}
			p, f.skip, f.pos = p[n:], f.skip-n, f.pos+n
			if f.skip == 0 && f.inClose {
				return f.closed()
			}
			continue
		}
		f.hdr = append(f.hdr, p[0])
		p, f.pos = p[1:], f.pos+1
		// Masked frames (a server must not send them) are still skipped
		// right: only the frame structure is judged.
		h, _, err := wsframe.ParseHeader(f.hdr)
		if err == wsframe.ErrShort {
			continue
		}
		if err != nil {
			f.broken = true
			return false
		}
		f.inClose = h.Op == wsframe.OpClose
		f.hdr, f.skip = f.hdr[:0], h.Length
		if h.Length == 0 && f.inClose {
			return f.closed()
		}
	}
	return false
}

func (f *frameScanner) closed() bool {
	f.code = wsframe.CloseNoStatus
	if len(f.payload) >= 2 {
		f.code = int(binary.BigEndian.Uint16(f.payload))
	}
	return true
}
