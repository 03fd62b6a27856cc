package bench

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/lesismal/nbio/nbhttp"
)

// workerSpec is one client process's share of a run.
type workerSpec struct {
	Scenario        string        `json:"scenario"`
	Addr            string        `json:"addr"`
	Path            string        `json:"path"`
	Origin          string        `json:"origin"`
	First           int           `json:"first"` // global index of the first connection
	Count           int           `json:"count"`
	Sources         int           `json:"sources"`
	DialConcurrency int           `json:"dialConcurrency"`
	DialTimeout     time.Duration `json:"dialTimeout"`
	Size            int           `json:"size"`
	Hold            bool          `json:"hold"`
	Timeout         time.Duration `json:"timeout"`
}

type connectReport struct {
	Connected int            `json:"connected"`
	Failed    int            `json:"failed"`
	Errors    map[string]int `json:"errors"`
}

type deliveryReport struct {
	Received     int64                  `json:"received"`
	OutOfOrder   int64                  `json:"outOfOrder"`
	Unparsed     int64                  `json:"unparsed"`
	LastRecvNano int64                  `json:"lastRecvNano"`
	Hist         *hdrhistogram.Snapshot `json:"hist"`
}

type echoReport struct {
	RoundTrips int64                  `json:"roundTrips"`
	Hist       *hdrhistogram.Snapshot `json:"hist"`
}

type closeReport struct {
	Disconnected int64   `json:"disconnected"`
	CPUUser      float64 `json:"cpuUser"`
	CPUSys       float64 `json:"cpuSys"`
}

// sub is one client connection's state. nbio runs one connection's
// callbacks one at a time, but atomics keep reads from other goroutines
// (progress, reports) race-free.
type sub struct {
	id      int
	ws      *wsConn
	lastSeq atomic.Int64
	held    atomic.Bool // kept open for the run, so a close is a disconnect
}

// worker owns the client connections of one process.
type worker struct {
	spec   workerSpec
	engine *nbhttp.Engine
	proto  wsConn // handlers shared by every connection
	hist   *shardedHist

	mu   sync.Mutex
	subs []*sub

	connected    atomic.Int64
	received     atomic.Int64
	unparsed     atomic.Int64
	outOfOrder   atomic.Int64
	disconnected atomic.Int64
	roundTrips   atomic.Int64
	echoing      atomic.Bool
	closing      atomic.Bool
}

func newWorker(spec workerSpec) (*worker, error) {
	e, err := newClientEngine()
	if err != nil {
		return nil, err
	}
	w := &worker{spec: spec, engine: e, hist: newShardedHist()}
	w.proto.onText = w.onMessage
	w.proto.onClose = func(c *wsConn) {
		if s, _ := c.Session().(*sub); s != nil && s.held.Load() && !w.closing.Load() {
			w.disconnected.Add(1)
		}
	}
	return w, nil
}

var (
	seqKey = []byte(`"seq":`)
	tsKey  = []byte(`"ts":`)
)

// scanInt finds key in data and parses the integer after it. Events are
// small and the fields come first, so this beats decoding JSON and keeps the
// harness's CPU out of the measurement.
func scanInt(data, key []byte) (int64, bool) {
	i := bytes.Index(data, key)
	if i < 0 {
		return 0, false
	}
	i += len(key)
	for i < len(data) && data[i] == ' ' {
		i++
	}
	var n int64
	start := i
	for ; i < len(data) && data[i] >= '0' && data[i] <= '9'; i++ {
		n = n*10 + int64(data[i]-'0')
	}
	return n, i > start
}

func (w *worker) onMessage(c *wsConn, data []byte) {
	now := time.Now().UnixNano()
	s, _ := c.Session().(*sub)
	seq, ok1 := scanInt(data, seqKey)
	ts, ok2 := scanInt(data, tsKey)
	if s == nil || !ok1 || !ok2 {
		w.unparsed.Add(1)
		return
	}
	if w.spec.Scenario == ScenarioEcho {
		if !w.echoing.Load() {
			return // loop stopped; let it go quiet
		}
		w.hist.record(s.id, now-ts, now)
		w.roundTrips.Add(1)
		_ = c.WriteText(appendEvent(nil, 10, seq+1, time.Now().UnixNano(), w.spec.Size, false))
		return
	}
	if seq < s.lastSeq.Load() {
		w.outOfOrder.Add(1)
	}
	s.lastSeq.Store(seq)
	w.received.Add(1)
	w.hist.record(s.id, now-ts, now)
}

