package codec

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unsafe"

	"github.com/bytedance/sonic"
	"github.com/bytedance/sonic/utf8"
)

// problem identifies why a message or event is rejected. Reasons are kept as
// codes until the last moment so the valid path never builds strings.
type problem uint8

const (
	pNone problem = iota
	pInvalidJSON
	pInvalidUTF8
	pNotObject
	pDuplicate
	pNoEventType
	pNotFromClient
	pNotPublishable
	pUnknownType
	pErrorField
	pEchoMessage
	pBroadcast
)

// Top-level keys the broker gives meaning to.
const (
	keyEventType = iota
	keyMessage
	keyBroadcast
	keyError
	keyOther
)

// duplicateReasons are built once so a rejected duplicate needs no formatting.
var duplicateReasons = [...]string{
	`duplicate key "eventType"`,
	`duplicate key "message"`,
	`duplicate key "broadcast"`,
	`duplicate key "error"`,
}

// validate checks that b is valid UTF-8 and one structurally valid JSON
// document, using sonic for both. With the flags its public API uses,
// sonic's validator accepts invalid escapes ("\x", "\u00zz") and raw control
// characters inside strings, which JSON.parse in a recipient would reject:
// those are caught by skipString during the field walk that every caller
// does next, which visits every string of the object anyway, so strict
// strings cost no extra pass. Paths that do not walk the whole document use
// strictStrings.
//
// UTF-8 is checked first so that non-UTF-8 input always gets the same reason,
// whatever else is wrong with it.
func validate(b []byte) problem {
	if !utf8.Validate(b) {
		return pInvalidUTF8
	}
	if i := skipSpace(b, 0); i < len(b) && (b[i] == 't' || b[i] == 'f' || b[i] == 'n') {
		// sonic v1.15.5 reads a top-level true/false/null as four or five
		// bytes without checking the length, so " n" followed in memory
		// by "ull" validates (found by FuzzClassify). A document starting
		// with a literal is valid only if it is exactly that literal.
		switch string(trimSpace(b)) {
		case "true", "false", "null":
			return pNone
		}
		return pInvalidJSON
	}
	if !sonic.Valid(b) {
		return pInvalidJSON
	}
	return pNone
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// strictStrings checks every string of a structurally valid document for
// invalid escapes and raw control characters. It relies on the structure
// being valid: outside strings only whitespace and punctuation occur, so the
// next quote always opens a string. Only error paths need it; see validate.
func strictStrings(b []byte) bool {
	i := 0
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return true
		}
		if i = skipString(b, i+q); i < 0 {
			return false
		}
	}
}

// skipString returns the index just past the string starting at b[i] == '"',
// or -1 if the string is unterminated, holds a raw control character or an
// invalid escape. Strings are where sonic's validation is lenient (see
// validate), so this is strict; bounds are checked so any input is safe.
func skipString(b []byte, i int) int {
	j := i + 1
	for {
		j = nextStringSpecial(b, j)
		if j >= len(b) {
			return -1
		}
		if b[j] == '"' {
			return j + 1
		}
		if b[j] < 0x20 || j+1 >= len(b) {
			return -1
		}
		switch b[j+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			j += 2
		case 'u':
			if j+6 > len(b) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) || !isHex(b[j+5]) {
				return -1
			}
			j += 6
		default:
			return -1
		}
	}
}

// nextStringSpecial returns the index of the first byte at or after i that
// ends a plain run of string content ('"', '\\' or a control character), or
// len(b). It tests eight bytes per step: the zero-byte tricks may flag false
// positives, but only above a true match, so the lowest flagged byte is exact.
func nextStringSpecial(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q := x ^ ('"' * lsb)
		e := x ^ ('\\' * lsb)
		m := (((q - lsb) &^ q) | ((e - lsb) &^ e) | ((x - 0x20*lsb) &^ x)) & msb
		if m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return len(b)
}

// nextStructural returns the index of the first byte at or after i that is
// '"', '{', '}', '[' or ']', or len(b). Setting bit 5 maps '[' and ']' onto
// '{' and '}' (and nothing else onto them), so three tests cover five bytes.
func nextStructural(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		y := x | 0x20*lsb
		q := x ^ ('"' * lsb)
		o := y ^ ('{' * lsb)
		c := y ^ ('}' * lsb)
		m := (((q - lsb) &^ q) | ((o - lsb) &^ o) | ((c - lsb) &^ c)) & msb
		if m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case '"', '{', '}', '[', ']':
			return i
		}
	}
	return len(b)
}

func isHex(c byte) bool {
	return c-'0' < 10 || (c|0x20)-'a' < 6
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t'
}

