package wsframe

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// headerCase is one header and what parsing it under rules gives. The
// table serves the tests, the fuzzer's seeds and the benchmarks.
type headerCase struct {
	name  string
	rules Rules
	in    []byte // the header, then payload bytes for the valid ones
	want  Header // with an error: the fields decoded before it
	n     int    // header size; 0 with an error
	err   error
}

var key = [4]byte{0x12, 0x34, 0x56, 0x78}

// withKey appends the test key to a header's first bytes, then pad bytes.
func withKey(b []byte, pad int) []byte {
	return append(append(b, key[:]...), make([]byte, pad)...)
}

var headerCases = []headerCase{
	// Valid: the frames a broker reads (client text, credit pong, long
	// messages, fragments) and the ones its clients read.
	{"client-text", FromClient, withKey([]byte{0x81, 0x80 | 5}, 5),
		Header{Fin: true, Op: OpText, Masked: true, Key: key, Length: 5}, 6, nil},
	{"client-pong", FromClient, withKey([]byte{0x8A, 0x80 | 25}, 25),
		Header{Fin: true, Op: OpPong, Masked: true, Key: key, Length: 25}, 6, nil},
	{"client-text-16bit", FromClient, withKey([]byte{0x81, 0x80 | 126, 0x00, 126}, 126),
		Header{Fin: true, Op: OpText, Masked: true, Key: key, Length: 126}, 8, nil},
	{"client-text-64bit", FromClient, withKey([]byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0}, 1<<16),
		Header{Fin: true, Op: OpText, Masked: true, Key: key, Length: 1 << 16}, 14, nil},
	{"client-fragment", FromClient, withKey([]byte{0x01, 0x80 | 3}, 3),
		Header{Op: OpText, Masked: true, Key: key, Length: 3}, 6, nil},
	{"client-continuation", FromClient, withKey([]byte{0x80, 0x80}, 0),
		Header{Fin: true, Op: OpContinuation, Masked: true, Key: key}, 6, nil},
	{"client-close-max", FromClient, withKey([]byte{0x88, 0x80 | 125}, 125),
		Header{Fin: true, Op: OpClose, Masked: true, Key: key, Length: 125}, 6, nil},
	{"client-rsv1-negotiated", Rules{Masked: true, RSV: RSV1}, withKey([]byte{0xC1, 0x80 | 2}, 2),
		Header{Fin: true, RSV: RSV1, Op: OpText, Masked: true, Key: key, Length: 2}, 6, nil},
	{"server-text", FromServer, []byte{0x81, 5, 'h', 'e', 'l', 'l', 'o'},
		Header{Fin: true, Op: OpText, Length: 5}, 2, nil},
	{"server-ping", FromServer, []byte{0x89, 0},
		Header{Fin: true, Op: OpPing}, 2, nil},
	{"server-text-64bit", FromServer, append([]byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}, make([]byte, 1<<16)...),
		Header{Fin: true, Op: OpText, Length: 1 << 16}, 10, nil},
	{"any-rsv-any-mask", Rules{RSV: anyRSV}, withKey([]byte{0xF2, 0x80}, 0),
		Header{Fin: true, RSV: anyRSV, Op: OpBinary, Masked: true, Key: key}, 6, nil},

	// Incomplete: every place a header can be cut.
	{"short-empty", FromClient, nil, Header{}, 0, ErrShort},
	{"short-one-byte", FromClient, []byte{0x81}, Header{}, 0, ErrShort},
	{"short-16bit-length", FromClient, []byte{0x81, 0x80 | 126, 0},
		Header{Fin: true, Op: OpText, Masked: true}, 0, ErrShort},
	{"short-64bit-length", FromClient, []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0},
		Header{Fin: true, Op: OpText, Masked: true}, 0, ErrShort},
	{"short-key", FromClient, []byte{0x81, 0x80 | 5, 1, 2, 3},
		Header{Fin: true, Op: OpText, Masked: true, Length: 5}, 0, ErrShort},

	// Faults, each as soon as its bytes are in, and their order.
	{"reserved-bit", FromClient, []byte{0xC1, 0x80 | 5},
		Header{Fin: true, RSV: RSV1, Op: OpText, Masked: true}, 0, ErrReservedBits},
	{"reserved-bit-other-than-negotiated", Rules{Masked: true, RSV: RSV1}, []byte{0xA1, 0x80},
		Header{Fin: true, RSV: RSV2, Op: OpText, Masked: true}, 0, ErrReservedBits},
	{"reserved-bit-before-mask", FromClient, []byte{0x91, 5},
		Header{Fin: true, RSV: RSV3, Op: OpText}, 0, ErrReservedBits},
	{"unmasked-client", FromClient, []byte{0x81, 5, 'h', 'e', 'l', 'l', 'o'},
		Header{Fin: true, Op: OpText}, 0, ErrUnmasked},
	{"unmasked-before-opcode", FromClient, []byte{0x83, 0},
		Header{Fin: true, Op: 0x3}, 0, ErrUnmasked},
	{"masked-server", FromServer, withKey([]byte{0x81, 0x80}, 0),
		Header{Fin: true, Op: OpText, Masked: true}, 0, ErrMasked},
	{"reserved-data-opcode", FromClient, []byte{0x83, 0x80},
		Header{Fin: true, Op: 0x3, Masked: true}, 0, ErrReservedOpcode},
	{"reserved-control-opcode", FromClient, []byte{0x8B, 0x80},
		Header{Fin: true, Op: 0xB, Masked: true}, 0, ErrReservedOpcode},
	{"fragmented-ping", FromClient, []byte{0x09, 0x80},
		Header{Op: OpPing, Masked: true}, 0, ErrFragmentedControl},
	{"long-ping", FromClient, []byte{0x89, 0x80 | 126},
		Header{Fin: true, Op: OpPing, Masked: true}, 0, ErrControlTooLong},
	{"non-minimal-16bit", FromClient, []byte{0x81, 0x80 | 126, 0, 125},
		Header{Fin: true, Op: OpText, Masked: true, Length: 125}, 0, ErrNonMinimalLength},
	{"non-minimal-64bit", FromClient, []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF},
		Header{Fin: true, Op: OpText, Masked: true, Length: 0xFFFF}, 0, ErrNonMinimalLength},
	{"length-top-bit", FromClient, []byte{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1},
		Header{Fin: true, Op: OpText, Masked: true, Length: 1<<63 | 1}, 0, ErrLengthOverflow},
}

