package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"testing"
	"unicode/utf8"
)

// The reference implementation below restates the protocol rules on top of
// encoding/json, deliberately without sharing code with the package, so the
// fuzz targets compare two independent readings of the same rules.

// refTooDeep reports documents whose nesting may exceed sonic's limit (4096)
// but not encoding/json's (10000): validity legitimately differs there.
func refTooDeep(b []byte) bool {
	return bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) > 4000
}

var refIntRE = regexp.MustCompile(`^-?[0-9]+$`)

var refKeys = map[string]bool{"eventType": true, "message": true, "broadcast": true, "error": true}

// refFields reads the top-level object: first raw value of each key and the
// first meaningful key that occurs twice. ok is false if b is not an object.
func refFields(b []byte) (first map[string][]byte, dup string, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, "", false
	}
	first = map[string][]byte{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			panic(err) // b is valid JSON
		}
		key := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			panic(err)
		}
		if _, seen := first[key]; seen {
			if refKeys[key] && dup == "" {
				dup = key
			}
			continue
		}
		first[key] = bytes.TrimSpace(raw)
	}
	return first, dup, true
}

// refInspect mirrors inspect: reason "" means fields and eventType are fine.
func refInspect(b []byte) (first map[string][]byte, et int, reason string) {
	if !utf8.Valid(b) {
		return nil, 0, "invalid UTF-8"
	}
	if !json.Valid(b) {
		return nil, 0, "invalid JSON"
	}
	first, dup, ok := refFields(b)
	if !ok {
		return nil, 0, "message is not a JSON object"
	}
	if dup == "eventType" {
		return first, 0, `duplicate key "eventType"`
	}
	raw, has := first["eventType"]
	if !has || !refIntRE.Match(raw) {
		return first, 0, "missing integer eventType"
	}
	et, err := strconv.Atoi(string(raw))
	if err != nil {
		return first, 0, "missing integer eventType"
	}
	if dup != "" {
		return first, et, `duplicate key "` + dup + `"`
	}
	return first, et, ""
}

func refErrorOK(first map[string][]byte) bool {
	v, has := first["error"]
	return !has || v[0] == '"' || string(v) == "null"
}

func refEcho(first map[string][]byte) Message {
	if !refErrorOK(first) {
		return inv(Echo, "error must be a string or null")
	}
	if m, has := first["message"]; !has || m[0] != '"' {
		return inv(Echo, "echo requires a string message")
	}
	bc, has := first["broadcast"]
	switch {
	case !has || string(bc) == "null" || string(bc) == "false":
		return Message{Kind: KindEcho, EventType: Echo}
	case string(bc) == "true":
		return Message{Kind: KindEcho, EventType: Echo, Broadcast: true}
	}
	return inv(Echo, "broadcast must be a boolean")
}

func refClassify(b []byte, backend bool) Message {
	first, et, reason := refInspect(b)
	if reason != "" {
		return inv(et, reason)
	}
	switch {
	case et == Echo:
		return refEcho(first)
	case et == 11 && backend:
		return inv(et, "eventType 11 may not be published")
	case et == 11:
		if !refErrorOK(first) {
			return inv(et, "error must be a string or null")
		}
		return Message{Kind: KindTokenRefresh, EventType: et}
	case backend && et >= 1 && et <= 9, !backend && et == 9:
		if !refErrorOK(first) {
			return inv(et, "error must be a string or null")
		}
		if backend {
			return Message{Kind: KindServerEvent, EventType: et}
		}
		return Message{Kind: KindMeta, EventType: et}
	case !backend && et >= 1 && et <= 8:
		return inv(et, "eventType "+strconv.Itoa(et)+" may not be sent by clients")
	}
	return inv(et, "unknown eventType "+strconv.Itoa(et))
}

// refEventReason is ValidateEvent's reason for one valid-JSON element.
func refEventReason(b []byte) string {
	first, et, reason := refInspect(b)
	switch {
	case reason != "":
		return reason
	case et == Echo, et == 11:
		return "eventType " + strconv.Itoa(et) + " may not be published"
	case et < 1 || et > 9:
		return "unknown eventType " + strconv.Itoa(et)
	case !refErrorOK(first):
		return "error must be a string or null"
	}
	return ""
}

