package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/golang-jwt/jwt/v5"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/webinate/broker/internal/commalist"
)

// The presence scenario measures GET /api/online (issue #18): it holds
// Conns connections spread round robin over the nodes, each identified by
// a JWT (HS256) whose sub is one of Users usernames (connection i is user
// i mod Users, so a user's connections are on several nodes), waits until
// every node counts them all, and then asks each node's admin listener
// Calls times for the counts (GET /api/online) and Calls times for one
// user's (?username=), one call at a time. Every answer is checked
// against what the harness holds: users, connections, the first page of
// usernames, and each user's connections. It reports the time per call
// and, for each server process given (PIDs: the brokers, and NATS if
// wanted), the CPU seconds it spent during the calls less what it spends
// idle with the same connections open, per call.
//
// The connections are nbio clients like the fanout subscribers (they
// answer pings, so the servers' keepalive leaves them alone) and all live
// in this process: 10,000 fit the 20,000 open files a process may have
// here, with the servers in their own processes.

// Defaults for PresenceConfig fields left at zero.
const (
	DefaultPresenceConns = 10000
	DefaultPresenceUsers = 2000
	DefaultPresenceCalls = 50
	// DefaultPresenceSettle bounds the wait, after connecting, for every
	// node to count every connection.
	DefaultPresenceSettle = 15 * time.Second
	// DefaultPresenceIdle is the window over which the servers' idle CPU
	// (connections open, nobody asking) is measured before the calls.
	DefaultPresenceIdle    = 2 * time.Second
	DefaultPresenceTimeout = 5 * time.Minute
	// PresenceTokenTTL is the tokens' lifetime (exp): far longer than a
	// run, so no connection is told to refresh or closed for expiry.
	PresenceTokenTTL = time.Hour
	// presencePage is GET /api/online's default page of usernames.
	presencePage = 100
)

// Presence call kinds (PresencePhase.Kind).
const (
	PresenceKindOnline   = "online"   // GET /api/online
	PresenceKindUsername = "username" // GET /api/online?username=
)

// NamedPID is a server process whose CPU the presence run reads from
// /proc: Name labels it in the report (e.g. "A" or "natsd").
type NamedPID struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
}

// ParseNamedPIDs parses "A=123,B=456" or "123,456" (named by number).
func ParseNamedPIDs(s string) ([]NamedPID, error) {
	var out []NamedPID
	for _, item := range commalist.Split(s) {
		name, v, named := strings.Cut(item, "=")
		if !named {
			name, v = item, item
		}
		pid, err := strconv.Atoi(v)
		if err != nil || pid <= 0 || name == "" {
			return nil, fmt.Errorf("bench: pid %q: want NAME=PID or PID, with PID a positive number", item)
		}
		out = append(out, NamedPID{Name: name, PID: pid})
	}
	return out, nil
}

// PresenceConfig configures RunPresence.
type PresenceConfig struct {
	// Addrs are the nodes' public WebSocket host:port (loopback only);
	// the connections are spread over them round robin.
	Addrs []string
	// AdminAddrs are the nodes' admin host:port (loopback only), each
	// asked Calls times for each kind of call.
	AdminAddrs []string
	// Key is the socketApiKey for the admin API.
	Key string
	// Origin and Path are the upgrade's (zero: DefaultOrigin, DefaultPath);
	// the token is added to Path's query as token=.
	Origin, Path string
	// Secret is the HS256 secret the servers verify tokens with.
	Secret []byte
	// Conns is the connections held (zero: DefaultPresenceConns); Users
	// the distinct usernames among them (zero: DefaultPresenceUsers);
	// Calls the calls of each kind per node (zero: DefaultPresenceCalls).
	Conns, Users, Calls int
	// Sources and DialConcurrency are as in Config (zero: their defaults);
	// DialTimeout bounds one handshake (zero: DefaultDialTimeout).
	Sources, DialConcurrency int
	DialTimeout              time.Duration
	// Settle bounds the wait for every node to count every connection
	// (zero: DefaultPresenceSettle); Idle is the idle-CPU window (zero:
	// DefaultPresenceIdle; negative: none); Timeout bounds the whole run
	// (zero: DefaultPresenceTimeout).
	Settle, Idle, Timeout time.Duration
	// PIDs are the server processes whose CPU is read.
	PIDs []NamedPID
	// Progress, if set, gets a line at each step.
	Progress func(string)
}