func TestParseHeader(t *testing.T) {
	for _, c := range headerCases {
		t.Run(c.name, func(t *testing.T) {
			h, n, err := c.rules.ParseHeader(c.in)
			if h != c.want || n != c.n || err != c.err {
				t.Fatalf("got %+v, %d, %v\nwant %+v, %d, %v", h, n, err, c.want, c.n, c.err)
			}
			if err != nil {
				return
			}
			// Every cut of a valid header is only incomplete.
			for k := range n {
				if _, m, err := c.rules.ParseHeader(c.in[:k]); m != 0 || err != ErrShort {
					t.Fatalf("first %d bytes: %d, %v; want 0, ErrShort", k, m, err)
				}
			}
			// A valid header has one encoding, the one AppendHeader writes.
			if b := AppendHeader(nil, h); !bytes.Equal(b, c.in[:n]) {
				t.Fatalf("AppendHeader % x, parsed from % x", b, c.in[:n])
			}
		})
	}
}

// ParseHeader, without rules, refuses only what no receiver may accept.
func TestParseHeaderWithoutRules(t *testing.T) {
	for _, c := range headerCases {
		h, n, err := ParseHeader(c.in)
		switch c.err {
		case ErrReservedBits, ErrUnmasked, ErrMasked:
			// Not judged: whatever comes after the first two bytes decides.
			if h.RSV != c.want.RSV || h.Masked != c.want.Masked {
				t.Errorf("%s: reported RSV %#x masked %v, want %#x %v", c.name, h.RSV, h.Masked, c.want.RSV, c.want.Masked)
			}
			if errors.Is(err, c.err) {
				t.Errorf("%s: %v without rules", c.name, err)
			}
		default:
			if h != c.want || n != c.n || err != c.err {
				t.Errorf("%s: got %+v, %d, %v; want %+v, %d, %v", c.name, h, n, err, c.want, c.n, c.err)
			}
		}
	}
}

func TestReadHeader(t *testing.T) {
	for _, c := range headerCases {
		t.Run(c.name, func(t *testing.T) {
			r := bytes.NewReader(c.in)
			h, err := c.rules.ReadHeader(r)
			read := len(c.in) - r.Len()
			switch {
			case c.err == ErrShort && len(c.in) == 0:
				if err != io.EOF {
					t.Fatalf("empty stream: %v, want io.EOF", err)
				}
			case c.err == ErrShort:
				if err != io.ErrUnexpectedEOF {
					t.Fatalf("cut stream: %v, want io.ErrUnexpectedEOF", err)
				}
			case c.err != nil:
				if err != c.err || h.Op != c.want.Op || h.Fin != c.want.Fin {
					t.Fatalf("got %+v, %v; want %+v, %v", h, err, c.want, c.err)
				}
			default:
				if h != c.want || err != nil || read != c.n {
					t.Fatalf("got %+v, %v after %d bytes; want %+v after %d", h, err, read, c.want, c.n)
				}
			}
			// A fault is reported without waiting for the bytes after the
			// ones that show it.
			switch c.err {
			case nil, ErrShort:
			case ErrNonMinimalLength, ErrLengthOverflow:
				if read != lengthEnd(c.in[1]) {
					t.Fatalf("read %d bytes before reporting %v, want %d", read, err, lengthEnd(c.in[1]))
				}
			default:
				if read != 2 {
					t.Fatalf("read %d bytes before reporting %v, want 2", read, err)
				}
			}
		})
	}
}

func TestAppendFrameRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 125, 126, 0xFFFF, 0x10000, 70000} {
		p := make([]byte, size)
		for i := range p {
			p[i] = byte(i * 7)
		}
		for _, op := range []byte{OpText, OpBinary, OpContinuation, OpPing, OpPong, OpClose} {
			if op >= 0x8 && size > MaxControlPayload {
				continue
			}
			f := AppendFrame([]byte("prefix"), op, p)[len("prefix"):]
			if len(f) != FrameSize(size) {
				t.Fatalf("size %d: frame of %d bytes, FrameSize %d", size, len(f), FrameSize(size))
			}
			h, n, err := FromServer.ParseHeader(f)
			if err != nil || h != (Header{Fin: true, Op: op, Length: uint64(size)}) {
				t.Fatalf("op %#x size %d: parsed %+v, %v", op, size, h, err)
			}
			if !bytes.Equal(f[n:], p) || !bytes.Equal(Payload(f), p) {
				t.Fatalf("op %#x size %d: payload differs", op, size)
			}
			m := AppendMaskedFrame(nil, op, key, p)
			h, n, err = FromClient.ParseHeader(m)
			if err != nil || h != (Header{Fin: true, Op: op, Masked: true, Key: key, Length: uint64(size)}) {
				t.Fatalf("masked op %#x size %d: parsed %+v, %v", op, size, h, err)
			}
			if size >= 4 && bytes.Equal(m[n:], p) {
				t.Fatalf("masked op %#x size %d: payload sent in the clear", op, size)
			}
			MaskBytes(h.Key, 0, m[n:])
			if !bytes.Equal(m[n:], p) {
				t.Fatalf("masked op %#x size %d: unmasked payload differs", op, size)
			}
		}
	}
}

func TestPayloadRefusesWhatIsNotOneFrame(t *testing.T) {
	f := AppendFrame(nil, OpText, []byte("hello"))
	for name, b := range map[string][]byte{
		"cut":       f[:len(f)-1],
		"two":       append(bytes.Clone(f), f...),
		"masked":    AppendMaskedFrame(nil, OpText, key, []byte("hello")),
		"faulty":    {0x83, 0},
		"too short": {0x81},
	} {
		if p := Payload(b); p != nil {
			t.Errorf("%s: payload %q, want nil", name, p)
		}
	}
}

func TestAppendClose(t *testing.T) {
	long := strings.Repeat("x", 200)
	accents := strings.Repeat("x", 122) + "éé" // é is 2 bytes: the cut at 123 would split one
	cases := []struct {
		code       int
		reason     string
		wantReason string
	}{
		{CloseNormal, "", ""},
		{ClosePolicyViolation, "slow consumer", "slow consumer"},
		{CloseProtocolError, long, long[:MaxControlPayload-2]},
		{CloseProtocolError, accents, accents[:122]},
	}
	for _, c := range cases {
		f := AppendClose(nil, c.code, c.reason)
		h, n, err := FromServer.ParseHeader(f)
		if err != nil || h.Op != OpClose || !h.Fin || h.Length != uint64(len(f)-n) {
			t.Fatalf("code %d: parsed %+v, %v", c.code, h, err)
		}
		p := f[n:]
		if got := int(p[0])<<8 | int(p[1]); got != c.code || string(p[2:]) != c.wantReason {
			t.Fatalf("code %d reason %q: got %d %q", c.code, c.reason, got, p[2:])
		}
		if !utf8.Valid(p[2:]) {
			t.Fatalf("reason %q is not UTF-8", p[2:])
		}
	}
	if f := AppendClose(nil, CloseNoStatus, "ignored"); !bytes.Equal(f, []byte{0x88, 0}) {
		t.Fatalf("CloseNoStatus: % x, want an empty close frame", f)
	}
}

