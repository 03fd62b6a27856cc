package interop

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/webinate/broker/broker"
)

// statusPNG, when set, is where TestStatusPage also writes its screenshot
// (docs/status.png is made with: go test ./interop -run StatusPage -status-png ../docs/status.png).
var statusPNG = flag.String("status-png", "", "also write the status page screenshot to this file")

// text returns the text of the element with the given id.
func text(t *testing.T, tab context.Context, id string) string {
	t.Helper()
	return eval[string](t, tab, fmt.Sprintf("document.getElementById(%q).textContent", id))
}

// waitText waits until the element's text satisfies ok.
func waitText(t *testing.T, tab context.Context, id, what string, ok func(string) bool) string {
	t.Helper()
	var s string
	waitFor(t, 10*time.Second, fmt.Sprintf("#%s to show %s (last %q)", id, what, s), func() bool {
		s = text(t, tab, id)
		return ok(s)
	})
	return s
}

func is(want string) func(string) bool { return func(s string) bool { return s == want } }

// TestStatusPage opens the admin status page in Chromium, enters the key,
// and watches it follow the broker live.
func TestStatusPage(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, func(c *broker.Config) { c.Shards = 4 })
	tab := newBrowser(t, 90*time.Second)
	run(t, tab, "open the status page", chromedp.Navigate(tb.adminURL+"/"))
	if s := text(t, tab, "state"); s != "not connected" {
		t.Fatalf("state before a key: %q", s)
	}

	// A wrong key is refused by the stream.
	run(t, tab, "enter a wrong key",
		chromedp.SendKeys(chromedp.CSS("#key"), "wrong"),
		chromedp.Click(chromedp.CSS("#connect")))
	waitText(t, tab, "state", "a refusal", func(s string) bool { return strings.HasPrefix(s, "refused") })

	eval[string](t, tab, `document.getElementById("key").value = ""`)
	run(t, tab, "enter the key",
		chromedp.SendKeys(chromedp.CSS("#key"), testKey),
		chromedp.Click(chromedp.CSS("#connect")))
	waitText(t, tab, "state", "live", is("live"))
	waitText(t, tab, "connections", "0", is("0"))
	if k := eval[string](t, tab, `sessionStorage.getItem("brokerStatusKey")`); k != testKey {
		t.Fatalf("sessionStorage key %q", k)
	}

	// Clients connect: the count and the shard bars follow.
	var clients []*websocket.Conn
	for range 6 {
		clients = append(clients, dial(t, tb.wsURL, approvedOrigin))
	}
	waitText(t, tab, "connections", "6", is("6"))
	bars := eval[[]string](t, tab, `[...document.querySelectorAll("#shards .bar .n")].map(e => e.textContent)`)
	sum := 0
	for _, b := range bars {
		n, _ := strconv.Atoi(b)
		sum += n
	}
	if len(bars) != 4 || sum != 6 {
		t.Fatalf("shard bars %q, want 4 summing to 6", bars)
	}
	_ = clients[0].Close()
	waitText(t, tab, "connections", "5", is("5"))

	// A refused handshake shows by reason.
	if _, resp, err := websocket.DefaultDialer.Dial(tb.wsURL, http.Header{"Origin": {"http://evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unapproved origin: %v", err)
	}
	waitFor(t, 10*time.Second, "the origin refusal in the table", func() bool {
		return eval[bool](t, tab, `[...document.querySelectorAll("#refused tr")].some(r => r.cells[0].textContent.startsWith("origin") && r.cells[1].textContent === "1")`)
	})

	// The console publishes with the key from the page; a client gets it.
	listener := dial(t, tb.wsURL, approvedOrigin)
	ev := `{"eventType":5,"username":"carol","file":"report.pdf"}`
	run(t, tab, "publish from the console",
		chromedp.SetValue(chromedp.CSS("#event"), ev),
		chromedp.Click(chromedp.CSS("#publish")))
	waitText(t, tab, "publish-result", "202", func(s string) bool { return strings.HasPrefix(s, "202") })
	if got := read(t, listener); got != ev {
		t.Fatalf("client got %s, want %s", got, ev)
	}

	// Traffic shows as rates: publish for a few seconds until the page
	// reports events/s and deliveries/s above zero.
	stop := time.Now().Add(40 * time.Second)
	start := time.Now()
	for {
		// 1 to 4 events a request, changing every 3 seconds.
		batch := make([]string, 1+int(time.Since(start)/(3*time.Second))%4)
		for i := range batch {
			batch[i] = fmt.Sprintf(`{"eventType":%d,"username":"u%d"}`, 1+i, i)
		}
		publish(t, tb, "["+strings.Join(batch, ",")+"]")
		ev, dl := text(t, tab, "events-rate"), text(t, tab, "deliveries-rate")
		// A fuller chart for the README's picture.
		want := 2
		if *statusPNG != "" {
			want = 25
		}
		if ev != "–" && ev != "0" && dl != "–" && dl != "0" && len(eval[[]any](t, tab, "samples")) >= want {
			break
		}
		if time.Now().After(stop) {
			t.Fatalf("rates never went above zero: events %q, deliveries %q", ev, dl)
		}
		// Steady traffic, not one burst: the page computes its rates
		// from samples over time.
		time.Sleep(150 * time.Millisecond)
	}

	shot, err := chromedp.Run(tab, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if n := colours(img, 50); n < 50 {
		t.Fatalf("screenshot has %d colours: blank?", n)
	}
	path := filepath.Join(t.TempDir(), "status.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%dx%d)", path, img.Bounds().Dx(), img.Bounds().Dy())
	if *statusPNG != "" {
		if err := os.WriteFile(*statusPNG, shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// colours counts the distinct colours in img, stopping at limit.
func colours(img image.Image, limit int) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
			if len(seen) >= limit {
				return len(seen)
			}
		}
	}
	return len(seen)
}