// PresenceResult is what RunPresence found.
type PresenceResult struct {
	Conns int      `json:"conns"`
	Users int      `json:"users"`
	Nodes []string `json:"nodes"`
	// Connected and Failed count the handshakes (ConnectErrors by kind),
	// in ConnectSeconds; Disconnected is connections the servers closed
	// afterwards, before the harness did.
	Connected      int            `json:"connected"`
	Failed         int            `json:"failed"`
	ConnectErrors  map[string]int `json:"connectErrors"`
	ConnectSeconds float64        `json:"connectSeconds"`
	Disconnected   int64          `json:"disconnected"`
	// Settled is every node answering the counts the harness holds
	// within PresenceConfig.Settle, SettleSeconds after connecting.
	Settled       bool    `json:"settled"`
	SettleSeconds float64 `json:"settleSeconds"`
	// IdleSeconds is the idle-CPU window (Procs has each process's CPU in it).
	IdleSeconds float64 `json:"idleSeconds"`
	// Phases has one entry per kind of call, PresenceKindOnline first.
	Phases []PresencePhase `json:"phases"`
	Procs  []PresenceProc  `json:"procs"`
	// Errors lists the first distinct problems (failed or wrong calls,
	// unreadable /proc); never nil.
	Errors []string `json:"errors"`
}

// PresencePhase is the calls of one kind.
type PresencePhase struct {
	Kind string `json:"kind"`
	// Calls were made; Failed got no 200 answer (or an unreadable one),
	// Wrong a 200 whose counts were not the harness's, Partial a 200
	// marked "partial" (a node did not answer in time; also Wrong).
	Calls   int `json:"calls"`
	Failed  int `json:"failed"`
	Wrong   int `json:"wrong"`
	Partial int `json:"partial"`
	// Seconds is the phase's wall time; Latency each call's, from just
	// before the request to the end of its decoded answer.
	Seconds float64             `json:"seconds"`
	Latency Latency             `json:"latency"`
	Nodes   []PresenceNodeCalls `json:"nodes"`
	// CPU is each server process's CPU during the phase.
	CPU []PresenceCPU `json:"cpu"`
}

// PresenceNodeCalls is one admin address's share of a phase.
type PresenceNodeCalls struct {
	Admin   string  `json:"admin"`
	Calls   int     `json:"calls"`
	Failed  int     `json:"failed"`
	Wrong   int     `json:"wrong"`
	Latency Latency `json:"latency"`
}

// PresenceCPU is one process's CPU during a phase: Seconds in all,
// IdleSeconds what it spends idle in as long (its idle rate × the phase's
// wall time), and PerCallMs the difference per call of the phase.
type PresenceCPU struct {
	Name        string  `json:"name"`
	PID         int     `json:"pid"`
	Seconds     float64 `json:"seconds"`
	IdleSeconds float64 `json:"idleSeconds"`
	PerCallMs   float64 `json:"perCallMs"`
}

// PresenceProc is one server process over the run: its CPU during the
// idle window and its RSS at the end.
type PresenceProc struct {
	Name           string  `json:"name"`
	PID            int     `json:"pid"`
	IdleCPUSeconds float64 `json:"idleCpuSeconds"`
	RSSBytes       int64   `json:"rssBytes"`
	Error          string  `json:"error"`
}

