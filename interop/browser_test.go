package interop

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// wsPage is served to the browser: its own WebSocket connects to the URL in
// ?ws=, sends an echo on open and records every event in window.log.
const wsPage = `<!doctype html>
<meta charset="utf-8"><title>interop</title>
<script>
window.log = [];
const ws = new WebSocket(new URLSearchParams(location.search).get("ws"));
ws.onopen = () => {
  log.push({ev: "open"});
  ws.send(JSON.stringify({eventType: 10, message: "hello from " + location.origin}));
};
ws.onmessage = e => log.push({ev: "message", data: e.data});
ws.onerror = () => log.push({ev: "error"});
ws.onclose = e => log.push({ev: "close", code: e.code});
</script>`

// pageEvent is one entry of the page's window.log.
type pageEvent struct {
	Ev   string `json:"ev"`
	Data string `json:"data"`
	Code int    `json:"code"`
}

// pageLog reads window.log from the tab.
func pageLog(t *testing.T, tab context.Context) []pageEvent {
	t.Helper()
	s := eval[string](t, tab, "JSON.stringify(window.log || [])")
	var l []pageEvent
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		t.Fatalf("window.log %q: %v", s, err)
	}
	return l
}

// waitMessage waits until the page has received data.
func waitMessage(t *testing.T, tab context.Context, data string) {
	t.Helper()
	waitFor(t, 10*time.Second, "the page to receive "+data, func() bool {
		return slices.Contains(pageLog(t, tab), pageEvent{Ev: "message", Data: data})
	})
}

// TestBrowserWebSocket connects Chromium's own WebSocket to the broker from
// an approved and an unapproved origin. The browser sets Origin itself,
// from the page's URL, which no Go client can vouch for.
func TestBrowserWebSocket(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, nil)
	tab := newBrowser(t, 60*time.Second)

	// One page server, reached under two names: http://localhost:PORT is
	// approved by localhostPattern, http://127.0.0.1:PORT is not.
	pages := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(wsPage))
	}))
	t.Cleanup(pages.Close)
	_, port, _ := net.SplitHostPort(pages.Listener.Addr().String())
	query := "/?ws=" + url.QueryEscape(tb.wsURL)
	approved := "http://localhost:" + port

	run(t, tab, "open the approved page", chromedp.Navigate(approved+query))
	origin := eval[string](t, tab, "location.origin")
	if origin != approved {
		t.Fatalf("page origin %q, want %q", origin, approved)
	}
	// The echo comes back byte for byte.
	waitMessage(t, tab, `{"eventType":10,"message":"hello from `+approved+`"}`)

	// An echo broadcast from another client reaches the browser.
	other := dial(t, tb.wsURL, approvedOrigin)
	bc := `{"eventType":10,"message":"to everyone","broadcast":true}`
	send(t, other, bc)
	waitMessage(t, tab, bc)

	// So does an event published through the admin API.
	ev := `{"eventType":1,"username":"bob"}`
	publish(t, tb, ev)
	waitMessage(t, tab, ev)

	// Chromium offers permessage-deflate and the broker accepts it: an
	// event large enough to go deflated arrives intact, and a large
	// message the browser compresses is inflated.
	if ext := eval[string](t, tab, "ws.extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		t.Fatalf("the browser's ws.extensions is %q: permessage-deflate not negotiated", ext)
	}
	if n := tb.Stats().CompressedConnections; n != 1 {
		t.Fatalf("%d compressed connections, want the browser's", n)
	}
	big := `{"eventType":1,"username":"bob","rows":"` + strings.Repeat("compressible ", 200) + `"}`
	publish(t, tb, big)
	waitMessage(t, tab, big)
	if st := tb.Stats(); st.DeflateWireBytes*2 > st.DeflatePlainBytes {
		t.Fatalf("%d bytes on the wire for %d plain: the big event did not go deflated", st.DeflateWireBytes, st.DeflatePlainBytes)
	}
	bigEcho := `{"eventType":10,"message":"` + strings.Repeat("from the browser ", 100) + `"}`
	run(t, tab, "send a large message", chromedp.Evaluate[chromedp.Void](`ws.send(`+strconv.Quote(bigEcho)+`)`))
	waitMessage(t, tab, bigEcho)

	// The same page on an unapproved origin, in a second tab, is refused at
	// the handshake: error and close, never open.
	refusedBefore := tb.Stats().RefusedOrigin
	tab2, cancel := chromedp.NewContext(tab)
	defer cancel()
	unapproved := "http://127.0.0.1:" + port
	run(t, tab2, "open the unapproved page", chromedp.Navigate(unapproved+query))
	var l []pageEvent
	waitFor(t, 10*time.Second, "the unapproved page's socket to close", func() bool {
		l = pageLog(t, tab2)
		return slices.ContainsFunc(l, func(e pageEvent) bool { return e.Ev == "close" })
	})
	if !slices.Contains(l, pageEvent{Ev: "error"}) || slices.Contains(l, pageEvent{Ev: "open"}) {
		t.Fatalf("unapproved origin %s: page saw %+v, want error and close without open", unapproved, l)
	}
	if c := l[len(l)-1]; c.Ev != "close" || c.Code != 1006 {
		t.Fatalf("unapproved origin: last event %+v, want close 1006 (handshake refused)", c)
	}
	if got := tb.Stats().RefusedOrigin - refusedBefore; got != 1 {
		t.Fatalf("refusedOrigin went up by %d, want 1", got)
	}

	// The first tab's connection was not disturbed.
	if l := pageLog(t, tab); slices.ContainsFunc(l, func(e pageEvent) bool { return e.Ev != "open" && e.Ev != "message" }) {
		t.Fatalf("approved page saw %+v", l)
	}
}
