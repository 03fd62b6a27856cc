package codec

import (
	"strconv"
	"unicode/utf8"
)

// AppendError appends the error reply {"eventType":N,"error":"<reason>"} to
// dst and returns the extended slice. The reason is JSON-escaped (invalid
// UTF-8 becomes U+FFFD so the reply is always a valid text frame). Nothing is
// allocated beyond growing dst, so callers can reuse a buffer per connection.
func AppendError(dst []byte, eventType int, reason string) []byte {
	dst = append(dst, `{"eventType":`...)
	dst = strconv.AppendInt(dst, int64(eventType), 10)
	dst = append(dst, `,"error":`...)
	dst = appendString(dst, reason)
	return append(dst, '}')
}

// AppendMetaError appends a MetaRequest error reply, such as the "no backend
// available" answer to a client's MetaRequest; it is AppendError(dst,
// MetaRequest, reason).
func AppendMetaError(dst []byte, reason string) []byte {
	return AppendError(dst, MetaRequest, reason)
}

// AppendEcho appends an echo event {"eventType":10,"message":"..."} to dst,
// with "broadcast":true when broadcast is set. The broker forwards a client's
// validated echo bytes as they are, so this builder exists for tests and
// tools that need to produce echo messages.
func AppendEcho(dst []byte, message string, broadcast bool) []byte {
	dst = append(dst, `{"eventType":10,"message":`...)
	dst = appendString(dst, message)
	if broadcast {
		dst = append(dst, `,"broadcast":true`...)
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Besides the mandatory escapes it
// escapes U+2028 and U+2029, which are valid JSON but end a line in older
// JavaScript, so the output is safe to embed anywhere a client might put it.
// HTML characters are not escaped: the output goes to WebSocket clients, not
// into HTML.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