func (c *PresenceConfig) setDefaults() {
	if c.Origin == "" {
		c.Origin = DefaultOrigin
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if c.Conns == 0 {
		c.Conns = DefaultPresenceConns
	}
	if c.Users == 0 {
		c.Users = DefaultPresenceUsers
	}
	if c.Calls == 0 {
		c.Calls = DefaultPresenceCalls
	}
	if c.Sources == 0 {
		c.Sources = DefaultSources
	}
	if c.DialConcurrency == 0 {
		c.DialConcurrency = DefaultDialConcurrency
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Settle == 0 {
		c.Settle = DefaultPresenceSettle
	}
	if c.Idle == 0 {
		c.Idle = DefaultPresenceIdle
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultPresenceTimeout
	}
}

// Validate reports an unusable configuration, naming the bad value.
func (c *PresenceConfig) Validate() error {
	if len(c.Addrs) == 0 || len(c.AdminAddrs) == 0 {
		return errors.New("bench presence: needs the nodes' public and admin addresses")
	}
	for _, a := range append(slices.Clone(c.Addrs), c.AdminAddrs...) {
		if err := CheckLoopback(a); err != nil {
			return err
		}
	}
	if c.Key == "" {
		return errors.New("bench presence: needs the API key")
	}
	if len(c.Secret) == 0 {
		return errors.New("bench presence: needs the servers' JWT secret (HS256)")
	}
	if c.Conns < 1 || c.Users < 1 || c.Calls < 1 {
		return fmt.Errorf("bench presence: connections %d, users %d, calls %d: each must be positive", c.Conns, c.Users, c.Calls)
	}
	if c.Users > c.Conns {
		return fmt.Errorf("bench presence: %d users for %d connections: a user has at least one", c.Users, c.Conns)
	}
	if c.Sources < 1 || c.Sources > 254 || c.DialConcurrency < 1 {
		return fmt.Errorf("bench presence: sources %d (1 to 254), dial concurrency %d (positive)", c.Sources, c.DialConcurrency)
	}
	if !strings.HasPrefix(c.Path, "/") {
		return fmt.Errorf("bench presence: path %q must start with /", c.Path)
	}
	return nil
}

// presenceConn is one connection's state, its session.
type presenceConn struct {
	user  int
	state atomic.Int32 // 0 dialling, 1 counted, 2 closed
	ws    *wsConn
}

// presenceRun is RunPresence's state.
type presenceRun struct {
	cfg   PresenceConfig
	res   *PresenceResult
	names []string       // usernames, in byte order (fixed width)
	live  []atomic.Int32 // each user's open connections
	conns atomic.Int64   // open connections
	// closing is set before the harness closes its connections;
	// disconnected counts the servers' closes before that.
	closing      atomic.Bool
	disconnected atomic.Int64
	http         *http.Client
	errMu        sync.Mutex
	errSeen      map[string]bool
}

// maxPresenceErrors bounds PresenceResult.Errors.
const maxPresenceErrors = 20

// RunPresence runs the presence scenario. It returns an error for an
// invalid configuration, a file limit too low for Conns, or the timeout,
// with the partial result when there is one; wrong answers are counted
// in the result, not returned as an error.
func RunPresence(ctx context.Context, cfg PresenceConfig) (*PresenceResult, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// The connections, their dials and a few files of the runtime's.
	if lim, err := RaiseFileLimit(); err == nil && lim < uint64(cfg.Conns)+64 {
		return nil, fmt.Errorf("bench presence: %d connections need more open files than this process may have (%d)", cfg.Conns, lim)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	r := &presenceRun{cfg: cfg, live: make([]atomic.Int32, cfg.Users), errSeen: map[string]bool{},
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}},
		res: &PresenceResult{Conns: cfg.Conns, Users: cfg.Users, Nodes: cfg.Addrs, ConnectErrors: map[string]int{},
			Phases: []PresencePhase{}, Procs: []PresenceProc{}, Errors: []string{}}}
	defer r.http.CloseIdleConnections()
	width := len(strconv.Itoa(cfg.Users - 1))
	r.names = make([]string, cfg.Users)
	for u := range r.names {
		r.names[u] = fmt.Sprintf("u%0*d", width, u)
	}
	err := r.exec(ctx)
	if ctx.Err() != nil && err == nil {
		err = fmt.Errorf("bench presence: timeout %v reached", cfg.Timeout)
	}
	return r.res, err
}

func (r *presenceRun) progress(format string, args ...any) {
	if r.cfg.Progress != nil {
		r.cfg.Progress(fmt.Sprintf(format, args...))
	}
}

// fail notes a problem once (up to maxPresenceErrors of them).
func (r *presenceRun) fail(msg string) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if !r.errSeen[msg] && len(r.res.Errors) < maxPresenceErrors {
		r.errSeen[msg] = true
		r.res.Errors = append(r.res.Errors, msg)
	}
}

