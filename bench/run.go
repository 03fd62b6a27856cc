package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/webinate/broker/internal/commalist"
)

// Run executes cfg's scenario and returns its report. A refused or failed
// connection is counted in Result.Connect, not returned as an error; Run
// returns an error for an invalid Config, a failed worker process or the
// hard timeout, and then still returns the partial Result when it has one.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	_, _ = RaiseFileLimit()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	r := &run{cfg: cfg, res: newResult(cfg), phaseMove: make(chan string, 8)}
	r.phase.Store("start")
	r.cpuStartUser, r.cpuStartSys = rusageCPU(syscall.RUSAGE_SELF)
	r.childStartUser, r.childStartSys = rusageCPU(syscall.RUSAGE_CHILDREN)
	err := r.exec(ctx)
	if ctx.Err() != nil && err == nil {
		err = fmt.Errorf("bench: hard timeout %v reached", cfg.Timeout)
	}
	if err != nil {
		r.res.Errors = append(r.res.Errors, err.Error())
	}
	return r.res, err
}

func newResult(cfg Config) *Result {
	return &Result{
		Scenario: cfg.Scenario,
		Label:    cfg.Label,
		Target: Target{Addr: strings.Join(cfg.Addrs, ","), Addrs: cfg.Addrs, AdminAddr: cfg.AdminAddr,
			Path: cfg.Path, Origin: cfg.Origin},
		Params: Params{
			Conns: cfg.Conns, Procs: cfg.Procs, Sources: cfg.Sources, DialConcurrency: cfg.DialConcurrency,
			DurationSeconds: cfg.Duration.Seconds(), Rate: cfg.Rate, Batch: cfg.Batch, Size: cfg.Size,
			Mode: cfg.Mode, Hold: cfg.Hold, PID: cfg.PID, Publishers: cfg.Publishers,
			StalledFraction: cfg.StalledFraction, StalledReconnectSeconds: cfg.StalledReconnect.Seconds(),
			Compression: cfg.Compression, Mix: cfg.Mix, InflateCache: cfg.Compression && !cfg.NoInflateCache,
			LateAfterSeconds:            cfg.LateAfter.Seconds(),
			StalledForgeIntervalSeconds: cfg.StalledForgeInterval.Seconds(), StalledForgeWindow: cfg.StalledForgeWindow,
			RetryAfterMaxSeconds: max(0, cfg.RetryAfterMax.Seconds()), LagBoundSeconds: cfg.LagBound.Seconds(),
		},
		Nodes:   []NodeStats{},
		Start:   time.Now(),
		Connect: ConnectStats{Errors: map[string]int{}},
		Fanout:  FanoutStats{Stalled: StalledStats{CloseCodes: map[string]int64{}, ReconnectErrors: map[string]int64{}}},
		Server:  ServerStats{PID: cfg.PID},
		Harness: HarnessStats{Procs: cfg.Procs, InProcessServer: cfg.PID == selfPID},
		Errors:  []string{},
	}
}

// run is the coordinator's state for one Run.
type run struct {
	cfg Config
	res *Result
	// groups is written by startGroups and closeGroups under groupsMu and
	// read by the progress goroutine.
	groupsMu sync.Mutex
	groups   []group

	phase     atomic.Value // string, for the progress line
	phaseMove chan string  // a phase began: print a line for it now (setPhase)
	published atomic.Int64
	refused   atomic.Int64

	cpuStartUser, cpuStartSys     float64
	childStartUser, childStartSys float64
}