// refSplit mirrors SplitPublish: the events, or the exact error text.
func refSplit(body []byte) ([][]byte, string) {
	if !utf8.Valid(body) {
		return nil, "codec: invalid UTF-8"
	}
	if !json.Valid(body) {
		return nil, "codec: invalid JSON"
	}
	b := bytes.TrimSpace(body)
	switch b[0] {
	case '{':
		if r := refEventReason(b); r != "" {
			return nil, "codec: " + r
		}
		return [][]byte{b}, ""
	case '[':
	default:
		return nil, "codec: body must be a JSON object or an array of objects"
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(b, &elems); err != nil {
		panic(err)
	}
	if len(elems) == 0 {
		return nil, "codec: empty event array"
	}
	out := make([][]byte, len(elems))
	for i, e := range elems {
		if e[0] != '{' {
			return nil, "codec: event " + strconv.Itoa(i) + ": message is not a JSON object"
		}
		if r := refEventReason(e); r != "" {
			return nil, "codec: event " + strconv.Itoa(i) + ": " + r
		}
		out[i] = e
	}
	return out, ""
}

func FuzzClassify(f *testing.F) {
	for _, cs := range [][]classifyCase{commonCases, clientCases, backendCases} {
		for _, tc := range cs {
			f.Add([]byte(tc.msg))
		}
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if refTooDeep(msg) {
			t.Skip()
		}
		orig := bytes.Clone(msg)
		for _, backend := range []bool{false, true} {
			var got Message
			if backend {
				got = ClassifyBackend(msg)
			} else {
				got = ClassifyClient(msg)
			}
			if want := refClassify(msg, backend); got != want {
				t.Fatalf("backend=%v classify(%q):\n got %+v\nwant %+v", backend, msg, got, want)
			}
		}
		_, et, reason := refInspect(msg)
		err := ValidateEvent(msg)
		if want := refEventReason(msg); (err == nil) != (want == "") || (err != nil && err.Error() != "codec: "+want) {
			t.Fatalf("ValidateEvent(%q) = %v; want %q", msg, err, want)
		}
		// PeekEventType validates less, but on a message whose eventType is
		// readable it must read the same one.
		pet, perr := PeekEventType(msg)
		if reason == "" || (et != 0 && reason != `duplicate key "eventType"`) {
			if perr != nil || pet != et {
				t.Fatalf("PeekEventType(%q) = %d, %v; want %d", msg, pet, perr, et)
			}
		}
		if perr != nil && pet != 0 {
			t.Fatalf("PeekEventType(%q) = %d with error %v", msg, pet, perr)
		}
		if !bytes.Equal(msg, orig) {
			t.Fatalf("input modified")
		}
	})
}

func FuzzSplitPublish(f *testing.F) {
	for _, s := range []string{
		`{"eventType":1,"username":"bob"}`,
		`[{"eventType":1,"username":"a"},{"eventType":5,"username":"a","file":"f"}]`,
		"[\n {\"eventType\":2 , \"x\": [1, {\"y\": \"]}\"}]} ,{\"eventType\":9,\"error\":null}\n]",
		`[]`, `[{"eventType":42}]`, `[1]`, `42`, `[{"eventType":1}] x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if refTooDeep(body) {
			t.Skip()
		}
		got, err := SplitPublish(body)
		want, wantErr := refSplit(body)
		if wantErr != "" {
			if err == nil || err.Error() != wantErr || got != nil {
				t.Fatalf("SplitPublish(%q) = %q, %v; want error %q", body, got, err, wantErr)
			}
			var sentinel bool
			for _, s := range []error{ErrInvalidJSON, ErrInvalidUTF8, ErrNotObject, ErrNoEventType, ErrEventType, ErrField, ErrDuplicateKey, ErrEmptyBatch} {
				sentinel = sentinel || errors.Is(err, s)
			}
			if !sentinel {
				t.Fatalf("SplitPublish(%q) error %v wraps no sentinel", body, err)
			}
			return
		}
		if err != nil || len(got) != len(want) {
			t.Fatalf("SplitPublish(%q) = %q, %v; want %q", body, got, err, want)
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) || !sameMemory(body, got[i]) {
				t.Fatalf("SplitPublish(%q)[%d] = %q; want %q from the body", body, i, got[i], want[i])
			}
		}
	})
}
