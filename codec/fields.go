package codec

import (
	"github.com/bytedance/sonic"
)

// The helpers in this file read and edit top-level members of an object
// that was already validated (by ClassifyClient, ClassifyBackend,
// ValidateEvent or SplitPublish). They never re-encode the members they
// keep: those are copied byte for byte.

// eachMember calls fn for every top-level member of the object obj, with
// the raw key (still escaped, without quotes), the raw value and the
// member's byte span. It stops early when fn returns false and reports
// false if obj is not a well-formed object.
func eachMember(obj []byte, fn func(key, val []byte, start, end int) bool) bool {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return true
	}
	for i < len(obj) && obj[i] == '"' {
		start := i
		ke := skipString(obj, i)
		if ke < 0 {
			return false
		}
		key := obj[i+1 : ke-1]
		i = skipSpace(obj, ke)
		if i >= len(obj) || obj[i] != ':' {
			return false
		}
		vs := skipSpace(obj, i+1)
		ve := skipValue(obj, vs)
		if ve < 0 {
			return false
		}
		if !fn(key, obj[vs:ve], start, ve) {
			return true
		}
		i = skipSpace(obj, ve)
		if i >= len(obj) {
			return false
		}
		switch obj[i] {
		case ',':
			i = skipSpace(obj, i+1)
		case '}':
			return true
		default:
			return false
		}
	}
	return false
}

// keyIs compares a raw key with name, unescaping only when the key has an
// escape (JSON.parse reads "user\u006eame" as "username", and so must we).
func keyIs(raw []byte, name string) bool {
	for _, c := range raw {
		if c == '\\' {
			var s string
			_ = sonic.UnmarshalString(`"`+string(raw)+`"`, &s)
			return s == name
		}
	}
	return string(raw) == name
}

// HasField reports whether the object obj has a top-level member key.
func HasField(obj []byte, key string) bool {
	found := false
	eachMember(obj, func(k, _ []byte, _, _ int) bool {
		found = keyIs(k, key)
		return !found
	})
	return found
}

// StringField returns the value of the top-level member key when it is a
// JSON string. Like JSON.parse, the last occurrence of a duplicated key
// wins, so the broker routes on the value every recipient will see.
func StringField(obj []byte, key string) (string, bool) {
	var val []byte
	eachMember(obj, func(k, v []byte, _, _ int) bool {
		if keyIs(k, key) {
			val = v
		}
		return true
	})
	if !isString(val) {
		return "", false
	}
	inner := val[1 : len(val)-1]
	for _, c := range inner {
		if c == '\\' {
			var s string
			if err := sonic.Unmarshal(val, &s); err != nil {
				return "", false
			}
			return s, true
		}
	}
	return string(inner), true
}

// AppendWithField appends obj with the member "key":"value" inserted
// first; every original member follows byte for byte.
func AppendWithField(dst, obj []byte, key, value string) []byte {
	obj = trimSpace(obj)
	dst = append(dst, '{')
	dst = appendString(dst, key)
	dst = append(dst, ':')
	dst = appendString(dst, value)
	rest := trimSpace(obj[1:])
	if len(rest) > 0 && rest[0] != '}' {
		dst = append(dst, ',')
	}
	return append(dst, rest...)
}

// AppendWithoutField appends obj without any top-level member named key.
// Kept members are copied byte for byte; only the whitespace between
// members is normalised.
func AppendWithoutField(dst, obj []byte, key string) []byte {
	dst = append(dst, '{')
	first := true
	eachMember(obj, func(k, _ []byte, start, end int) bool {
		if !keyIs(k, key) {
			if !first {
				dst = append(dst, ',')
			}
			dst = append(dst, obj[start:end]...)
			first = false
		}
		return true
	})
	return append(dst, '}')
}