func (r *presenceRun) exec(ctx context.Context) error {
	engine, err := newClientEngine()
	if err != nil {
		return err
	}
	defer engine.Stop()
	var proto wsConn
	proto.onText = func(*wsConn, []byte) {} // nothing is published; a notice would be ignored
	proto.onClose = func(c *wsConn) {
		pc, _ := c.Session().(*presenceConn)
		if pc != nil && pc.state.Swap(2) == 1 {
			r.live[pc.user].Add(-1)
			r.conns.Add(-1)
			if !r.closing.Load() {
				r.disconnected.Add(1)
			}
		}
	}
	conns, err := r.connect(ctx, engine, &proto)
	defer func() {
		r.closing.Store(true)
		r.res.Disconnected = r.disconnected.Load()
		for _, pc := range conns {
			_ = pc.ws.Close()
		}
	}()
	if err != nil {
		return err
	}
	r.settle(ctx)
	if ctx.Err() != nil {
		return nil
	}
	idle := r.idle(ctx)
	for _, kind := range []string{PresenceKindOnline, PresenceKindUsername} {
		if ctx.Err() != nil {
			break
		}
		r.res.Phases = append(r.res.Phases, r.phase(ctx, kind, idle))
	}
	for i := range r.res.Procs {
		p := &r.res.Procs[i]
		if s, err := readProc(p.PID); err == nil {
			p.RSSBytes = s.RSS
		} else if p.Error == "" {
			p.Error = err.Error()
		}
	}
	return nil
}

// connect dials cfg.Conns connections with bounded concurrency.
func (r *presenceRun) connect(ctx context.Context, engine *nbhttp.Engine, proto *wsConn) ([]*presenceConn, error) {
	cfg := r.cfg
	r.progress("presence: signing %d tokens, connecting %d over %d nodes", cfg.Users, cfg.Conns, len(cfg.Addrs))
	exp := time.Now().Add(PresenceTokenTTL).Unix()
	paths := make([]string, cfg.Users)
	sep := "?"
	if strings.Contains(cfg.Path, "?") {
		sep = "&"
	}
	for u, name := range r.names {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": name, "exp": exp}).SignedString(cfg.Secret)
		if err != nil {
			return nil, fmt.Errorf("bench presence: signing a token: %w", err)
		}
		paths[u] = cfg.Path + sep + "token=" + url.QueryEscape(tok)
	}
	v6 := make([]bool, len(cfg.Addrs))
	for i, a := range cfg.Addrs {
		if host, _, err := net.SplitHostPort(a); err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
				v6[i] = true
			}
		}
	}
	start := time.Now()
	var mu sync.Mutex
	var conns []*presenceConn
	next := make(chan int)
	var wg sync.WaitGroup
	for range cfg.DialConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				node := i % len(cfg.Addrs)
				pc := &presenceConn{user: i % cfg.Users}
				ws, err := dialWS(engine, proto, cfg.Addrs[node], paths[pc.user], cfg.Origin,
					sourceIP(i, cfg.Sources, v6[node]), cfg.DialTimeout, pc)
				mu.Lock()
				if err != nil {
					r.res.Failed++
					r.res.ConnectErrors[errKind(err)]++
				} else {
					pc.ws = ws
					conns = append(conns, pc)
					r.res.Connected++
					if pc.state.CompareAndSwap(0, 1) { // not closed already
						r.live[pc.user].Add(1)
						r.conns.Add(1)
					}
				}
				mu.Unlock()
			}
		}()
	}
	i := 0
feed:
	for ; i < cfg.Conns; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if left := cfg.Conns - i; left > 0 {
		r.res.Failed += left
		r.res.ConnectErrors["not attempted (timeout)"] += left
	}
	r.res.ConnectSeconds = time.Since(start).Seconds()
	r.progress("presence: %d connected, %d failed in %.1fs", r.res.Connected, r.res.Failed, r.res.ConnectSeconds)
	if r.res.Connected == 0 {
		return conns, errors.New("bench presence: no connection succeeded")
	}
	return conns, nil
}

