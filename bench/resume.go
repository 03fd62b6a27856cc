package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The resume scenario checks what clients that resume see while the
// nodes of a cluster restart under them (scripts/rolling.sh restarts
// them): every client opts in with ?seq=1 and, each time its connection
// ends, reconnects after a short backoff to a node chosen at random (a
// load balancer's choice: possibly the one that just restarted) with
// ?since=<last seq>&epoch=<its epoch>, as the browser snippet in
// docs/PROTOCOL.md does. With Churn, clients also leave on their own now
// and then and come back a little later (a phone that slept), so that
// they resume with numbers older than a node that restarted or joined
// meanwhile. One publisher
// posts numbered events ({"eventType":1,"n":N}, N going up by one per
// attempt) round robin over the admin addresses, one request at a time,
// so N's order is the cluster's order. At the end each client's events are
// compared with the confirmed ones: an event it should have had (after its
// first one) that it neither got nor was told about by a gap event is
// missing; one it got twice (or out of order) is a duplicate.
//
// Clients are plain goroutines with gorilla/websocket: this scenario is
// about correctness under restarts, for hundreds of clients, not load.

// Defaults for ResumeConfig fields left at zero.
const (
	DefaultResumeRate  = 50
	DefaultResumeDrain = 15 * time.Second
)

// ResumeConfig configures RunResume.
type ResumeConfig struct {
	// Addrs are the public WebSocket host:port of every node (loopback
	// only); clients start round robin over them and reconnect to one
	// chosen at random (a node may be down, or not started yet).
	Addrs []string
	// AdminAddrs serve POST /api/events; the publisher takes them round
	// robin and tries the next one when a node refuses or is down.
	AdminAddrs []string
	// Key is the socketApiKey; Origin the upgrade's Origin (zero:
	// DefaultOrigin).
	Key, Origin string
	// Clients is the number of resuming clients.
	Clients int
	// Duration is how long events are published.
	Duration time.Duration
	// Rate is events per second; zero means DefaultResumeRate.
	Rate float64
	// Drain bounds the wait, after publishing, for every client to have
	// the last confirmed event; zero means DefaultResumeDrain.
	Drain time.Duration
	// Churn, if positive, makes each client leave about every Churn
	// (0.5 to 1.5 times it) and stay away up to Churn/2 before resuming.
	Churn time.Duration
	// Progress, if set, gets a status line every second.
	Progress func(string)
}

// ResumeResult is what RunResume found. Counts are totals over clients.
type ResumeResult struct {
	Clients   int     `json:"clients"`
	Published int     `json:"published"` // events confirmed (202)
	Refused   int     `json:"refused"`   // publish attempts no node confirmed
	Seconds   float64 `json:"seconds"`
	// Connects counts successful handshakes; Resumes those with since=.
	Connects int `json:"connects"`
	Resumes  int `json:"resumes"`
	// Gaps counts gap events; Excused the confirmed events they covered.
	Gaps    int `json:"gaps"`
	Excused int `json:"excused"`
	// Missing: confirmed events a client should have had (after its first
	// event, up to the last confirmed one) that it did not get and no gap
	// event covered: a silent skip. ClientsMissing: clients with any.
	Missing        int `json:"missing"`
	ClientsMissing int `json:"clientsMissing"`
	// Duplicates: events a client got at or below one it already had.
	Duplicates int `json:"duplicates"`
	// UnconfirmedSeen: deliveries of events whose publish was not
	// confirmed (a request that failed after the cluster stored it).
	UnconfirmedSeen int `json:"unconfirmedSeen"`
	// NeverReceived: clients that got no event at all.
	NeverReceived int      `json:"neverReceived"`
	Errors        []string `json:"errors,omitempty"`
}