// skipSpace returns the index of the first non-whitespace byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// trimSpace trims JSON whitespace (only the four JSON whitespace bytes, not
// Unicode spaces, which would be a syntax error anyway).
func trimSpace(b []byte) []byte {
	i := skipSpace(b, 0)
	j := len(b)
	for j > i && isSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}

// skipValue returns the index just past the value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		return skipNested(b, i)
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\n', '\r', '\t':
			return i
		}
		i++
	}
	return i
}

// skipNested returns the index just past the object or array at b[i], or -1.
// In a valid document brackets balance outside strings, so counting them is
// enough; the kind of bracket need not be matched.
func skipNested(b []byte, i int) int {
	depth := 0
	for {
		i = nextStructural(b, i)
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case '"':
			if i = skipString(b, i); i < 0 {
				return -1
			}
			continue
		case '{', '[':
			depth++
		default:
			if depth--; depth == 0 {
				return i + 1
			}
		}
		i++
	}
}

// fields holds the raw values of the top-level keys the broker cares about.
// A nil slice means the key is absent.
type fields struct {
	eventType []byte
	message   []byte
	broadcast []byte
	errorVal  []byte
	dup       int // key that occurred twice, or -1
}

// walkObject collects the interesting top-level fields of the object
// starting at b[i] == '{' and returns the index just past it. The structure
// is expected to be validated by sonic already; the walk checks every string
// strictly (see validate) and returns -1 for that or any other malformation.
func walkObject(b []byte, i int) (f fields, end int) {
	f.dup = -1
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return f, i + 1
	}
	for i < len(b) && b[i] == '"' {
		ke := skipString(b, i)
		if ke < 0 {
			return f, -1
		}
		key := keyID(b[i+1 : ke-1])
		i = skipSpace(b, ke)
		if i >= len(b) || b[i] != ':' {
			return f, -1
		}
		vs := skipSpace(b, i+1)
		ve := skipValue(b, vs)
		if ve < 0 {
			return f, -1
		}
		if key != keyOther {
			slot := f.slot(key)
			if *slot != nil {
				if f.dup < 0 {
					f.dup = key
				}
			} else {
				*slot = b[vs:ve:ve]
			}
		}
		i = skipSpace(b, ve)
		if i >= len(b) {
			return f, -1
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return f, i + 1
		default:
			return f, -1
		}
	}
	return f, -1
}

func (f *fields) slot(key int) *[]byte {
	switch key {
	case keyEventType:
		return &f.eventType
	case keyMessage:
		return &f.message
	case keyBroadcast:
		return &f.broadcast
	default:
		return &f.errorVal
	}
}

// keyID identifies a raw (still escaped) key. Escaped keys take a slow path
// that unescapes them, because JSON.parse treats "event\u0054ype" as
// "eventType" and so must we.
func keyID(raw []byte) int {
	if bytes.IndexByte(raw, '\\') >= 0 {
		var s string
		// raw sits between two quotes in the validated document, so the
		// quoted form is always valid; on the impossible error s stays
		// empty, which matches no key.
		_ = sonic.UnmarshalString(`"`+string(raw)+`"`, &s)
		return keyIDString(s)
	}
	return keyIDString(unsafe.String(unsafe.SliceData(raw), len(raw)))
}

func keyIDString(s string) int {
	switch s {
	case "eventType":
		return keyEventType
	case "message":
		return keyMessage
	case "broadcast":
		return keyBroadcast
	case "error":
		return keyError
	}
	return keyOther
}

// parseInt parses a JSON integer (optional minus, digits only) that fits an
// int. Fractions, exponents, strings and overflow are all "not an integer".
func parseInt(b []byte) (int, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	// 19 digits cannot overflow uint64; anything longer overflows int64.
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	const maxInt = uint64(^uint(0) >> 1)
	if neg {
		if n > maxInt+1 {
			return 0, false
		}
		return int(-n), true
	}
	if n > maxInt {
		return 0, false
	}
	return int(n), true
}

func isString(v []byte) bool { return len(v) > 0 && v[0] == '"' }

func isNull(v []byte) bool { return string(v) == "null" }

// checkError checks the optional "error" field shared by every event.
func (f *fields) checkError() problem {
	if f.errorVal != nil && !isString(f.errorVal) && !isNull(f.errorVal) {
		return pErrorField
	}
	return pNone
}

// checkEcho checks the fields of an echo (10) event.
func (f *fields) checkEcho() problem {
	if !isString(f.message) {
		return pEchoMessage
	}
	switch string(f.broadcast) {
	case "", "true", "false", "null":
		return pNone
	}
	return pBroadcast
}
