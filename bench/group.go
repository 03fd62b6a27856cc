package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// group is one set of client connections: in this process (localGroup) or
// in a worker process (procGroup). Calls are made one at a time.
type group interface {
	connect(ctx context.Context) (connectReport, error)
	// drain waits for events deliveries per reader (see worker.drain);
	// lateAt is unix nanos.
	drain(ctx context.Context, events int64, idle time.Duration, lateAt int64) (deliveryReport, error)
	echo(ctx context.Context, d time.Duration) (echoReport, error)
	close(ctx context.Context) (closeReport, error)
	// progress may be called concurrently with the others.
	progress() (connected, received int64)
}

type localGroup struct{ w *worker }

func (g localGroup) connect(ctx context.Context) (connectReport, error) { return g.w.connect(ctx), nil }
func (g localGroup) drain(ctx context.Context, n int64, idle time.Duration, lateAt int64) (deliveryReport, error) {
	return g.w.drain(ctx, n, idle, lateAt), nil
}
func (g localGroup) echo(ctx context.Context, d time.Duration) (echoReport, error) {
	return g.w.echo(ctx, d), nil
}
func (g localGroup) close(context.Context) (closeReport, error) { return g.w.close(false), nil }
func (g localGroup) progress() (int64, int64) {
	return g.w.connected.Load(), g.w.received.Load() + g.w.roundTrips.Load()
}