func (r *run) exec(ctx context.Context) (err error) {
	stopProgress := r.startProgress()
	defer stopProgress()
	if err := r.startGroups(ctx); err != nil {
		r.closeGroups(ctx)
		return err
	}
	defer func() {
		if cerr := r.closeGroups(ctx); err == nil {
			err = cerr
		}
	}()

	before := r.sampleServer()
	r.res.Server.RSSBeforeBytes = before.RSS
	phaseStart, phaseCPU := time.Now(), before.CPU
	if err := r.connect(ctx); err != nil {
		return err
	}
	connected := r.sampleServer()
	r.res.Server.RSSConnectedBytes = connected.RSS
	peakReset := r.cfg.PID != 0 && resetPeakRSS(r.cfg.PID) == nil
	stopSampling := r.sampleRSS(connected.RSS)
	defer stopSampling() // on the early returns; idempotent
	switch r.cfg.Scenario {
	case ScenarioConnect:
		// The measured phase is the connect phase itself.
	case ScenarioIdle:
		r.setPhase("hold")
		phaseStart, phaseCPU = time.Now(), r.sampleServer().CPU
		sleepCtx(ctx, r.cfg.Duration)
		r.res.Idle.HoldSeconds = time.Since(phaseStart).Seconds()
	case ScenarioEcho:
		phaseStart, phaseCPU = time.Now(), r.sampleServer().CPU
		if err := r.echo(ctx); err != nil {
			return err
		}
	case ScenarioFanout:
		phaseStart, phaseCPU = time.Now(), r.sampleServer().CPU
		if err := r.fanout(ctx); err != nil {
			return err
		}
	}
	after := r.sampleServer()
	sampledPeak := max(stopSampling(), after.RSS)
	s := &r.res.Server
	s.RSSAfterBytes, s.RSSPeakBytes, s.Threads = after.RSS, max(after.HWM, connected.HWM), after.Threads
	if r.cfg.PID != 0 {
		// The kernel's RSS counters are updated in batches, so a sample
		// can be a little above VmHWM read later.
		s.RSSPeakBytes = max(s.RSSPeakBytes, sampledPeak)
	}
	if r.cfg.PID != 0 {
		s.RSSRunPeakBytes, s.RSSRunPeakFrom = sampledPeak, "samples"
	}
	if peakReset && after.HWM > 0 {
		// The kernel's peak since the reset: exact, where samples may
		// miss a short peak between them.
		s.RSSRunPeakBytes, s.RSSRunPeakFrom = max(sampledPeak, after.HWM), "hwm"
	}
	if s.RSSConnectedBytes > 0 && s.RSSRunPeakBytes > 0 {
		s.RSSGrowthBytes = s.RSSRunPeakBytes - s.RSSConnectedBytes
	}
	if r.res.Connect.Connected > 0 && s.RSSAfterBytes > 0 {
		s.RSSPerConnBytes = (s.RSSAfterBytes - s.RSSBeforeBytes) / int64(r.res.Connect.Connected)
	}
	if after.CPU > 0 {
		s.CPUSeconds = after.CPU - phaseCPU
		if el := time.Since(phaseStart).Seconds(); el > 0 {
			s.CPUCores = s.CPUSeconds / el
		}
		if n := r.res.Echo.RoundTrips; n > 0 {
			r.res.Echo.ServerCPUMicrosPerRoundTrip = s.CPUSeconds * 1e6 / float64(n)
		}
		if n := r.res.Fanout.Received; n > 0 {
			r.res.Fanout.ServerCPUMicrosPerDelivery = s.CPUSeconds * 1e6 / float64(n)
		}
	}
	return nil
}

// sampleServer reads /proc for cfg.PID; failures are noted once, not fatal.
func (r *run) sampleServer() procSample {
	if r.cfg.PID == 0 {
		return procSample{}
	}
	s, err := readProc(r.cfg.PID)
	if err != nil && r.res.Server.Error == "" {
		r.res.Server.Error = err.Error()
	}
	return s
}

// rssSampleInterval is how often the server's RSS is sampled during the
// measured phase (RSSRunPeakBytes when the kernel's peak cannot be reset).
const rssSampleInterval = 100 * time.Millisecond