func TestMaskBytesResumes(t *testing.T) {
	p := make([]byte, 100)
	for i := range p {
		p[i] = byte(i)
	}
	want := bytes.Clone(p)
	for i := range want {
		want[i] ^= key[i&3]
	}
	for _, cuts := range [][]int{{0}, {1}, {3, 20}, {17, 18, 50}, {5, 9, 13, 31, 99}} {
		b := bytes.Clone(p)
		pos, last := 0, 0
		for _, c := range append(cuts, len(b)) {
			pos = MaskBytes(key, pos, b[last:c])
			last = c
		}
		if !bytes.Equal(b, want) || pos != len(b)&3 {
			t.Fatalf("cuts %v: masked differs or position %d", cuts, pos)
		}
	}
}

func TestValidReceivedCloseCode(t *testing.T) {
	for code, want := range map[int]bool{
		0: false, 999: false, 1000: true, 1001: true, 1002: true, 1003: true,
		1004: false, 1005: false, 1006: false, 1007: true, 1011: true, 1014: true,
		1015: false, 1016: false, 2999: false, 3000: true, 4999: true, 5000: false,
	} {
		if got := ValidReceivedCloseCode(code); got != want {
			t.Errorf("ValidReceivedCloseCode(%d) = %v, want %v", code, got, want)
		}
	}
}

func TestAcceptKey(t *testing.T) {
	// The example of RFC 6455 section 1.3.
	if got := AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("AcceptKey = %q", got)
	}
}

func TestHeaderHasToken(t *testing.T) {
	cases := []struct {
		values []string
		want   bool
	}{
		{[]string{"Upgrade"}, true},
		{[]string{"keep-alive, Upgrade"}, true},
		{[]string{"keep-alive", " upgrade "}, true},
		{[]string{"keep-alive,upgrade,"}, true},
		{[]string{"keep-alive"}, false},
		{[]string{"upgraded", "no-upgrade"}, false},
		{nil, false},
		{[]string{""}, false},
	}
	for _, c := range cases {
		if got := HeaderHasToken(c.values, "upgrade"); got != c.want {
			t.Errorf("HeaderHasToken(%q) = %v, want %v", c.values, got, c.want)
		}
	}
}

// A server parses every frame a client sends and builds its pings, pongs
// and closes per connection: none of it may allocate.
func TestZeroAllocs(t *testing.T) {
	buf := make([]byte, 0, 1<<17)
	payload := make([]byte, 1<<16)
	checks := []struct {
		name string
		f    func()
	}{
		{"ParseHeader", func() {
			for _, c := range headerCases {
				_, _, _ = c.rules.ParseHeader(c.in)
			}
		}},
		{"AppendHeader", func() { buf = AppendHeader(buf[:0], headerCases[0].want) }},
		{"AppendFrame", func() { buf = AppendFrame(buf[:0], OpText, payload) }},
		{"AppendMaskedFrame", func() { buf = AppendMaskedFrame(buf[:0], OpText, key, payload) }},
		{"AppendClose", func() { buf = AppendClose(buf[:0], ClosePolicyViolation, "slow consumer") }},
		{"Payload", func() { _ = Payload(headerCases[8].in) }},
		{"MaskBytes", func() { MaskBytes(key, 1, payload) }},
		{"HeaderHasToken", func() { HeaderHasToken([]string{"keep-alive, Upgrade"}, "upgrade") }},
	}
	for _, c := range checks {
		if n := testing.AllocsPerRun(100, c.f); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", c.name, n)
		}
	}
	// The stack buffers the broker uses for control frames stay there.
	if n := testing.AllocsPerRun(100, func() {
		var b [2 + MaxControlPayload]byte
		_ = AppendClose(b[:0], CloseGoingAway, "idle timeout")
		_ = AppendFrame(b[:0], OpPong, payload[:MaxControlPayload])
	}); n != 0 {
		t.Errorf("control frames in a stack buffer: %v allocs per run, want 0", n)
	}
}

func BenchmarkParseHeader(b *testing.B) {
	for _, c := range headerCases {
		if c.err != nil {
			continue
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := c.rules.ParseHeader(c.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendFrame builds each valid case's frame: unmasked as a
// server sends, masked (with the masking) as a client does.
func BenchmarkAppendFrame(b *testing.B) {
	buf := make([]byte, 0, 1<<17)
	for _, c := range headerCases {
		if c.err != nil {
			continue
		}
		p := make([]byte, c.want.Length)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if c.want.Masked {
					buf = AppendMaskedFrame(buf[:0], c.want.Op, c.want.Key, p)
				} else {
					buf = AppendFrame(buf[:0], c.want.Op, p)
				}
			}
		})
	}
}
