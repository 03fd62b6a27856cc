package wsframe

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzParseHeader checks the codec's invariants on arbitrary bytes, with
// no socket, so it explores far more per second than a live server can:
//
//   - ParseHeader never panics, n is 0 with an error and within b without;
//   - a header it accepts has exactly one encoding (AppendHeader gives the
//     same bytes back) and every shorter prefix of it is only ErrShort;
//   - the receivers' rules add faults to ParseHeader's and change nothing
//     else;
//   - a frame built from the input (first, key and data as its first byte,
//     key and payload) parses back to the same header and payload, or
//     fails with the fault that first byte and length have.
func FuzzParseHeader(f *testing.F) {
	for _, c := range headerCases {
		var first byte
		if len(c.in) > 0 {
			first = c.in[0]
		}
		f.Add(c.in, first, binary.LittleEndian.Uint32(key[:]))
	}
	f.Fuzz(func(t *testing.T, data []byte, first byte, k uint32) {
		h, n, err := ParseHeader(data)
		if (err == nil) != (n > 0) || n > len(data) || n > MaxHeaderLen {
			t.Fatalf("% x: n %d with error %v", data, n, err)
		}
		if err == nil {
			if b := AppendHeader(nil, h); !bytes.Equal(b, data[:n]) {
				t.Fatalf("% x: re-encoded as % x", data[:n], b)
			}
			for i := range n {
				if _, m, err := ParseHeader(data[:i]); m != 0 || err != ErrShort {
					t.Fatalf("% x: prefix of %d bytes gives %d, %v", data[:n], i, m, err)
				}
			}
		}
		for _, r := range []Rules{FromClient, FromServer, {Masked: true, RSV: RSV1}} {
			rh, rn, rerr := r.ParseHeader(data)
			var fault error
			switch {
			case len(data) < 2:
			case h.RSV&^r.RSV != 0:
				fault = ErrReservedBits
			case r.Masked && !h.Masked:
				fault = ErrUnmasked
			case r.Unmasked && h.Masked:
				fault = ErrMasked
			}
			if fault != nil {
				if rerr != fault || rn != 0 {
					t.Fatalf("% x under %+v: %d, %v; want %v", data, r, rn, rerr, fault)
				}
			} else if rh != h || rn != n || rerr != err {
				t.Fatalf("% x under %+v: %+v %d %v, without rules %+v %d %v", data, r, rh, rn, rerr, h, n, err)
			}
		}

		// Round trip through the builders.
		var mk [4]byte
		binary.LittleEndian.PutUint32(mk[:], k)
		want := Header{Fin: first&0x80 != 0, RSV: first & anyRSV, Op: first & 0x0F, Masked: k&1 == 0, Length: uint64(len(data))}
		if want.Masked {
			want.Key = mk
		}
		frame := AppendHeader(nil, want)
		hn := len(frame)
		frame = append(frame, data...)
		if want.Masked {
			MaskBytes(want.Key, 0, frame[hn:])
		}
		got, gn, gerr := ParseHeader(frame)
		var fault error
		switch {
		case want.Op > OpPong || (want.Op > OpBinary && want.Op < OpClose):
			fault = ErrReservedOpcode
		case want.Op >= OpClose && !want.Fin:
			fault = ErrFragmentedControl
		case want.Op >= OpClose && len(data) > MaxControlPayload:
			fault = ErrControlTooLong
		}
		if fault != nil {
			if gerr != fault {
				t.Fatalf("built %+v: parsed %v, want %v", want, gerr, fault)
			}
			return
		}
		if gerr != nil || got != want || gn != hn {
			t.Fatalf("built %+v (%d header bytes): parsed %+v, %d, %v", want, hn, got, gn, gerr)
		}
		if want.Fin && want.RSV == 0 && !want.Masked {
			// What AppendFrame builds, and Payload gives back.
			if f := AppendFrame(nil, want.Op, data); !bytes.Equal(f, frame) || !bytes.Equal(Payload(f), data) {
				t.Fatalf("AppendFrame(%#x) differs from the header and payload, or Payload does", want.Op)
			}
		}
		if want.Fin && want.RSV == 0 && want.Masked {
			if f := AppendMaskedFrame(nil, want.Op, want.Key, data); !bytes.Equal(f, frame) {
				t.Fatalf("AppendMaskedFrame(%#x) differs from the header and masked payload", want.Op)
			}
		}
		p := frame[gn:]
		if got.Masked {
			MaskBytes(got.Key, 0, p)
		}
		if !bytes.Equal(p, data) {
			t.Fatalf("built %+v: payload differs", want)
		}
	})
}