// RunResume runs the resume scenario until Duration plus the drain, or
// ctx ends.
func RunResume(ctx context.Context, cfg ResumeConfig) (*ResumeResult, error) {
	if len(cfg.Addrs) == 0 || len(cfg.AdminAddrs) == 0 || cfg.Clients < 1 || cfg.Duration <= 0 {
		return nil, errors.New("bench: resume needs addresses, admin addresses, clients >= 1 and a duration")
	}
	for _, a := range append(append([]string(nil), cfg.Addrs...), cfg.AdminAddrs...) {
		if err := CheckLoopback(a); err != nil {
			return nil, err
		}
	}
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultResumeRate
	}
	if cfg.Drain <= 0 {
		cfg.Drain = DefaultResumeDrain
	}
	if cfg.Origin == "" {
		cfg.Origin = DefaultOrigin
	}
	start := time.Now()
	cctx, stopClients := context.WithCancel(ctx)
	defer stopClients()
	clients := make([]*resumeClient, cfg.Clients)
	var wg sync.WaitGroup
	for i := range clients {
		c := &resumeClient{id: i, first: -1}
		clients[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(cctx, cfg)
		}()
	}
	pub := &resumePublisher{cfg: cfg, confirmed: map[int]bool{},
		client: &http.Client{Timeout: 10 * time.Second}}
	progress := func(phase string) {
		if cfg.Progress == nil {
			return
		}
		var connected, gaps int
		for _, c := range clients {
			c.mu.Lock()
			if c.connected {
				connected++
			}
			gaps += c.gaps
			c.mu.Unlock()
		}
		pub.mu.Lock()
		published, refused := len(pub.confirmed), pub.refused
		pub.mu.Unlock()
		cfg.Progress(fmt.Sprintf("resume %s %.0fs: published %d (refused %d), %d/%d clients connected, %d gap events",
			phase, time.Since(start).Seconds(), published, refused, connected, len(clients), gaps))
	}
	// Publish once most clients are in, so that most have a first event early.
	pollUntil(ctx, 10*time.Second, func() bool {
		n := 0
		for _, c := range clients {
			c.mu.Lock()
			if c.connected {
				n++
			}
			c.mu.Unlock()
		}
		return n == len(clients)
	})
	pctx, stopPub := context.WithTimeout(ctx, cfg.Duration)
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		pub.run(pctx)
	}()
	tick := time.NewTicker(time.Second)
	for waiting := true; waiting; {
		select {
		case <-pubDone:
			waiting = false
		case <-tick.C:
			progress("publishing")
		}
	}
	stopPub()
	last := pub.lastConfirmed()
	drained := pollUntil(ctx, cfg.Drain, func() bool {
		for _, c := range clients {
			c.mu.Lock()
			behind := c.first >= 0 && c.last < last // one that never got an event cannot be judged
			c.mu.Unlock()
			if behind {
				return false
			}
		}
		return true
	})
	tick.Stop()
	progress("done")
	stopClients()
	wg.Wait()

	res := &ResumeResult{Clients: len(clients), Seconds: time.Since(start).Seconds()}
	res.Published, res.Refused = len(pub.confirmed), pub.refused
	if !drained {
		res.Errors = append(res.Errors, fmt.Sprintf("not every client had the last confirmed event %d %v after publishing stopped", last, cfg.Drain))
	}
	for _, c := range clients {
		t := c.tally(pub.confirmed, last)
		res.Connects += c.connects
		res.Resumes += c.resumes
		res.Gaps += c.gaps
		res.Duplicates += c.dups
		res.Excused += t.excused
		res.Missing += t.missing
		res.UnconfirmedSeen += t.unconfirmed
		if t.missing > 0 {
			res.ClientsMissing++
		}
		if c.first < 0 {
			res.NeverReceived++
		}
	}
	return res, ctx.Err()
}

// pollUntil polls cond every 20 ms until it holds (true) or d passes.
func pollUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}

// resumePublisher posts numbered events, one request at a time.
type resumePublisher struct {
	cfg       ResumeConfig
	client    *http.Client
	mu        sync.Mutex
	confirmed map[int]bool
	refused   int
	max       int
}

func (p *resumePublisher) run(ctx context.Context) {
	interval := time.Duration(float64(time.Second) / p.cfg.Rate)
	t := time.NewTicker(interval)
	defer t.Stop()
	n, rr := 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok := false
		// A new number for every attempt: a request that failed may still
		// have been stored, and a retry under the same number would look
		// like a duplicate.
		for try := 0; try < len(p.cfg.AdminAddrs) && !ok && ctx.Err() == nil; try++ {
			n++
			addr := p.cfg.AdminAddrs[rr%len(p.cfg.AdminAddrs)]
			rr++
			ok = p.post(ctx, addr, n)
		}
		p.mu.Lock()
		if !ok {
			p.refused++
		}
		p.mu.Unlock()
	}
}