// expected is what GET /api/online should answer now: the distinct users
// and the connections the harness holds, and the first page of usernames.
func (r *presenceRun) expected() (users, conns int, page []string) {
	for u := range r.live {
		if r.live[u].Load() > 0 {
			users++
			if len(page) < presencePage {
				page = append(page, r.names[u])
			}
		}
	}
	return users, int(r.conns.Load()), page
}

// onlineAnswer is GET /api/online's answer, both shapes.
type onlineAnswer struct {
	Users       int      `json:"users"`
	Connections int      `json:"connections"`
	Usernames   []string `json:"usernames"`
	More        bool     `json:"more"`
	Username    string   `json:"username"`
	Partial     bool     `json:"partial"`
}

// get calls GET /api/online on admin with query q and decodes the answer.
func (r *presenceRun) get(ctx context.Context, admin, q string) (onlineAnswer, error) {
	var a onlineAnswer
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/api/online"+q, nil)
	if err != nil {
		return a, err
	}
	req.Header.Set("Authorization", "Bearer "+r.cfg.Key)
	resp, err := r.http.Do(req)
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return a, fmt.Errorf("HTTP %d from %s: %s", resp.StatusCode, admin, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return a, fmt.Errorf("reading %s's answer: %w", admin, err)
	}
	return a, nil
}

// checkOnline compares an answer to GET /api/online with what the
// harness holds; "" if it matches.
func (r *presenceRun) checkOnline(admin string, a onlineAnswer) string {
	users, conns, page := r.expected()
	switch {
	case a.Partial:
		return fmt.Sprintf("%s: answer marked partial (a node did not answer in time)", admin)
	case a.Users != users || a.Connections != conns:
		return fmt.Sprintf("%s: %d users, %d connections; the harness holds %d and %d", admin, a.Users, a.Connections, users, conns)
	case !slices.Equal(a.Usernames, page) || a.More != (users > len(page)):
		return fmt.Sprintf("%s: first page of usernames (%d, more %v) is not the harness's first %d", admin, len(a.Usernames), a.More, len(page))
	}
	return ""
}

