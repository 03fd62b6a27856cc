package broker

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkResumeReplay measures the replay path: a client that resumes
// with ?since= receives the retained events at the rate the credit window
// and the socket allow, while 100 live subscribers keep receiving a steady
// stream. Reported: replayed events/s, and the live subscribers' worst
// delay for an event published during the replays.
//
//	go test -run '^$' -bench ResumeReplay -benchtime 20x ./broker
func BenchmarkResumeReplay(b *testing.B) {
	const retained = 20000
	ts := startServer(b, func(c *Config) { c.HistorySize = 64 << 20 })
	pad := strings.Repeat("r", 100)
	for i := 0; i < retained; i += 100 {
		evs := make([][]byte, 100)
		for j := range evs {
			evs[j] = []byte(fmt.Sprintf(`{"eventType":5,"n":%d,"file":"%s"}`, i+j, pad))
		}
		ts.publish(evs)
	}
	live := make([]*websocket.Conn, 100)
	for i := range live {
		live[i] = dial(b, ts.wsURL, testOrigin)
	}
	stop := make(chan struct{})
	worst := make(chan time.Duration, 1)
	go func() { // one live event every 10 ms, stamped
		var w time.Duration
		for {
			select {
			case <-stop:
				worst <- w
				return
			case <-time.After(10 * time.Millisecond):
			}
			sent := time.Now()
			ts.publish([][]byte{[]byte(fmt.Sprintf(`{"eventType":1,"t":%d}`, sent.UnixNano()))})
			for _, c := range live[:5] { // sample a few: they all get the same stream
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, _, err := c.ReadMessage(); err != nil {
					b.Error(err)
					return
				}
			}
			w = max(w, time.Since(sent))
		}
	}()
	for _, c := range live[5:] { // the others read and discard
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	tail := ts.events.Tail()
	b.ResetTimer()
	start := time.Now()
	replayed := 0
	for i := 0; i < b.N; i++ {
		c, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("%s?since=%d", ts.wsURL, tail-1), http.Header{"Origin": {testOrigin}})
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < retained; n++ {
			if _, _, err := c.ReadMessage(); err != nil {
				b.Fatal(err)
			}
		}
		replayed += retained
		_ = c.Close()
	}
	el := time.Since(start)
	b.StopTimer()
	close(stop)
	b.ReportMetric(float64(replayed)/el.Seconds(), "replayed_events/s")
	b.ReportMetric(float64((<-worst).Microseconds())/1000, "live_worst_ms")
}