func (p *resumePublisher) post(ctx context.Context, addr string, n int) bool {
	body := `{"eventType":1,"n":` + strconv.Itoa(n) + `}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/events", strings.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+p.cfg.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return false
	}
	p.mu.Lock()
	p.confirmed[n] = true
	p.max = max(p.max, n)
	p.mu.Unlock()
	return true
}

func (p *resumePublisher) lastConfirmed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.max
}

// resumeClient is one resuming client.
type resumeClient struct {
	id int

	mu        sync.Mutex
	connected bool
	first     int   // first n received, -1 before
	last      int   // highest n received
	got       []int // every n received, in order of arrival
	// windows are the spans gap events covered: (last n before, first n
	// after), exclusive; a gap with no event after it covers up to +inf.
	windows  [][2]int
	openGap  bool
	lastSeq  uint64
	epoch    string
	connects int
	resumes  int
	gaps     int
	dups     int
}

// resumeFrame is what a client reads: an event with seq and epoch, or a
// gap event (eventType 0 with oldest).
type resumeFrame struct {
	Seq    uint64  `json:"seq"`
	Epoch  string  `json:"epoch"`
	N      *int    `json:"n"`
	Type   int     `json:"eventType"`
	Oldest *uint64 `json:"oldest"`
}

func (c *resumeClient) run(ctx context.Context, cfg ResumeConfig) {
	node := c.id % len(cfg.Addrs)
	backoff := minBackoff
	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	hdr := http.Header{"Origin": {cfg.Origin}}
	for ctx.Err() == nil {
		c.mu.Lock()
		q := "?seq=1"
		resuming := c.lastSeq != 0
		if resuming {
			q = fmt.Sprintf("?since=%d&epoch=%s", c.lastSeq, c.epoch)
		}
		c.mu.Unlock()
		conn, _, err := dialer.DialContext(ctx, "ws://"+cfg.Addrs[node]+"/"+q, hdr)
		node = rand.IntN(len(cfg.Addrs))
		if err != nil {
			pause(ctx, jitter(backoff))
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		backoff = minBackoff
		c.mu.Lock()
		c.connected = true
		c.connects++
		if resuming {
			c.resumes++
		}
		c.mu.Unlock()
		stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
		var left atomic.Bool
		var leave *time.Timer
		if cfg.Churn > 0 {
			leave = time.AfterFunc(cfg.Churn/2+rand.N(cfg.Churn), func() {
				left.Store(true)
				_ = conn.Close()
			})
		}
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				break
			}
			var f resumeFrame
			if json.Unmarshal(msg, &f) != nil {
				continue
			}
			c.record(f)
		}
		stop()
		if leave != nil {
			leave.Stop()
		}
		_ = conn.Close()
		c.mu.Lock()
		c.connected = false
		c.mu.Unlock()
		if left.Load() {
			pause(ctx, rand.N(cfg.Churn/2+1))
		} else {
			pause(ctx, jitter(backoff)) // the node went away: do not all come back at once
		}
	}
}

// Reconnect backoff: doubled after each failed attempt, with jitter.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

func jitter(d time.Duration) time.Duration { return d/2 + rand.N(d/2+1) }

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// record notes one frame.
func (c *resumeClient) record(f resumeFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.Type == 0 && f.Oldest != nil {
		// A gap event: events were missed; carry on from its seq.
		c.gaps++
		c.openGap = true
		c.lastSeq, c.epoch = f.Seq, f.Epoch
		return
	}
	if f.N == nil || f.Seq == 0 {
		return
	}
	c.lastSeq, c.epoch = f.Seq, f.Epoch
	n := *f.N
	switch {
	case c.first < 0:
		c.first, c.last = n, n
		c.openGap = false
	case n <= c.last:
		c.dups++
		return
	default:
		if c.openGap {
			c.windows = append(c.windows, [2]int{c.last, n})
			c.openGap = false
		}
		c.last = n
	}
	c.got = append(c.got, n)
}

type resumeTally struct{ missing, excused, unconfirmed int }

// tally compares what c got with the confirmed events up to last.
func (c *resumeClient) tally(confirmed map[int]bool, last int) resumeTally {
	c.mu.Lock()
	defer c.mu.Unlock()
	var t resumeTally
	got := make(map[int]bool, len(c.got))
	for _, n := range c.got {
		got[n] = true
		if !confirmed[n] {
			t.unconfirmed++
		}
	}
	if c.first < 0 {
		return t
	}
	windows := c.windows
	if c.openGap {
		windows = append(windows, [2]int{c.last, last + 1})
	}
	for n := c.first + 1; n <= last; n++ {
		if !confirmed[n] || got[n] {
			continue
		}
		excused := false
		for _, w := range windows {
			if n > w[0] && n < w[1] {
				excused = true
				break
			}
		}
		if excused {
			t.excused++
		} else {
			t.missing++
		}
	}
	return t
}
