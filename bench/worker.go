package bench

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"slices"
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
	Addrs           []string      `json:"addrs"` // nodes, taken round robin by global index
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
	Publishers      int           `json:"publishers"`
	StalledFraction float64       `json:"stalledFraction"`
	StalledTimeout  time.Duration `json:"stalledTimeout"`
	// StalledReconnect is Config.StalledReconnect.
	StalledReconnect time.Duration `json:"stalledReconnect"`
	// StalledForgeInterval and StalledForgeWindow are Config's.
	StalledForgeInterval time.Duration `json:"stalledForgeInterval"`
	StalledForgeWindow   int           `json:"stalledForgeWindow"`
	// Compression is Config.Compression; InflateCache is set when the
	// subscribers share an inflateCache (Compression without
	// Config.NoInflateCache).
	Compression  bool `json:"compression"`
	InflateCache bool `json:"inflateCache"`
}

// nodeOf is the node index of global connection index i.
func (s *workerSpec) nodeOf(i int) int { return i % len(s.Addrs) }

type connectReport struct {
	Connected int            `json:"connected"`
	Failed    int            `json:"failed"`
	Errors    map[string]int `json:"errors"`
	// Nodes has one entry per spec.Addrs entry (Readers + Stalled =
	// Connected there).
	Nodes []nodeConnect `json:"nodes"`
}

// add counts one dial to node that ended with err, and reports whether
// it connected. The caller holds the report's lock.
func (r *connectReport) add(node int, err error) bool {
	if err != nil {
		r.Failed++
		r.Nodes[node].Failed++
		r.Errors[errKind(err)]++
		return false
	}
	r.Connected++
	r.Nodes[node].Connected++
	return true
}

type nodeConnect struct {
	Connected int `json:"connected"`
	Failed    int `json:"failed"`
	Stalled   int `json:"stalled"`
}

type deliveryReport struct {
	Received     int64                  `json:"received"`
	OutOfOrder   int64                  `json:"outOfOrder"`
	Unparsed     int64                  `json:"unparsed"`
	LastRecvNano int64                  `json:"lastRecvNano"`
	Hist         *hdrhistogram.Snapshot `json:"hist"`
	// Readers is the subscribers that read (held, not stalled).
	Readers int64 `json:"readers"`
	// ReceivedAtStop and ReceivedAtLate are Received when the drain began
	// (publishing had just stopped) and at the drain's lateAt.
	ReceivedAtStop int64          `json:"receivedAtStop"`
	ReceivedAtLate int64          `json:"receivedAtLate"`
	Stalled        stalledReport  `json:"stalled"`
	Nodes          []nodeDelivery `json:"nodes"`
	// WireBytes and PlainBytes are the subscribers' text payload bytes as
	// received and as inflated; Compressed is the subscribers that
	// negotiated permessage-deflate.
	WireBytes  int64 `json:"wireBytes"`
	PlainBytes int64 `json:"plainBytes"`
	Compressed int64 `json:"compressed"`
	// Inflations and InflateCacheHits are the compressed messages the
	// subscribers inflated and those the process's cache had inflated.
	Inflations       int64 `json:"inflations"`
	InflateCacheHits int64 `json:"inflateCacheHits"`
}

// nodeDelivery is deliveryReport's share of one node.
type nodeDelivery struct {
	Readers        int64                  `json:"readers"`
	Received       int64                  `json:"received"`
	ReceivedAtLate int64                  `json:"receivedAtLate"`
	OutOfOrder     int64                  `json:"outOfOrder"`
	Hist           *hdrhistogram.Snapshot `json:"hist"`
	Stalled        stalledReport          `json:"stalled"`
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
	id   int
	node int
	ws   *wsConn
	// lastSeq is the newest sequence number seen from each publisher.
	lastSeq []atomic.Int64
	held    atomic.Bool // kept open for the run, so a close is a disconnect
}

