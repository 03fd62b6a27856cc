package broker

import (
	"net"
	"testing"
	"time"

	"github.com/webinate/broker/wsframe"
)

// maskedFrame builds a client frame for seeds.
func maskedFrame(fin bool, op byte, payload []byte) []byte { return rawFrame(fin, op, payload, true) }

// FuzzFrames sends arbitrary bytes, split in two writes, to a live broker
// after a real handshake, then checks that the broker still serves a
// well-behaved client. Seeds cover every frame rule; `go test` runs them.
func FuzzFrames(f *testing.F) {
	echo := []byte(`{"eventType":10,"message":"x"}`)
	seeds := [][]byte{
		maskedFrame(true, opText, echo),
		maskedFrame(true, opText, []byte(`{"eventType":10,"message":"b","broadcast":true}`)),
		maskedFrame(true, opBinary, []byte{1, 2}),
		maskedFrame(false, opText, []byte(`{"eventType":`)),
		append(maskedFrame(false, opText, []byte(`{"eventType":`)), maskedFrame(true, opContinuation, []byte(`10,"message":"y"}`))...),
		append(maskedFrame(false, opText, []byte(`{`)), maskedFrame(true, opPing, []byte("p"))...),
		maskedFrame(true, opClose, []byte{0x03, 0xE8}),
		maskedFrame(true, opClose, []byte{0x03}),
		maskedFrame(true, opPing, make([]byte, 126)),
		maskedFrame(true, opText, []byte("\xff\xfe")),
		maskedFrame(true, opText, []byte(`{"eventType":9}`)),
		{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'},                                    // unmasked
		{0x81, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4}, // absurd length
		{0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4},                      // length's top bit set
		{0x81, 0xFE, 0, 5, 1, 2, 3, 4, 'h', 'e', 'l', 'l', 'o'},                  // length not in its shortest form
		maskedFrame(true, opText|0x40, echo),                                     // RSV1, not negotiated
		{0x8F, 0x80, 0, 0, 0, 0},
		{},
	}
	for _, s := range seeds {
		f.Add(s, uint8(len(s)/2))
	}
	ts := startServer(f, func(c *Config) {
		c.MaxMessageSize = 4096
		c.CloseTimeout = 50 * time.Millisecond
	})
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		r := dialRaw(t, ts.Addr())
		cut := min(int(split), len(data))
		_, _ = r.c.Write(data[:cut])
		_, _ = r.c.Write(data[cut:])
		// Drain whatever the broker answers until it closes or goes quiet.
		_ = r.c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		buf := make([]byte, 4096)
		for {
			if _, err := r.c.Read(buf); err != nil {
				break
			}
		}
		_ = r.c.Close()

		// The broker must still serve a well-behaved client.
		ok := dialRaw(t, ts.Addr())
		ok.writeFrame(true, opText, echo, true)
		for {
			_, op, p := ok.readFrame()
			if op == opText && string(p) == string(echo) {
				break
			}
			// A broadcast from the fuzz input may arrive first.
		}
		_ = ok.c.Close()
	})
}

// A frame that announces a huge payload is refused from its header alone,
// without the broker buffering anything.
func TestHugeLengthRefusedFromHeader(t *testing.T) {
	ts := startServer(t, nil)
	r := dialRaw(t, ts.Addr())
	hdr := wsframe.AppendHeader(nil, wsframe.Header{Fin: true, Op: opText, Masked: true, Key: [4]byte{1, 2, 3, 4}, Length: 1 << 40})
	if _, err := r.c.Write(hdr); err != nil {
		t.Fatal(err)
	}
	if code := r.expectCloseCode(); code != closeTooBig {
		t.Fatalf("close %d, want 1009", code)
	}
	var _ net.Conn = r.c
}