// sampleRSS samples the server's RSS every rssSampleInterval until the
// returned stop, which returns the largest sample (at least first).
func (r *run) sampleRSS(first int64) (stop func() int64) {
	if r.cfg.PID == 0 {
		return func() int64 { return 0 }
	}
	done := make(chan struct{})
	peak := make(chan int64, 1)
	go func() {
		top := first
		t := time.NewTicker(rssSampleInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				peak <- top
				return
			case <-t.C:
				if s, err := readProc(r.cfg.PID); err == nil {
					top = max(top, s.RSS)
				}
			}
		}
	}()
	var once sync.Once
	var top int64
	return func() int64 {
		once.Do(func() { close(done); top = <-peak })
		return top
	}
}

// startGroups splits the connections over cfg.Procs groups.
func (r *run) startGroups(ctx context.Context) error {
	n, procs := r.cfg.Conns, r.cfg.Procs
	first := 0
	for i := range procs {
		count := n / procs
		if i < n%procs {
			count++
		}
		spec := workerSpec{
			Scenario: r.cfg.Scenario, Addrs: r.cfg.Addrs, Path: r.cfg.Path, Origin: r.cfg.Origin,
			First: first, Count: count, Sources: r.cfg.Sources,
			DialConcurrency: max(1, r.cfg.DialConcurrency/procs), DialTimeout: r.cfg.DialTimeout,
			Size: r.cfg.Size, Hold: r.cfg.Hold, Timeout: r.cfg.Timeout,
			Publishers: r.cfg.Publishers, StalledFraction: r.cfg.StalledFraction,
			StalledTimeout: r.cfg.StalledReadTimeout, StalledReconnect: r.cfg.StalledReconnect,
			StalledForgeInterval: r.cfg.StalledForgeInterval, StalledForgeWindow: r.cfg.StalledForgeWindow,
			Compression: r.cfg.Compression, InflateCache: r.cfg.Compression && !r.cfg.NoInflateCache,
		}
		first += count
		if procs == 1 {
			w, err := newWorker(spec)
			if err != nil {
				return err
			}
			r.addGroup(localGroup{w})
			continue
		}
		g, err := startProcGroup(ctx, r.cfg.WorkerCommand, spec)
		if g != nil {
			r.addGroup(g)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// eachGroup runs f on every group concurrently and joins the errors.
func (r *run) eachGroup(f func(i int, g group) error) error {
	errs := make([]error, len(r.groups))
	var wg sync.WaitGroup
	for i, g := range r.groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i, g)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *run) connect(ctx context.Context) error {
	r.setPhase("connecting")
	start := time.Now()
	reps := make([]connectReport, len(r.groups))
	err := r.eachGroup(func(i int, g group) error {
		var err error
		reps[i], err = g.connect(ctx)
		return err
	})
	c := &r.res.Connect
	c.Seconds = time.Since(start).Seconds()
	c.Attempted = r.cfg.Conns
	r.res.Nodes = make([]NodeStats, len(r.cfg.Addrs))
	for i, a := range r.cfg.Addrs {
		r.res.Nodes[i].Addr = a
	}
	for _, rep := range reps {
		c.Connected += rep.Connected
		c.Failed += rep.Failed
		for k, v := range rep.Errors {
			c.Errors[k] += v
		}
		for i, n := range rep.Nodes {
			if i < len(r.res.Nodes) {
				ns := &r.res.Nodes[i]
				ns.Connected += n.Connected
				ns.Failed += n.Failed
				ns.Stalled += n.Stalled
				ns.Readers = ns.Connected - ns.Stalled
			}
		}
	}
	if c.Seconds > 0 {
		c.PerSec = float64(c.Connected) / c.Seconds
	}
	return err
}

func (r *run) echo(ctx context.Context) error {
	r.setPhase("echoing")
	reps := make([]echoReport, len(r.groups))
	start := time.Now()
	err := r.eachGroup(func(i int, g group) error {
		var err error
		reps[i], err = g.echo(ctx, r.cfg.Duration)
		return err
	})
	e := &r.res.Echo
	e.Clients = r.res.Connect.Connected
	e.Seconds = time.Since(start).Seconds()
	h := newHist()
	for _, rep := range reps {
		e.RoundTrips += rep.RoundTrips
		mergeSnapshot(h, rep.Hist)
	}
	if e.Seconds > 0 {
		e.RoundTripsSec = float64(e.RoundTrips) / e.Seconds
	}
	r.res.Latency = summarize(h)
	return err
}

func (r *run) fanout(ctx context.Context) error {
	pubs := make([]publisher, r.cfg.Publishers)
	defer func() {
		for _, p := range pubs {
			if p != nil {
				p.close()
			}
		}
	}()
	admins := commalist.Split(r.cfg.AdminAddr)
	for i := range pubs {
		if r.cfg.Mode == ModeEcho {
			p, err := newEchoPublisher(r.cfg.Addrs[i%len(r.cfg.Addrs)], r.cfg.Path, r.cfg.Origin, r.cfg.DialTimeout)
			if err != nil {
				return err
			}
			pubs[i] = p
		} else {
			pubs[i] = newAPIPublisher(admins[i%len(admins)], r.cfg.Key)
		}
	}
	select {
	case <-time.After(r.cfg.Settle):
	case <-ctx.Done():
	}
	r.setPhase("publishing")
	f := &r.res.Fanout
	f.Subscribers = r.res.Connect.Connected
	f.Publishers = r.cfg.Publishers
	start := time.Now()
	r.publish(ctx, pubs)
	stop := time.Now()
	f.PublishSeconds = stop.Sub(start).Seconds()
	if f.PublishSeconds > 0 {
		f.PublishRate = float64(f.Published) / f.PublishSeconds
	}

	r.setPhase("draining")
	lateAt := stop.Add(r.cfg.LateAfter).UnixNano()
	reps := make([]deliveryReport, len(r.groups))
	err := r.eachGroup(func(i int, g group) error {
		var err error
		reps[i], err = g.drain(ctx, f.Published, r.cfg.DrainIdle, lateAt)
		return err
	})
	h := newHist()
	nodeHists := make([]*hdrhistogram.Histogram, len(r.res.Nodes))
	for i := range nodeHists {
		nodeHists[i] = newHist()
	}
	var last, atStop, atLate int64
	var readers int64
	var st stalledReport
	for _, rep := range reps {
		f.Received += rep.Received
		f.WireBytes += rep.WireBytes
		f.PlainBytes += rep.PlainBytes
		f.Inflations += rep.Inflations
		f.InflateCacheHits += rep.InflateCacheHits
		f.CompressedReaders += int(rep.Compressed)
		f.OutOfOrder += rep.OutOfOrder
		f.Unparsed += rep.Unparsed
		readers += rep.Readers
		atStop += rep.ReceivedAtStop
		atLate += rep.ReceivedAtLate
		last = max(last, rep.LastRecvNano)
		mergeSnapshot(h, rep.Hist)
		st.add(rep.Stalled)
		for i, n := range rep.Nodes {
			if i >= len(r.res.Nodes) {
				continue
			}
			ns := &r.res.Nodes[i]
			ns.Received += n.Received
			ns.OutOfOrder += n.OutOfOrder
			ns.UndeliveredAfter -= n.ReceivedAtLate // expected added below
			ns.StalledClosed += n.Stalled.Closed
			mergeSnapshot(nodeHists[i], n.Hist)
		}
	}
	f.Readers = int(readers)
	f.StalledSubscribers = int(st.Count)
	f.Expected = f.Published * readers
	f.Lost = max(0, f.Expected-f.Received)
	if f.Expected > 0 {
		f.LossPct = 100 * float64(f.Lost) / float64(f.Expected)
	}
	u := &f.UndeliveredAfter
	u.Seconds = r.cfg.LateAfter.Seconds()
	u.Count = max(0, f.Expected-atLate)
	if f.Expected > 0 {
		u.Fraction = float64(u.Count) / float64(f.Expected)
	}
	f.ReceivedAfterStop = f.Received - atStop
	if f.Received > 0 {
		f.ReceivedAfterStopPct = 100 * float64(f.ReceivedAfterStop) / float64(f.Received)
	}
	f.Stalled = r.stalledStats(st, start)
	if span := float64(last-start.UnixNano()) / 1e9; span > 0 {
		f.DeliveriesPerSec = float64(f.Received) / span
	}
	r.res.Latency = summarize(h)
	for i := range r.res.Nodes {
		ns := &r.res.Nodes[i]
		ns.Expected = f.Published * int64(ns.Readers)
		ns.Lost = max(0, ns.Expected-ns.Received)
		if ns.Expected > 0 {
			ns.LossPct = 100 * float64(ns.Lost) / float64(ns.Expected)
		}
		ns.UndeliveredAfter = max(0, ns.Expected+ns.UndeliveredAfter)
		ns.Latency = summarize(nodeHists[i])
	}
	return err
}

// stalledStats turns the workers' stalled reports into the result's
// section. Close times are counted from each connection's start: the first
// publish, or its handshake if that came later (a reconnect's).
func (r *run) stalledStats(st stalledReport, start time.Time) StalledStats {
	s := StalledStats{
		Count: st.Count, Closed: st.Closed, Closed1008: st.Closed1008, ClosedOther: st.ClosedOther,
		Reset: st.Reset, EOF: st.EOF, Open: st.Open, CloseCodes: st.CloseCodes,
		LagBoundSeconds: r.cfg.LagBound.Seconds(), ReconnectSeconds: r.cfg.StalledReconnect.Seconds(),
		Connections: st.Connections, Reconnects: st.Reconnects, ReconnectFailed: st.ReconnectFailed,
		ReconnectErrors: st.ReconnectErrors, ClosedBeforeReconnect: st.ClosedBeforeReconnect,
		ClosedBeforeReconnect1008: st.ClosedBeforeReconnect1008,
		Unconnected:               st.Unconnected,
		ForgeIntervalSeconds:      r.cfg.StalledForgeInterval.Seconds(),
		ForgedPongs:               st.ForgedPongs, ForgeBlocked: st.ForgeBlocked, ForgeFailed: st.ForgeFailed,
	}
	if s.CloseCodes == nil {
		s.CloseCodes = map[string]int64{}
	}
	if s.ReconnectErrors == nil {
		s.ReconnectErrors = map[string]int64{}
	}
	bound := r.cfg.LagBound.Seconds()
	secs := make([]float64, 0, len(st.Lives))
	for _, l := range st.Lives {
		ref := max(l.Born, start.UnixNano())
		within := false
		if l.Closed != 0 {
			d := float64(l.Closed-ref) / 1e9
			secs = append(secs, d)
			within = bound > 0 && d <= bound
		}
		if within {
			s.ClosedWithinBound++
		}
		if bound > 0 && (within || float64(l.End-ref)/1e9 >= bound) {
			s.BoundEligible++
		}
	}
	s.ClosedDuringRun = int64(len(secs))
	if len(secs) > 0 {
		slices.Sort(secs)
		s.CloseSecondsP50 = secs[len(secs)/2]
		s.CloseSecondsMax = secs[len(secs)-1]
	}
	return s
}

// maxCatchUp bounds the events one request carries when a fixed-rate
// publisher has fallen behind.
const maxCatchUp = 1000

// pubStats is one publisher's tally.
type pubStats struct {
	published, failed, refused, refusedRequests, requests int64
	errs                                                  map[string]int
	// latency is each request's duration in µs (newHist), owned by the
	// publisher's goroutine until publish merges it.
	latency *hdrhistogram.Histogram
}

// publish runs every publisher for cfg.Duration and adds up their tallies.
func (r *run) publish(ctx context.Context, pubs []publisher) {
	stats := make([]pubStats, len(pubs))
	start := time.Now()
	var wg sync.WaitGroup
	for i, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[i] = r.publishOne(ctx, i, p, start)
		}()
	}
	wg.Wait()
	f := &r.res.Fanout
	errCounts := map[string]int{}
	lat := newHist()
	for _, st := range stats {
		lat.Merge(st.latency)
		f.PublishRequests += st.requests
		f.Published += st.published
		f.PublishFailed += st.failed
		f.Refused += st.refused
		f.RefusedRequests += st.refusedRequests
		for e, c := range st.errs {
			errCounts[e] += c
		}
	}
	keys := make([]string, 0, len(errCounts))
	for e := range errCounts {
		keys = append(keys, e)
	}
	slices.Sort(keys)
	for _, e := range keys {
		r.res.Errors = append(r.res.Errors, fmt.Sprintf("%s (x%d)", e, errCounts[e]))
	}
	f.PublishLatency = summarize(lat)
}