// workerCmd is a coordinator→worker line.
type workerCmd struct {
	Cmd      string        `json:"cmd"` // connect, drain, echo, close
	Events   int64         `json:"events,omitempty"`
	Idle     time.Duration `json:"idle,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
	LateAt   int64         `json:"lateAt,omitempty"` // unix nanos
}

// workerMsg is a worker→coordinator line: a progress tick or a reply.
type workerMsg struct {
	Type      string          `json:"type"` // progress, reply
	Connected int64           `json:"connected,omitempty"`
	Received  int64           `json:"received,omitempty"`
	Connect   *connectReport  `json:"connect,omitempty"`
	Delivery  *deliveryReport `json:"delivery,omitempty"`
	Echo      *echoReport     `json:"echo,omitempty"`
	Close     *closeReport    `json:"close,omitempty"`
	Error     string          `json:"error,omitempty"`
}

// progressInterval is how often workers report counts.
const progressInterval = 250 * time.Millisecond

// procGroup drives one worker process over its stdin/stdout.
type procGroup struct {
	cmd     *exec.Cmd
	enc     *json.Encoder
	stdin   io.WriteCloser
	replies chan workerMsg
	readErr chan error

	connected, received atomic.Int64
}

func startProcGroup(ctx context.Context, argv []string, spec workerSpec) (*procGroup, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: starting worker: %w", err)
	}
	g := &procGroup{cmd: cmd, enc: json.NewEncoder(stdin), stdin: stdin,
		replies: make(chan workerMsg, 1), readErr: make(chan error, 1)}
	go g.read(stdout)
	if err := g.enc.Encode(spec); err != nil {
		return g, fmt.Errorf("bench: sending worker spec: %w", err)
	}
	return g, nil
}

// read owns stdout: progress updates counters, replies go to the caller.
func (g *procGroup) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20) // histogram snapshots are large lines
	for sc.Scan() {
		if line := sc.Bytes(); len(line) == 0 || line[0] != '{' {
			// Not ours (a library printing to stdout): pass it on, don't fail.
			fmt.Fprintf(os.Stderr, "bench worker: %s\n", line)
			continue
		}
		var m workerMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			g.readErr <- fmt.Errorf("bench: bad worker line: %w", err)
			return
		}
		if m.Type == "progress" {
			g.connected.Store(m.Connected)
			g.received.Store(m.Received)
			continue
		}
		g.replies <- m
	}
	err := sc.Err()
	if err == nil {
		err = errors.New("bench: worker exited")
	}
	g.readErr <- err
}

func (g *procGroup) call(ctx context.Context, c workerCmd) (workerMsg, error) {
	if err := g.enc.Encode(c); err != nil {
		return workerMsg{}, fmt.Errorf("bench: worker %s: %w", c.Cmd, err)
	}
	select {
	case m := <-g.replies:
		if m.Error != "" {
			return m, errors.New(m.Error)
		}
		return m, nil
	case err := <-g.readErr:
		return workerMsg{}, fmt.Errorf("bench: worker %s: %w", c.Cmd, err)
	case <-ctx.Done():
		return workerMsg{}, ctx.Err()
	}
}

func (g *procGroup) connect(ctx context.Context) (connectReport, error) {
	m, err := g.call(ctx, workerCmd{Cmd: "connect"})
	if err != nil || m.Connect == nil {
		return connectReport{}, orMissing(err, "connect")
	}
	return *m.Connect, nil
}

func (g *procGroup) drain(ctx context.Context, n int64, idle time.Duration, lateAt int64) (deliveryReport, error) {
	m, err := g.call(ctx, workerCmd{Cmd: "drain", Events: n, Idle: idle, LateAt: lateAt})
	if err != nil || m.Delivery == nil {
		return deliveryReport{}, orMissing(err, "drain")
	}
	return *m.Delivery, nil
}

func (g *procGroup) echo(ctx context.Context, d time.Duration) (echoReport, error) {
	m, err := g.call(ctx, workerCmd{Cmd: "echo", Duration: d})
	if err != nil || m.Echo == nil {
		return echoReport{}, orMissing(err, "echo")
	}
	return *m.Echo, nil
}

// close asks the worker to finish and waits for it to exit.
func (g *procGroup) close(ctx context.Context) (closeReport, error) {
	m, err := g.call(ctx, workerCmd{Cmd: "close"})
	_ = g.stdin.Close()
	werr := g.cmd.Wait()
	if err != nil || m.Close == nil {
		return closeReport{}, orMissing(err, "close")
	}
	if werr != nil {
		return *m.Close, fmt.Errorf("bench: worker: %w", werr)
	}
	return *m.Close, nil
}

// kill ends a worker that was not closed normally.
func (g *procGroup) kill() {
	if g.cmd.ProcessState == nil && g.cmd.Process != nil {
		_ = g.cmd.Process.Kill()
		_ = g.cmd.Wait()
	}
}

func (g *procGroup) progress() (int64, int64) { return g.connected.Load(), g.received.Load() }

func orMissing(err error, what string) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("bench: worker sent no %s report", what)
}

// WorkerMain runs this process as a worker if it was started with
// WorkerFlag as its first argument, and then exits; otherwise it returns.
// Call it first thing in any main (or TestMain) that may run with Procs > 1.
func WorkerMain() {
	if len(os.Args) < 2 || os.Args[1] != WorkerFlag {
		return
	}
	if err := RunWorker(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench worker:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// RunWorker serves one coordinator: it reads a spec and then commands as
// JSON lines from in and writes progress and replies as JSON lines to out.
// It returns when told to close, when in ends, or at the spec's timeout.
func RunWorker(in io.Reader, out io.Writer) error {
	_, _ = RaiseFileLimit()
	dec := json.NewDecoder(in)
	var spec workerSpec
	if err := dec.Decode(&spec); err != nil {
		return fmt.Errorf("reading spec: %w", err)
	}
	if spec.Timeout <= 0 {
		spec.Timeout = DefaultDuration + DefaultTimeoutSlack
	}
	ctx, cancel := context.WithTimeout(context.Background(), spec.Timeout)
	defer cancel()
	w, err := newWorker(spec)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	send := func(m workerMsg) error {
		mu.Lock()
		defer mu.Unlock()
		return enc.Encode(m)
	}
	stopTicks := make(chan struct{})
	ticksDone := make(chan struct{})
	go func() {
		defer close(ticksDone)
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = send(workerMsg{Type: "progress", Connected: w.connected.Load(), Received: w.received.Load() + w.roundTrips.Load()})
			case <-stopTicks:
				return
			}
		}
	}()
	defer func() { close(stopTicks); <-ticksDone }()

	cmds := make(chan workerCmd)
	go func() {
		defer close(cmds)
		for {
			var c workerCmd
			if dec.Decode(&c) != nil {
				return
			}
			cmds <- c
		}
	}()
	for {
		var c workerCmd
		var ok bool
		select {
		case c, ok = <-cmds:
		case <-ctx.Done():
		}
		if !ok { // coordinator gone or timed out: leave nothing open
			w.close(false)
			return ctx.Err()
		}
		m := workerMsg{Type: "reply"}
		switch c.Cmd {
		case "connect":
			r := w.connect(ctx)
			m.Connect = &r
		case "drain":
			r := w.drain(ctx, c.Events, c.Idle, c.LateAt)
			m.Delivery = &r
		case "echo":
			r := w.echo(ctx, c.Duration)
			m.Echo = &r
		case "close":
			r := w.close(true)
			m.Close = &r
			return send(m)
		default:
			m.Error = "unknown command " + c.Cmd
		}
		if err := send(m); err != nil {
			w.close(false)
			return err
		}
	}
}