// nodeCounters are one node's delivery counters in a worker.
type nodeCounters struct {
	received   atomic.Int64
	outOfOrder atomic.Int64
	hist       *shardedHist
}

// worker owns the client connections of one process.
type worker struct {
	spec   workerSpec
	engine *nbhttp.Engine
	proto  wsConn // handlers shared by every connection
	hist   *shardedHist

	mu   sync.Mutex
	subs []*sub
	// stalled has each stalled socket's current connection (a reconnect
	// replaces it in place; one whose re-dial failed stays, retired);
	// retired has the connections reconnects replaced.
	stalled []*stalledConn
	retired []*stalledConn
	nodes   []nodeCounters
	// reconnects and reconnectErrors (by errKind) count re-dials.
	reconnects      int64
	reconnectFailed int64
	reconnectErrors map[string]int64

	stopWatch     func() // ends watchStalled
	stopReconnect func() // ends reconnectStalled
	stopForge     func() // ends forgePongs
	forged        forgeCounts

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
	if len(spec.Addrs) == 0 {
		return nil, errors.New("bench: worker without a target address")
	}
	spec.Publishers = max(1, spec.Publishers)
	w := &worker{spec: spec, engine: e, hist: newShardedHist(), stopWatch: func() {}, stopReconnect: func() {}, stopForge: func() {},
		reconnectErrors: map[string]int64{}}
	w.nodes = make([]nodeCounters, len(spec.Addrs))
	for i := range w.nodes {
		w.nodes[i].hist = newShardedHist()
	}
	w.proto.onText = w.onMessage
	w.proto.deflate = spec.Compression
	if spec.Compression && spec.InflateCache {
		w.proto.cache = newInflateCache(inflateCacheSets)
	}
	w.proto.onClose = func(c *wsConn) {
		if s, _ := c.Session().(*sub); s != nil && s.held.Load() && !w.closing.Load() {
			w.disconnected.Add(1)
		}
	}
	return w, nil
}

var (
	pubKey = []byte(`"pub":`)
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
		_ = c.WriteText(appendEvent(nil, 10, 0, seq+1, time.Now().UnixNano(), w.spec.Size, false))
		return
	}
	pub, _ := scanInt(data, pubKey) // absent: publisher 0
	if pub < 0 || pub >= int64(len(s.lastSeq)) {
		w.unparsed.Add(1)
		return
	}
	n := &w.nodes[s.node]
	if last := &s.lastSeq[pub]; seq < last.Load() {
		w.outOfOrder.Add(1)
		n.outOfOrder.Add(1)
	} else {
		last.Store(seq)
	}
	w.received.Add(1)
	n.received.Add(1)
	// Only the node's histogram: deliveries merges them into the total, so
	// one node costs no more than before nodes existed.
	n.hist.record(s.id, now-ts, now)
}