// publishOne sends events as publisher id until start+cfg.Duration, at its
// share of cfg.Rate (or back to back), each stamped with id, its own
// sequence number and the send time. A 503 is the server refusing, not
// failing: the events are counted as refused (and never re-sent, so a
// fixed offered rate stays fixed), and the publisher pauses for
// Retry-After capped at cfg.RetryAfterMax. Every request's duration, from
// just before it is sent to its response (or failure), goes into the
// tally's latency histogram: a publisher held by the server shows there
// even when the events are eventually accepted.
func (r *run) publishOne(ctx context.Context, id int, pub publisher, start time.Time) pubStats {
	st := pubStats{errs: map[string]int{}, latency: newHist()}
	et := 5
	if r.cfg.Mode == ModeEcho {
		et = 10
	}
	batch := r.cfg.Batch
	if r.cfg.Mode == ModeEcho {
		batch = 1
	}
	rate := r.cfg.Rate / float64(r.cfg.Publishers)
	if rate > 0 {
		// Room for a catch-up; the echo publisher still sends one frame each.
		batch = maxCatchUp
		// Stagger the publishers so their events interleave evenly.
		start = start.Add(time.Duration(float64(id) / r.cfg.Rate * float64(time.Second)))
	}
	bufs := make([][]byte, batch)
	end := start.Add(r.cfg.Duration)
	if rate > 0 {
		end = end.Add(-time.Duration(float64(id) / r.cfg.Rate * float64(time.Second)))
	}
	var seq int64
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		n := int64(batch)
		if rate > 0 {
			// Event k is due at start + k/rate; send what is due, at most a batch.
			due := int64(now.Sub(start).Seconds()*rate) + 1 - seq
			if due <= 0 {
				next := start.Add(time.Duration(float64(seq) / rate * float64(time.Second)))
				sleepCtx(ctx, min(time.Until(next), time.Until(end)))
				continue
			}
			// Behind schedule (the server is slow to accept): send everything
			// due in one request so the offered rate holds, up to maxCatchUp.
			n = min(due, maxCatchUp)
		}
		ts := time.Now().UnixNano()
		evs := bufs[:n]
		for i := range evs {
			if r.cfg.Mix {
				evs[i] = appendMixEvent(evs[i][:0], id, seq+int64(i), ts)
			} else {
				evs[i] = appendEvent(evs[i][:0], et, id, seq+int64(i), ts, r.cfg.Size, true)
			}
		}
		sent := time.Now()
		acc, err := pub.publish(ctx, evs)
		if err == nil || ctx.Err() == nil { // not a request cut short by the run's end
			st.requests++
			_ = st.latency.RecordValue(clampMicros(time.Since(sent)))
		}
		seq += n
		st.published += int64(acc)
		r.published.Add(int64(acc))
		var refused *refusedError
		switch {
		case errors.As(err, &refused):
			st.refused += n - int64(acc)
			st.refusedRequests++
			r.refused.Add(n - int64(acc))
			wait := r.cfg.RetryAfterMax
			if refused.retryAfter >= 0 && refused.retryAfter < wait {
				wait = refused.retryAfter
			}
			sleepCtx(ctx, min(wait, time.Until(end)))
		case err != nil:
			st.failed += n - int64(acc)
			if ctx.Err() == nil {
				st.errs[err.Error()]++
			}
		}
	}
	return st
}

