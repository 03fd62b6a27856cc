package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
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

	r := &run{cfg: cfg, res: newResult(cfg)}
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
		Target:   Target{Addr: cfg.Addr, AdminAddr: cfg.AdminAddr, Path: cfg.Path, Origin: cfg.Origin},
		Params: Params{
			Conns: cfg.Conns, Procs: cfg.Procs, Sources: cfg.Sources, DialConcurrency: cfg.DialConcurrency,
			DurationSeconds: cfg.Duration.Seconds(), Rate: cfg.Rate, Batch: cfg.Batch, Size: cfg.Size,
			Mode: cfg.Mode, Hold: cfg.Hold, PID: cfg.PID,
		},
		Start:   time.Now(),
		Connect: ConnectStats{Errors: map[string]int{}},
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
	published atomic.Int64

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
	switch r.cfg.Scenario {
	case ScenarioConnect:
		// The measured phase is the connect phase itself.
	case ScenarioIdle:
		r.phase.Store("hold")
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
	s := &r.res.Server
	s.RSSAfterBytes, s.RSSPeakBytes, s.Threads = after.RSS, after.HWM, after.Threads
	if r.res.Connect.Connected > 0 && s.RSSAfterBytes > 0 {
		s.RSSPerConnBytes = (s.RSSAfterBytes - s.RSSBeforeBytes) / int64(r.res.Connect.Connected)
	}
	if after.CPU > 0 {
		s.CPUSeconds = after.CPU - phaseCPU
		if el := time.Since(phaseStart).Seconds(); el > 0 {
			s.CPUCores = s.CPUSeconds / el
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
			Scenario: r.cfg.Scenario, Addr: r.cfg.Addr, Path: r.cfg.Path, Origin: r.cfg.Origin,
			First: first, Count: count, Sources: r.cfg.Sources,
			DialConcurrency: max(1, r.cfg.DialConcurrency/procs), DialTimeout: r.cfg.DialTimeout,
			Size: r.cfg.Size, Hold: r.cfg.Hold, Timeout: r.cfg.Timeout,
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
	r.phase.Store("connect")
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
	for _, rep := range reps {
		c.Connected += rep.Connected
		c.Failed += rep.Failed
		for k, v := range rep.Errors {
			c.Errors[k] += v
		}
	}
	if c.Seconds > 0 {
		c.PerSec = float64(c.Connected) / c.Seconds
	}
	return err
}

func (r *run) echo(ctx context.Context) error {
	r.phase.Store("echo")
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
	var pub publisher
	if r.cfg.Mode == ModeEcho {
		p, err := newEchoPublisher(r.cfg.Addr, r.cfg.Path, r.cfg.Origin, r.cfg.DialTimeout)
		if err != nil {
			return err
		}
		pub = p
	} else {
		pub = newAPIPublisher(r.cfg.AdminAddr, r.cfg.Key)
	}
	select {
	case <-time.After(r.cfg.Settle):
	case <-ctx.Done():
	}
	r.phase.Store("publish")
	f := &r.res.Fanout
	f.Subscribers = r.res.Connect.Connected
	start := time.Now()
	r.publish(ctx, pub)
	f.PublishSeconds = time.Since(start).Seconds()
	if f.PublishSeconds > 0 {
		f.PublishRate = float64(f.Published) / f.PublishSeconds
	}

	r.phase.Store("drain")
	reps := make([]deliveryReport, len(r.groups))
	err := r.eachGroup(func(i int, g group) error {
		var err error
		reps[i], err = g.drain(ctx, f.Published, r.cfg.DrainIdle)
		return err
	})
	pub.close()
	h := newHist()
	var last int64
	for _, rep := range reps {
		f.Received += rep.Received
		f.OutOfOrder += rep.OutOfOrder
		f.Unparsed += rep.Unparsed
		last = max(last, rep.LastRecvNano)
		mergeSnapshot(h, rep.Hist)
	}
	f.Expected = f.Published * int64(f.Subscribers)
	f.Lost = max(0, f.Expected-f.Received)
	if f.Expected > 0 {
		f.LossPct = 100 * float64(f.Lost) / float64(f.Expected)
	}
	if span := float64(last-start.UnixNano()) / 1e9; span > 0 {
		f.DeliveriesPerSec = float64(f.Received) / span
	}
	r.res.Latency = summarize(h)
	return err
}

// maxCatchUp bounds the events one request carries when a fixed-rate
// publisher has fallen behind.
const maxCatchUp = 1000

// publish sends events for cfg.Duration at cfg.Rate (or back to back),
// each stamped with its sequence number and send time.
func (r *run) publish(ctx context.Context, pub publisher) {
	f := &r.res.Fanout
	et := 5
	if r.cfg.Mode == ModeEcho {
		et = 10
	}
	batch := r.cfg.Batch
	if r.cfg.Mode == ModeEcho {
		batch = 1
	}
	if r.cfg.Rate > 0 {
		// Room for a catch-up; the echo publisher still sends one frame each.
		batch = maxCatchUp
	}
	bufs := make([][]byte, batch)
	start := time.Now()
	end := start.Add(r.cfg.Duration)
	var seq int64
	errCounts := map[string]int{}
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		n := int64(batch)
		if r.cfg.Rate > 0 {
			// Event k is due at start + k/rate; send what is due, at most a batch.
			due := int64(now.Sub(start).Seconds()*r.cfg.Rate) + 1 - seq
			if due <= 0 {
				next := start.Add(time.Duration(float64(seq) / r.cfg.Rate * float64(time.Second)))
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
			evs[i] = appendEvent(evs[i][:0], et, seq+int64(i), ts, r.cfg.Size, true)
		}
		acc, err := pub.publish(ctx, evs)
		seq += n
		f.Published += int64(acc)
		r.published.Add(int64(acc))
		if err != nil {
			f.PublishFailed += n - int64(acc)
			if ctx.Err() == nil {
				errCounts[err.Error()]++
			}
		}
	}
	for e, c := range errCounts {
		r.res.Errors = append(r.res.Errors, fmt.Sprintf("%s (x%d)", e, c))
	}
}

// closeGroups closes every group and collects harness CPU and disconnects.
func (r *run) closeGroups(ctx context.Context) error {
	r.phase.Store("close")
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

// startProgress reports a status line about twice a second if asked to.
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
				r.cfg.Progress(r.progressLine())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (r *run) progressLine() string {
	var conns, recv int64
	for _, g := range r.groupsSnapshot() {
		c, rc := g.progress()
		conns += c
		recv += rc
	}
	return fmt.Sprintf("%-7s %-7s %6.1fs  conns %d/%d  published %d  received %d",
		r.cfg.Scenario, r.phase.Load(), time.Since(r.res.Start).Seconds(), conns, r.cfg.Conns, r.published.Load(), recv)
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