// connect dials spec.Count connections with bounded concurrency.
func (w *worker) connect(ctx context.Context) connectReport {
	v6 := make([]bool, len(w.spec.Addrs))
	for i, a := range w.spec.Addrs {
		if host, _, err := net.SplitHostPort(a); err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
				v6[i] = true
			}
		}
	}
	rep := connectReport{Errors: map[string]int{}, Nodes: make([]nodeConnect, len(w.spec.Addrs))}
	var mu sync.Mutex
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, w.spec.DialConcurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				g := w.spec.First + i
				node := w.spec.nodeOf(g)
				src := sourceIP(g, w.spec.Sources, v6[node])
				addr := w.spec.Addrs[node]
				if w.spec.Scenario == ScenarioFanout && isStalled(g/len(w.spec.Addrs), w.spec.StalledFraction) {
					sc, err := dialStalled(ctx, addr, w.spec.Path, w.spec.Origin, src, w.spec.DialTimeout)
					mu.Lock()
					if rep.add(node, err) {
						sc.id, sc.node = i, node
						rep.Nodes[node].Stalled++
						w.stalled = append(w.stalled, sc)
						w.connected.Add(1)
					}
					mu.Unlock()
					continue
				}
				s := &sub{id: i, node: node, lastSeq: make([]atomic.Int64, w.spec.Publishers)}
				for p := range s.lastSeq {
					s.lastSeq[p].Store(-1)
				}
				ws, err := dialWS(w.engine, &w.proto, addr, w.spec.Path, w.spec.Origin, src, w.spec.DialTimeout, s)
				mu.Lock()
				if rep.add(node, err) && (w.spec.Hold || w.spec.Scenario != ScenarioConnect) {
					s.ws = ws
					s.held.Store(true)
					w.subs = append(w.subs, s)
					w.connected.Add(1)
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
		for j := i; j < w.spec.Count; j++ {
			rep.Nodes[w.spec.nodeOf(w.spec.First+j)].Failed++
		}
	}
	w.mu.Lock()
	if len(w.stalled) > 0 {
		w.stopWatch = watchStalled(w.stalledSnapshot)
		w.stopReconnect = w.reconnectStalled(ctx, len(w.stalled))
		if w.spec.StalledForgeInterval > 0 {
			w.stopForge = forgePongs(ctx, w.stalledSnapshot, w.spec.StalledForgeInterval, w.spec.StalledForgeWindow, &w.forged)
		}
	}
	w.mu.Unlock()
	return rep
}

func (w *worker) stalledSnapshot() []*stalledConn {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*stalledConn(nil), w.stalled...)
}

// stalledReconnectJitter is how far (a fraction of the period, either
// way) each stalled socket's reconnect is moved at random: enough that
// they do not all dial in the same millisecond, little enough that they
// still come as one wave, as a reconnecting attacker's would.
const stalledReconnectJitter = 0.05