// closeGroups closes every group and collects harness CPU and disconnects.
func (r *run) closeGroups(ctx context.Context) error {
	r.setPhase("closing")
	groups := r.groupsSnapshot()
	reps := make([]closeReport, len(groups))
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	err := r.eachGroup(func(i int, g group) error {
		var err error
		reps[i], err = g.close(cctx)
		if pg, ok := g.(*procGroup); ok {
			pg.kill()
		}
		return err
	})
	for _, rep := range reps {
		r.res.Connect.Disconnected += rep.Disconnected
	}
	r.groupsMu.Lock()
	r.groups = nil
	r.groupsMu.Unlock()
	if r.cfg.Scenario == ScenarioIdle {
		r.res.Idle.Dropped = r.res.Connect.Disconnected
		r.res.Idle.Held = int64(r.res.Connect.Connected) - r.res.Idle.Dropped
	}
	u, s := rusageCPU(syscall.RUSAGE_SELF)
	cu, cs := rusageCPU(syscall.RUSAGE_CHILDREN)
	h := &r.res.Harness
	h.CPUUserSeconds = u - r.cpuStartUser + cu - r.childStartUser
	h.CPUSysSeconds = s - r.cpuStartSys + cs - r.childStartSys
	h.CPUSeconds = h.CPUUserSeconds + h.CPUSysSeconds
	r.res.WallSeconds = time.Since(r.res.Start).Seconds()
	if r.res.WallSeconds > 0 {
		h.CPUCores = h.CPUSeconds / r.res.WallSeconds
	}
	return err
}