// settle polls every node until each counts what the harness holds.
func (r *presenceRun) settle(ctx context.Context) {
	start := time.Now()
	deadline := start.Add(r.cfg.Settle)
	r.progress("presence: waiting (at most %v) for every node to count them", r.cfg.Settle)
	var last string
	for ctx.Err() == nil {
		last = ""
		for _, admin := range r.cfg.AdminAddrs {
			a, err := r.get(ctx, admin, "")
			if err != nil {
				last = err.Error()
			} else {
				last = r.checkOnline(admin, a)
			}
			if last != "" {
				break
			}
		}
		if last == "" {
			r.res.Settled = true
			break
		}
		if time.Now().After(deadline) {
			break
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	r.res.SettleSeconds = time.Since(start).Seconds()
	if !r.res.Settled && last != "" {
		r.fail("not settled after " + r.cfg.Settle.String() + ": " + last)
	}
	r.progress("presence: settled %v after %.1fs", r.res.Settled, r.res.SettleSeconds)
}

// cpuNow reads each process's CPU seconds; a failed read gives 0 and
// notes the error on its PresenceProc (once) and in the errors.
func (r *presenceRun) cpuNow() []float64 {
	out := make([]float64, len(r.res.Procs))
	for i := range r.res.Procs {
		p := &r.res.Procs[i]
		s, err := readProc(p.PID)
		if err != nil {
			if p.Error == "" {
				p.Error = err.Error()
				r.fail(fmt.Sprintf("pid %d (%s): %v", p.PID, p.Name, err))
			}
			continue
		}
		out[i] = s.CPU
	}
	return out
}

// idle measures each process's CPU with the connections open and nobody
// asking, over cfg.Idle, and returns its rate (cores).
func (r *presenceRun) idle(ctx context.Context) []float64 {
	for _, p := range r.cfg.PIDs {
		r.res.Procs = append(r.res.Procs, PresenceProc{Name: p.Name, PID: p.PID})
	}
	rates := make([]float64, len(r.res.Procs))
	if r.cfg.Idle <= 0 || len(r.res.Procs) == 0 {
		return rates
	}
	r.progress("presence: idle CPU over %v", r.cfg.Idle)
	before, start := r.cpuNow(), time.Now()
	sleepCtx(ctx, r.cfg.Idle)
	after, el := r.cpuNow(), time.Since(start).Seconds()
	r.res.IdleSeconds = el
	for i := range rates {
		d := after[i] - before[i]
		r.res.Procs[i].IdleCPUSeconds = d
		if el > 0 {
			rates[i] = d / el
		}
	}
	return rates
}

// userStride spreads the ?username= calls over the users.
const userStride = 7919

// phase makes cfg.Calls calls of kind on every admin address, taking the
// nodes in turn, one call at a time.
func (r *presenceRun) phase(ctx context.Context, kind string, idleRates []float64) PresencePhase {
	admins := r.cfg.AdminAddrs
	ph := PresencePhase{Kind: kind, Nodes: make([]PresenceNodeCalls, len(admins)), CPU: []PresenceCPU{}}
	total := newHist()
	hists := make([]*hdrhistogram.Histogram, len(admins))
	for i, a := range admins {
		ph.Nodes[i].Admin = a
		hists[i] = newHist()
	}
	r.progress("presence: %d calls of %s on each of %d nodes", r.cfg.Calls, kind, len(admins))
	cpu0, start := r.cpuNow(), time.Now()
	for k := 0; k < r.cfg.Calls && ctx.Err() == nil; k++ {
		for i, admin := range admins {
			n := &ph.Nodes[i]
			q, user := "", 0
			if kind == PresenceKindUsername {
				user = ((k*len(admins) + i) * userStride) % r.cfg.Users
				q = "?username=" + url.QueryEscape(r.names[user])
			}
			t0 := time.Now()
			a, err := r.get(ctx, admin, q)
			d := time.Since(t0)
			if ctx.Err() != nil {
				break // cut short by the run's end: not a call
			}
			ph.Calls++
			n.Calls++
			_ = total.RecordValue(clampMicros(d))
			_ = hists[i].RecordValue(clampMicros(d))
			if err != nil {
				ph.Failed++
				n.Failed++
				r.fail(err.Error())
				continue
			}
			var wrong string
			if kind == PresenceKindOnline {
				wrong = r.checkOnline(admin, a)
			} else {
				want := int(r.live[user].Load())
				switch {
				case a.Partial:
					wrong = fmt.Sprintf("%s: answer for %s marked partial", admin, r.names[user])
				case a.Username != r.names[user] || a.Connections != want:
					wrong = fmt.Sprintf("%s: %q has %d connections; the harness holds %d of %q", admin, a.Username, a.Connections, want, r.names[user])
				}
			}
			if a.Partial {
				ph.Partial++
			}
			if wrong != "" {
				ph.Wrong++
				n.Wrong++
				r.fail(wrong)
			}
		}
	}
	el := time.Since(start).Seconds()
	cpu1 := r.cpuNow()
	ph.Seconds = el
	ph.Latency = summarize(total)
	for i := range ph.Nodes {
		ph.Nodes[i].Latency = summarize(hists[i])
	}
	for i, p := range r.res.Procs {
		c := PresenceCPU{Name: p.Name, PID: p.PID, Seconds: cpu1[i] - cpu0[i], IdleSeconds: idleRates[i] * el}
		if ph.Calls > 0 {
			c.PerCallMs = 1000 * (c.Seconds - c.IdleSeconds) / float64(ph.Calls)
		}
		ph.CPU = append(ph.CPU, c)
	}
	return ph
}

// OK reports whether the run met its checks: every connection made and
// kept, every node settled, every call answered right.
func (res *PresenceResult) OK() bool {
	if res.Connected != res.Conns || res.Disconnected != 0 || !res.Settled || len(res.Phases) != 2 {
		return false
	}
	for _, ph := range res.Phases {
		if ph.Failed != 0 || ph.Wrong != 0 || ph.Calls == 0 {
			return false
		}
	}
	return true
}
