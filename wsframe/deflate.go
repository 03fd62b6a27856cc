package wsframe

import (
	"compress/flate"
	"errors"
	"io"
	"slices"
	"sync"
)

// permessage-deflate (RFC 7692) payloads, on the receiving side.

// DeflateTail is what a DEFLATE sync flush ends with. A sender of a
// permessage-deflate message removes it (section 7.2.1) and the receiver
// appends it again before inflating (section 7.2.2).
var DeflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// inflateEnd follows DeflateTail into the reader: an empty final block,
// so that the inflater ends with io.EOF instead of asking for more.
var inflateEnd = []byte{0x01, 0x00, 0x00, 0xff, 0xff}

// ErrInflateTooBig is Inflate refusing a message that inflates past its
// bound.
var ErrInflateTooBig = errors.New("inflated message over the size limit")

// inflaters are pooled flate readers (flate.Resetter): a reader holds a
// 32 KiB window and its tables, too much to keep per idle connection and
// too much to allocate per message.
var inflaters sync.Pool

// inflateInput is the reader an inflater reads a message from: the
// compressed bytes, then DeflateTail, then inflateEnd.
type inflateInput struct {
	parts [3][]byte
}

func (r *inflateInput) Read(p []byte) (int, error) {
	for i := range r.parts {
		if len(r.parts[i]) > 0 {
			n := copy(p, r.parts[i])
			r.parts[i] = r.parts[i][n:]
			return n, nil
		}
	}
	return 0, io.EOF
}

func (r *inflateInput) ReadByte() (byte, error) {
	for i := range r.parts {
		if len(r.parts[i]) > 0 {
			b := r.parts[i][0]
			r.parts[i] = r.parts[i][1:]
			return b, nil
		}
	}
	return 0, io.EOF
}

// Inflate appends the permessage-deflate payload compressed, inflated, to
// dst (the receiver's side, no context takeover), refusing with
// ErrInflateTooBig as soon as it would pass limit bytes: it never holds
// more than limit+1 bytes of output, however well the input compresses
// (a zip bomb costs at most limit bytes and the time to inflate them).
// Corrupt or truncated data is an error from compress/flate.
func Inflate(dst, compressed []byte, limit int) ([]byte, error) {
	in := &inflateInput{parts: [3][]byte{compressed, DeflateTail, inflateEnd}}
	var fr io.ReadCloser
	if p, ok := inflaters.Get().(io.ReadCloser); ok {
		fr = p
		_ = fr.(flate.Resetter).Reset(in, nil)
	} else {
		fr = flate.NewReader(in)
	}
	defer func() {
		in.parts = [3][]byte{} // drop the caller's buffer before pooling
		inflaters.Put(fr)
	}()
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			out := len(dst) - start
			if out > limit {
				return dst, ErrInflateTooBig
			}
			// Grow by doubling, never past limit+1 bytes of output: one
			// byte over the limit is how the overflow shows.
			dst = slices.Grow(dst, min(max(out, 4*len(compressed), 512), limit+1-out))
		}
		n, err := fr.Read(dst[len(dst):min(cap(dst), start+limit+1)])
		dst = dst[:len(dst)+n]
		if len(dst)-start > limit {
			return dst, ErrInflateTooBig
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}
