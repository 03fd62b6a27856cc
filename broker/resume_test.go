package broker

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// seqEvent is an event as an opt-in connection sees it.
type seqEvent struct {
	Seq       uint64 `json:"seq"`
	Epoch     string `json:"epoch"`
	EventType int    `json:"eventType"`
	N         int    `json:"n"`
	Error     string `json:"error"`
	Oldest    uint64 `json:"oldest"`
	Since     uint64 `json:"since"`
}

func dialQuery(t testing.TB, ts *testServer, query string) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(ts.wsURL+"?"+query, http.Header{"Origin": {testOrigin}})
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("dial ?%s: %v (%d)", query, err, code)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func readSeq(t testing.TB, c *websocket.Conn) (seqEvent, string) {
	t.Helper()
	raw := read(t, c)
	var e seqEvent
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return e, raw
}

// ?seq=1 puts "seq" and "epoch" first in every event, for that connection
// only; other connections get the published bytes unchanged.
func TestSeqFrames(t *testing.T) {
	ts := startServer(t, nil)
	plain := dial(t, ts.wsURL, testOrigin)
	opt := dialQuery(t, ts, "seq=1")
	events := []string{`{"eventType":1,"username":"a"}`, ` { "eventType" : 6 }`}
	for _, ev := range events {
		if code, _ := publish(t, ts.adminURL, testKey, ev); code != 202 {
			t.Fatal(code)
		}
	}
	epoch := ts.events.Epoch()
	for i, ev := range events {
		if got := read(t, plain); got != strings.TrimSpace(ev) && got != ev {
			t.Fatalf("plain %d: %q", i, got)
		}
		got := read(t, opt)
		want := fmt.Sprintf(`{"seq":%d,"epoch":"%s",`, i+1, epoch)
		if !strings.HasPrefix(got, want) {
			t.Fatalf("opt-in %d: %q, want prefix %q", i, got, want)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(got), &m); err != nil {
			t.Fatalf("opt-in %d not JSON: %q", i, got)
		}
	}
	// Echo broadcasts are log events too.
	send(t, plain, `{"eventType":10,"message":"hi","broadcast":true}`)
	read(t, plain)
	if e, raw := readSeq(t, opt); e.Seq != 3 || e.EventType != 10 || !strings.HasSuffix(raw, `"message":"hi","broadcast":true}`) {
		t.Fatalf("broadcast: %s", raw)
	}
}

// A client reads 50 events, disconnects while 100 more are published,
// and resumes with ?since=: it gets exactly those 100 in order, then live
// events, with publishing running throughout: no gap, no duplicate.
func TestResumeNoGapNoDuplicate(t *testing.T) {
	ts := startServer(t, nil)
	var published atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			ts.publish([][]byte{[]byte(fmt.Sprintf(`{"eventType":5,"n":%d}`, n))})
			published.Add(1)
			time.Sleep(500 * time.Microsecond) // a steady publisher throughout
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	c := dialQuery(t, ts, "seq=1")
	var last seqEvent
	for i := 0; i < 50; i++ {
		e, raw := readSeq(t, c)
		if i > 0 && (e.Seq != last.Seq+1 || e.N != last.N+1) {
			t.Fatalf("live: %s after seq %d", raw, last.Seq)
		}
		last = e
	}
	_ = c.Close()
	mark := published.Load()
	waitFor(t, 10*time.Second, "100 more published", func() bool { return published.Load() >= mark+100 })

	r := dialQuery(t, ts, fmt.Sprintf("since=%d&epoch=%s", last.Seq, last.Epoch))
	for i := 0; i < 300; i++ { // the 100+ missed, then live ones
		e, raw := readSeq(t, r)
		if e.Seq != last.Seq+1 || e.N != last.N+1 || e.Epoch != last.Epoch {
			t.Fatalf("after resume, event %d: %s follows seq %d n %d", i, raw, last.Seq, last.N)
		}
		last = e
	}
	if ts.Stats().Resumes != 1 {
		t.Fatalf("resumes %d", ts.Stats().Resumes)
	}
}

