package broker

import (
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// maskedFrame builds a client frame for seeds.
func maskedFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var b []byte
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, b0, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, b0, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, b0, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	key := [4]byte{9, 8, 7, 6}
	b = append(b, key[:]...)
	p := append([]byte(nil), payload...)
	maskBytes(key, 0, p)
	return append(b, p...)
}

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
		{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'},                        // unmasked
		{0x81, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, // absurd length
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
	hdr := []byte{0x81, 0x80 | 127}
	hdr = binary.BigEndian.AppendUint64(hdr, 1<<40)
	hdr = append(hdr, 1, 2, 3, 4)
	if _, err := r.c.Write(hdr); err != nil {
		t.Fatal(err)
	}
	if code := r.expectCloseCode(); code != closeTooBig {
		t.Fatalf("close %d, want 1009", code)
	}
	var _ net.Conn = r.c
}
