// Command wsclient is a small WebSocket client for trying the broker: it
// connects, sends each message given on the command line, and prints every
// message it receives, one per line.
//
//	wsclient -origin http://localhost ws://127.0.0.1:8080 '{"eventType":10,"message":"hi"}'
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	origin := flag.String("origin", "http://localhost", "Origin header (must match approvedSocketDomains)")
	key := flag.String("key", "", "connect as a backend with this users-api-key instead of an Origin")
	count := flag.Int("n", 0, "exit after receiving this many messages (0: run until -timeout or closed)")
	timeout := flag.Duration("timeout", 0, "exit after this long (0: no limit)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: wsclient [flags] URL [message...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 1 {
		flag.Usage()
		os.Exit(2)
	}
	h := http.Header{}
	if *key != "" {
		h.Set("users-api-key", *key)
	} else if *origin != "" {
		h.Set("Origin", *origin)
	}
	c, resp, err := websocket.DefaultDialer.Dial(flag.Arg(0), h)
	if err != nil {
		if resp != nil {
			fmt.Fprintf(os.Stderr, "wsclient: handshake refused: %s\n", resp.Status)
		} else {
			fmt.Fprintf(os.Stderr, "wsclient: %v\n", err)
		}
		os.Exit(1)
	}
	defer c.Close()
	for _, m := range flag.Args()[1:] {
		if err := c.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			fmt.Fprintf(os.Stderr, "wsclient: send: %v\n", err)
			os.Exit(1)
		}
	}
	if *timeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(*timeout))
	}
	for i := 0; *count == 0 || i < *count; i++ {
		_, b, err := c.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				fmt.Fprintf(os.Stderr, "wsclient: closed by server: %d %s\n", ce.Code, ce.Text)
				os.Exit(0)
			}
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				os.Exit(0)
			}
			fmt.Fprintf(os.Stderr, "wsclient: %v\n", err)
			os.Exit(1)
		}
		fmt.Println(string(b))
	}
}