// reconnectStalled starts the reconnect waves of spec.StalledReconnect
// (none if it is zero) over the n stalled sockets: wave k re-dials every
// socket at k periods after now, each moved by up to
// stalledReconnectJitter of a period, with at most DialConcurrency
// re-dials at once. A socket still re-dialling from the last wave skips
// the wave. Ending ctx aborts re-dials; the returned stop ends the waves
// and waits for re-dials under way. Called with w.mu held.
func (w *worker) reconnectStalled(ctx context.Context, n int) (stop func()) {
	period := w.spec.StalledReconnect
	if period <= 0 || n == 0 {
		return func() {}
	}
	done := make(chan struct{})
	busy := make([]atomic.Bool, n)
	slots := make(chan int)
	var wg sync.WaitGroup
	for range min(n, max(1, w.spec.DialConcurrency)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range slots {
				w.redial(ctx, i)
				busy[i].Store(false)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(slots)
		start := time.Now()
		order := make([]int, n)
		due := make([]time.Time, n)
		for wave := 1; ; wave++ {
			base := start.Add(time.Duration(wave) * period)
			for i := range order {
				order[i] = i
				due[i] = base.Add(time.Duration((2*rand.Float64() - 1) * stalledReconnectJitter * float64(period)))
			}
			slices.SortFunc(order, func(a, b int) int { return due[a].Compare(due[b]) })
			for _, i := range order {
				if !waitUntil(ctx, done, due[i]) {
					return
				}
				if busy[i].Swap(true) {
					continue
				}
				select {
				case slots <- i:
				case <-done:
					return
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// waitUntil sleeps until t; false if done closed or ctx ended first.
func waitUntil(ctx context.Context, done <-chan struct{}, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-done:
		return false
	case <-ctx.Done():
		return false
	}
}

// redial retires stalled socket i's connection and dials a new one in its
// place, left unread like the first.
func (w *worker) redial(ctx context.Context, i int) {
	w.mu.Lock()
	old := w.stalled[i]
	w.mu.Unlock()
	if !old.isRetired() {
		old.retire(time.Now().UnixNano())
		w.mu.Lock()
		w.retired = append(w.retired, old)
		w.mu.Unlock()
	}
	sc, err := dialStalled(ctx, old.addr, w.spec.Path, w.spec.Origin, old.src, w.spec.DialTimeout)
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil:
		sc.id, sc.node = old.id, old.node
		w.stalled[i] = sc
		w.reconnects++
	case ctx.Err() == nil: // not the run's end
		w.reconnectFailed++
		w.reconnectErrors[errKind(err)]++
	}
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

// drain waits until every reading subscriber has received events
// deliveries, or until no delivery arrived for idle (but not before lateAt,
// unix nanos), or ctx ends. It notes what had arrived when it began (just
// after publishing stopped) and at lateAt, then reads the stalled sockets.
func (w *worker) drain(ctx context.Context, events int64, idle time.Duration, lateAt int64) deliveryReport {
	w.mu.Lock()
	readers := int64(len(w.subs))
	want := events * readers
	w.mu.Unlock()
	atStop := w.received.Load()
	lateTaken := false
	var atLate int64
	nodesAtLate := make([]int64, len(w.nodes))
	takeLate := func() {
		if lateTaken {
			return
		}
		lateTaken = true
		for i := range w.nodes {
			nodesAtLate[i] = w.nodes[i].received.Load()
		}
		atLate = w.received.Load()
	}
	last, lastChange := atStop, time.Now()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
wait:
	for w.received.Load() < want {
		select {
		case <-ctx.Done():
			break wait
		case now := <-t.C:
			if now.UnixNano() >= lateAt {
				takeLate()
			}
			if r := w.received.Load(); r != last {
				last, lastChange = r, now
			} else if now.Sub(lastChange) >= idle && lateTaken {
				break wait
			}
		}
	}
	// Everything arrived (or ctx ended) before lateAt: nothing more will
	// come, so what is here now is what was here then.
	takeLate()
	rep := w.deliveries()
	rep.Readers, rep.ReceivedAtStop, rep.ReceivedAtLate = readers, atStop, atLate
	// Reconnects and forged pongs go on through the readers' drain, as
	// the attack would; they stop before the final read.
	w.stopReconnect()
	w.stopForge()
	w.stopWatch()
	w.mu.Lock()
	stalled := append([]*stalledConn(nil), w.stalled...)
	retired := append([]*stalledConn(nil), w.retired...)
	reconnects, failed, errs := w.reconnects, w.reconnectFailed, maps.Clone(w.reconnectErrors)
	w.mu.Unlock()
	st := readStalled(stalled, retired, w.spec.StalledTimeout)
	st.Reconnects, st.ReconnectFailed, st.ReconnectErrors = reconnects, failed, errs
	st.Connections = st.Count + st.Reconnects
	st.ForgedPongs, st.ForgeBlocked, st.ForgeFailed = w.forged.sent.Load(), w.forged.blocked.Load(), w.forged.failed.Load()
	rep.Stalled = st
	for i := range rep.Nodes {
		rep.Nodes[i].ReceivedAtLate = nodesAtLate[i]
		var mine, mineRetired []*stalledConn
		for _, sc := range stalled {
			if sc.node == i {
				mine = append(mine, sc)
			}
		}
		for _, sc := range retired {
			if sc.node == i {
				mineRetired = append(mineRetired, sc)
			}
		}
		ns := summarizeStalled(mine, mineRetired)
		ns.Lives = nil // the total has them; a node's report needs only counts
		rep.Nodes[i].Stalled = ns
	}
	return rep
}

func (w *worker) deliveries() deliveryReport {
	rep := deliveryReport{
		Received: w.received.Load(), OutOfOrder: w.outOfOrder.Load(), Unparsed: w.unparsed.Load(),
		Nodes: make([]nodeDelivery, len(w.nodes)),
	}
	readers := make([]int64, len(w.nodes))
	w.mu.Lock()
	for _, s := range w.subs {
		readers[s.node]++
		if s.ws != nil {
			rep.WireBytes += s.ws.wire.Load()
			rep.PlainBytes += s.ws.plain.Load()
			rep.Inflations += s.ws.inflations.Load()
			rep.InflateCacheHits += s.ws.cacheHits.Load()
			if s.ws.deflate {
				rep.Compressed++
			}
		}
	}
	w.mu.Unlock()
	total := newHist()
	for i := range w.nodes {
		n := &w.nodes[i]
		h, last := n.hist.merge()
		total.Merge(h)
		rep.LastRecvNano = max(rep.LastRecvNano, last)
		rep.Nodes[i] = nodeDelivery{Readers: readers[i], Received: n.received.Load(),
			OutOfOrder: n.outOfOrder.Load(), Hist: h.Export()}
	}
	rep.Hist = total.Export()
	return rep
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
		_ = s.ws.WriteText(appendEvent(nil, 10, 0, 0, time.Now().UnixNano(), w.spec.Size, false))
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
	stopRe, stopForge := w.stopReconnect, w.stopForge
	w.stopReconnect, w.stopForge = func() {}, func() {}
	w.mu.Unlock()
	stopRe() // no re-dial may replace a connection while they are closed
	stopForge()
	w.mu.Lock()
	for _, s := range w.subs {
		_ = s.ws.Close()
	}
	w.subs = nil
	for _, sc := range w.stalled {
		_ = sc.conn.Close()
	}
	for _, sc := range w.retired {
		_ = sc.conn.Close() // closed at retire; again is harmless
	}
	w.stalled, w.retired = nil, nil
	stop := w.stopWatch
	w.stopWatch = func() {}
	w.mu.Unlock()
	stop()
	w.engine.Stop()
	if cpu {
		rep.CPUUser, rep.CPUSys = rusageCPU(syscall.RUSAGE_SELF)
	}
	return rep
}

// appendEvent appends one event of eventType (5 or 10) from publisher pub
// carrying its sequence number seq and send time ts, padded so the whole
// event is size bytes where possible. The numbers come first so scanInt
// finds them quickly.
func appendEvent(b []byte, eventType, pub int, seq, ts int64, size int, broadcast bool) []byte {
	start := len(b)
	b = append(b, `{"eventType":`...)
	b = strconv.AppendInt(b, int64(eventType), 10)
	b = append(b, `,"pub":`...)
	b = strconv.AppendInt(b, int64(pub), 10)
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

// mixSizes are the sizes of Config.Mix's events, in turn: mostly small
// status events, some lists, a few large snapshots.
var mixSizes = [...]int{100, 150, 200, 300, 450, 700, 1000, 1500, 2500, 4000}

var mixStatus = [...]string{"online", "away", "busy", "offline"}

// appendMixEvent is appendEvent for Config.Mix: an event of type 5 whose
// size is picked by seq from mixSizes, padded with records that vary like
// real data (ids, names, statuses, times from a generator seeded by seq).
func appendMixEvent(b []byte, pub int, seq, ts int64) []byte {
	start := len(b)
	size := mixSizes[uint64(seq)%uint64(len(mixSizes))]
	b = append(b, `{"eventType":5,"pub":`...)
	b = strconv.AppendInt(b, int64(pub), 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"username":"bench","users":[`...)
	x := uint64(seq)*0x9E3779B97F4A7C15 + 1
	first := true
	for len(b)-start < size-2 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"id":`...)
		b = strconv.AppendUint(b, x%100000, 10)
		b = append(b, `,"name":"user`...)
		b = strconv.AppendUint(b, x>>20%5000, 10)
		b = append(b, `","status":"`...)
		b = append(b, mixStatus[x>>40%4]...)
		b = append(b, `","lastSeen":`...)
		b = strconv.AppendInt(b, ts/1e6-int64(x>>8%86400000), 10)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// pid is cached for HarnessStats.InProcessServer.
var selfPID = os.Getpid()