// connect dials spec.Count connections with bounded concurrency.
func (w *worker) connect(ctx context.Context) connectReport {
	v6 := false
	if host, _, err := net.SplitHostPort(w.spec.Addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			v6 = true
		}
	}
	rep := connectReport{Errors: map[string]int{}}
	var mu sync.Mutex
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, w.spec.DialConcurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				s := &sub{id: i}
				s.lastSeq.Store(-1)
				src := sourceIP(w.spec.First+i, w.spec.Sources, v6)
				ws, err := dialWS(w.engine, &w.proto, w.spec.Addr, w.spec.Path, w.spec.Origin, src, w.spec.DialTimeout, s)
				mu.Lock()
				if err != nil {
					rep.Failed++
					rep.Errors[errKind(err)]++
				} else {
					rep.Connected++
					if w.spec.Hold || w.spec.Scenario != ScenarioConnect {
						s.ws = ws
						s.held.Store(true)
						w.subs = append(w.subs, s)
						w.connected.Add(1)
					}
				}
				mu.Unlock()
				if err == nil && !s.held.Load() {
					w.connected.Add(1) // counted for progress, then released
					_ = ws.Close()
				}
			}
		}()
	}
	i := 0
	for ; i < w.spec.Count; i++ {
		select {
		case next <- i:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(next)
	wg.Wait()
	if left := w.spec.Count - i; left > 0 {
		rep.Failed += left
		rep.Errors["not attempted (timeout)"] += left
	}
	return rep
}

// errKind folds an error into a short, address-free category so reports
// stay small when thousands of dials fail the same way.
func errKind(err error) string {
	var he *HandshakeError
	if errors.As(err, &he) {
		return "HTTP " + strconv.Itoa(he.Status)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errDialTimeout) {
		return "timeout"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// drain waits until every subscriber has received events deliveries, or
// until no delivery arrived for idle, or ctx ends.
func (w *worker) drain(ctx context.Context, events int64, idle time.Duration) deliveryReport {
	w.mu.Lock()
	want := events * int64(len(w.subs))
	w.mu.Unlock()
	last, lastChange := w.received.Load(), time.Now()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for w.received.Load() < want {
		select {
		case <-ctx.Done():
			return w.deliveries()
		case now := <-t.C:
			if r := w.received.Load(); r != last {
				last, lastChange = r, now
			} else if now.Sub(lastChange) >= idle {
				return w.deliveries()
			}
		}
	}
	return w.deliveries()
}

func (w *worker) deliveries() deliveryReport {
	h, last := w.hist.merge()
	return deliveryReport{
		Received: w.received.Load(), OutOfOrder: w.outOfOrder.Load(), Unparsed: w.unparsed.Load(),
		LastRecvNano: last, Hist: h.Export(),
	}
}

// echo runs every connection as a closed loop (send, await the echo, send
// again) for d.
func (w *worker) echo(ctx context.Context, d time.Duration) echoReport {
	w.hist.reset()
	w.roundTrips.Store(0)
	w.echoing.Store(true)
	w.mu.Lock()
	subs := append([]*sub(nil), w.subs...)
	w.mu.Unlock()
	for _, s := range subs {
		_ = s.ws.WriteText(appendEvent(nil, 10, 0, time.Now().UnixNano(), w.spec.Size, false))
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	w.echoing.Store(false)
	h, _ := w.hist.merge()
	return echoReport{RoundTrips: w.roundTrips.Load(), Hist: h.Export()}
}

// close drops every connection and stops the engine. cpu adds this
// process's rusage, for worker processes.
func (w *worker) close(cpu bool) closeReport {
	rep := closeReport{Disconnected: w.disconnected.Load()}
	w.closing.Store(true)
	w.mu.Lock()
	for _, s := range w.subs {
		_ = s.ws.Close()
	}
	w.subs = nil
	w.mu.Unlock()
	w.engine.Stop()
	if cpu {
		rep.CPUUser, rep.CPUSys = rusageCPU(syscall.RUSAGE_SELF)
	}
	return rep
}

// appendEvent appends one event of eventType (5 or 10) carrying seq and ts,
// padded so the whole event is size bytes where possible. seq and ts come
// first so scanInt finds them quickly.
func appendEvent(b []byte, eventType int, seq, ts int64, size int, broadcast bool) []byte {
	start := len(b)
	b = append(b, `{"eventType":`...)
	b = strconv.AppendInt(b, int64(eventType), 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	var tail string
	if eventType == 10 {
		if broadcast {
			b = append(b, `,"broadcast":true`...)
		}
		b = append(b, `,"message":"`...)
		tail = `"}`
	} else {
		b = append(b, `,"username":"bench","file":"`...)
		tail = `"}`
	}
	for pad := size - (len(b) - start) - len(tail); pad > 0; pad-- {
		b = append(b, 'x')
	}
	return append(b, tail...)
}

// pid is cached for HarnessStats.InProcessServer.
var selfPID = os.Getpid()
