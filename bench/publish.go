package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// publisher sends one batch of encoded events and reports how many the
// server accepted.
type publisher interface {
	publish(ctx context.Context, events [][]byte) (int, error)
	close()
}

// apiPublisher posts to /api/events over one keep-alive connection.
type apiPublisher struct {
	url, auth string
	client    *http.Client
	body      bytes.Buffer
}

func newAPIPublisher(adminAddr, key string) *apiPublisher {
	return &apiPublisher{
		url: "http://" + adminAddr + "/api/events", auth: "Bearer " + key,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}},
	}
}

func (p *apiPublisher) publish(ctx context.Context, events [][]byte) (int, error) {
	p.body.Reset()
	if len(events) == 1 {
		p.body.Write(events[0])
	} else {
		p.body.WriteByte('[')
		for i, e := range events {
			if i > 0 {
				p.body.WriteByte(',')
			}
			p.body.Write(e)
		}
		p.body.WriteByte(']')
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(p.body.Bytes()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", p.auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusServiceUnavailable {
		return 0, &refusedError{retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"))}
	}
	if resp.StatusCode != http.StatusAccepted {
		return 0, fmt.Errorf("publish: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	var r struct {
		Accepted int `json:"accepted"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("publish: bad 202 body %q: %w", body, err)
	}
	return r.Accepted, nil
}

// refusedError is a 503: the server is saturated and published nothing.
type refusedError struct {
	retryAfter time.Duration // -1 without a usable Retry-After
}

func (e *refusedError) Error() string { return "publish: HTTP 503 (refused)" }

// parseRetryAfter reads delay-seconds (the HTTP-date form is not used by
// the servers under test and counts as absent, -1).
func parseRetryAfter(v string) time.Duration {
	n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || n < 0 {
		return -1
	}
	return time.Duration(n * float64(time.Second))
}

func (p *apiPublisher) close() { p.client.CloseIdleConnections() }

// echoPublisher broadcasts through one client sending echo events with
// "broadcast": true. It reads and discards its own copies so the server
// never sees it as a slow consumer.
type echoPublisher struct {
	ws *websocket.Conn
	wg sync.WaitGroup
}

func newEchoPublisher(addr, path, origin string, timeout time.Duration) (*echoPublisher, error) {
	d := websocket.Dialer{HandshakeTimeout: timeout}
	ws, resp, err := d.Dial("ws://"+addr+path, http.Header{"Origin": {origin}})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("publisher: %w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("publisher: %w", err)
	}
	p := &echoPublisher{ws: ws}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			if _, _, err := ws.NextReader(); err != nil {
				return
			}
		}
	}()
	return p, nil
}

func (p *echoPublisher) publish(_ context.Context, events [][]byte) (int, error) {
	_ = p.ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
	for i, e := range events {
		if err := p.ws.WriteMessage(websocket.TextMessage, e); err != nil {
			return i, fmt.Errorf("publish: %w", err)
		}
	}
	return len(events), nil
}

func (p *echoPublisher) close() {
	_ = p.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = p.ws.Close()
	p.wg.Wait()
}