// A since older than what is retained, from another epoch, or ahead of the
// log gets the gap event first, then the live stream.
func TestResumeGaps(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.HistorySize = 64 << 10 })
	pad := strings.Repeat("z", 1000)
	for i := 0; i < 10; i++ {
		parts := make([]string, 20)
		for j := range parts {
			parts[j] = fmt.Sprintf(`{"eventType":5,"file":"%s"}`, pad)
		}
		if code, _ := publish(t, ts.adminURL, testKey, "["+strings.Join(parts, ",")+"]"); code != 202 {
			t.Fatal(code)
		}
	}
	tail, head := ts.events.Tail(), ts.events.Head()
	if tail <= 2 {
		t.Fatalf("nothing trimmed: tail %d", tail)
	}
	for _, q := range []string{
		"since=1",                        // trimmed
		"since=2&epoch=0123456789ab",     // another log
		fmt.Sprintf("since=%d", head+50), // ahead of this log
	} {
		tail, head := ts.events.Tail(), ts.events.Head()
		c := dialQuery(t, ts, q)
		e, raw := readSeq(t, c)
		if e.EventType != 0 || !strings.Contains(e.Error, "refetch state") || e.Oldest != tail || e.Seq != head-1 || e.Epoch != ts.events.Epoch() {
			t.Fatalf("?%s: first frame %s", q, raw)
		}
		if code, _ := publish(t, ts.adminURL, testKey, `{"eventType":1}`); code != 202 {
			t.Fatal(code)
		}
		if e, raw := readSeq(t, c); e.EventType != 1 || e.Seq != ts.events.Head()-1 {
			t.Fatalf("?%s: then %s", q, raw)
		}
		_ = c.Close()
	}
	// Retained: no gap.
	tail = ts.events.Tail()
	c := dialQuery(t, ts, fmt.Sprintf("since=%d", tail))
	if e, raw := readSeq(t, c); e.Seq != tail+1 || e.EventType != 5 {
		t.Fatalf("retained resume: %s", raw)
	}
	if st := ts.Stats(); st.ResumeGaps != 3 || st.Resumes != 1 {
		t.Fatalf("resumes %d gaps %d", st.Resumes, st.ResumeGaps)
	}
}

// Replay applies the connection's filter and targeting like the live
// stream.
func TestResumeRespectsFilterAndTargeting(t *testing.T) {
	m := jwtModes(t)[0]
	ts := startServer(t, func(c *Config) { c.Auth = m.cfg; c.Targeting = TargetUser })
	body := `[{"eventType":1,"username":"alice"},{"eventType":2},{"eventType":1,"username":"bob"},{"eventType":1},{"eventType":2,"username":"alice"}]`
	if code, _ := publish(t, ts.adminURL, testKey, body); code != 202 {
		t.Fatal(code)
	}
	alice, _ := dialToken(t, ts, m.sign(claims("alice", time.Hour)), "since=0&events=1")
	// alice, type 1 only: seq 1 (hers) and 4 (everyone's), not 3 (bob's).
	for _, want := range []uint64{1, 4} {
		if e, raw := readSeq(t, alice); e.Seq != want {
			t.Fatalf("alice: %s, want seq %d", raw, want)
		}
	}
	if code, _ := publish(t, ts.adminURL, testKey, `{"eventType":1,"username":"alice"}`); code != 202 {
		t.Fatal(code)
	}
	if e, raw := readSeq(t, alice); e.Seq != 6 {
		t.Fatalf("alice live: %s", raw)
	}
}

func TestResumeBadQuery(t *testing.T) {
	ts := startServer(t, nil)
	for _, q := range []string{"since=x", "since=1&since=2", "seq=maybe", "epoch=abc", "since="} {
		_, resp, err := websocket.DefaultDialer.Dial(ts.wsURL+"?"+q, http.Header{"Origin": {testOrigin}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("?%s: %v, want 400", q, err)
		}
	}
}