// setPhase records the phase the run is in and has the progress
// goroutine report it at once, so that every phase shows in the progress
// lines, however short (a drain that ends between two ticks).
func (r *run) setPhase(p string) {
	r.phase.Store(p)
	select {
	case r.phaseMove <- p:
	default: // the progress goroutine is behind, or progress is off
	}
}

// startProgress reports a status line about twice a second, and when a
// phase begins, if asked to.
func (r *run) startProgress() (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.cfg.Progress(r.progressLine(r.phase.Load().(string)))
			case p := <-r.phaseMove:
				r.cfg.Progress(r.progressLine(p))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (r *run) progressLine(phase string) string {
	var conns, recv int64
	for _, g := range r.groupsSnapshot() {
		c, rc := g.progress()
		conns += c
		recv += rc
	}
	line := fmt.Sprintf("%-7s %-10s %6.1fs  conns %d/%d  published %d  received %d",
		r.cfg.Scenario, phase, time.Since(r.res.Start).Seconds(), conns, r.cfg.Conns, r.published.Load(), recv)
	if n := r.refused.Load(); n > 0 {
		line += fmt.Sprintf("  refused %d", n)
	}
	return line
}

func (r *run) groupsSnapshot() []group {
	r.groupsMu.Lock()
	defer r.groupsMu.Unlock()
	return append([]group(nil), r.groups...)
}

func (r *run) addGroup(g group) {
	r.groupsMu.Lock()
	r.groups = append(r.groups, g)
	r.groupsMu.Unlock()
}

func mergeSnapshot(h *hdrhistogram.Histogram, s *hdrhistogram.Snapshot) {
	if s != nil {
		h.Merge(hdrhistogram.Import(s))
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
