package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

type classifyCase struct {
	name string
	msg  string
	want Message
}

func inv(et int, reason string) Message {
	return Message{Kind: KindInvalid, EventType: et, Reason: reason}
}

// commonCases behave the same for clients and backends.
var commonCases = []classifyCase{
	{"echo", `{"eventType":10,"message":"Hello world?"}`, Message{Kind: KindEcho, EventType: 10}},
	{"echo broadcast true", `{"eventType":10,"message":"hi","broadcast":true}`, Message{Kind: KindEcho, EventType: 10, Broadcast: true}},
	{"echo broadcast false", `{"eventType":10,"message":"hi","broadcast":false}`, Message{Kind: KindEcho, EventType: 10}},
	{"echo broadcast null", `{"eventType":10,"message":"hi","broadcast":null}`, Message{Kind: KindEcho, EventType: 10}},
	{"echo whitespace and extra fields", " \n{ \"message\" : \"a\\\"eventType\\\":1\" ,\t\"x\":{\"eventType\":1,\"y\":[1,{\"z\":\"}\"}]}, \"eventType\" : 10 }\r\n", Message{Kind: KindEcho, EventType: 10}},
	{"echo error null", `{"eventType":10,"message":"hi","error":null}`, Message{Kind: KindEcho, EventType: 10}},
	{"echo error string", `{"eventType":10,"message":"hi","error":"boom"}`, Message{Kind: KindEcho, EventType: 10}},
	{"echo escaped key", `{"event\u0054ype":10,"message":"hi"}`, Message{Kind: KindEcho, EventType: 10}},
	{"echo unicode message", `{"eventType":10,"message":"héllo \ud83d\ude00 \u2028"}`, Message{Kind: KindEcho, EventType: 10}},
	{"echo lone surrogate escape", `{"eventType":10,"message":"\ud800"}`, Message{Kind: KindEcho, EventType: 10}},

	{"invalid JSON truncated", `{"eventType":10,"message":"hi"`, inv(0, "invalid JSON")},
	{"invalid JSON text", `hello`, inv(0, "invalid JSON")},
	{"invalid JSON empty", ``, inv(0, "invalid JSON")},
	{"invalid JSON whitespace only", " \n", inv(0, "invalid JSON")},
	{"invalid JSON trailing garbage", `{"eventType":10,"message":"hi"} x`, inv(0, "invalid JSON")},
	{"invalid JSON two objects", `{"eventType":10,"message":"hi"}{}`, inv(0, "invalid JSON")},
	{"invalid JSON bad escape", `{"eventType":10,"message":"\x"}`, inv(0, "invalid JSON")},
	{"invalid JSON bad unicode escape", `{"eventType":10,"message":"\u00zz"}`, inv(0, "invalid JSON")},
	{"invalid JSON short unicode escape", `{"eventType":10,"message":"\u00"}`, inv(0, "invalid JSON")},
	{"invalid JSON raw newline in string", "{\"eventType\":10,\"message\":\"a\nb\"}", inv(0, "invalid JSON")},
	{"invalid JSON raw control in key", "{\"event\x01Type\":10}", inv(0, "invalid JSON")},
	{"invalid JSON single quotes", `{'eventType':10}`, inv(0, "invalid JSON")},
	{"invalid JSON trailing comma", `{"eventType":10,"message":"hi",}`, inv(0, "invalid JSON")},
	{"invalid JSON leading zero", `{"eventType":010}`, inv(0, "invalid JSON")},
	{"invalid JSON NaN", `{"eventType":NaN}`, inv(0, "invalid JSON")},
	{"invalid UTF-8", "{\"eventType\":10,\"message\":\"\xff\"}", inv(0, "invalid UTF-8")},
	{"invalid UTF-8 and JSON", "{\"eventType\":10,\"message\":\"\xc3", inv(0, "invalid UTF-8")},

	{"not object array", `[{"eventType":10,"message":"hi"}]`, inv(0, "message is not a JSON object")},
	{"not object string", `"eventType"`, inv(0, "message is not a JSON object")},
	{"not object number", `10`, inv(0, "message is not a JSON object")},
	{"not object null", ` null `, inv(0, "message is not a JSON object")},

	{"missing eventType", `{"message":"hi"}`, inv(0, "missing integer eventType")},
	{"missing eventType empty object", `{}`, inv(0, "missing integer eventType")},
	{"missing eventType nested only", `{"x":{"eventType":10},"message":"hi"}`, inv(0, "missing integer eventType")},
	{"missing eventType in string", `{"message":"\"eventType\":10"}`, inv(0, "missing integer eventType")},
	{"eventType case differs", `{"eventtype":10}`, inv(0, "missing integer eventType")},
	{"eventType fraction", `{"eventType":10.0,"message":"hi"}`, inv(0, "missing integer eventType")},
	{"eventType exponent", `{"eventType":1e1,"message":"hi"}`, inv(0, "missing integer eventType")},
	{"eventType string", `{"eventType":"10","message":"hi"}`, inv(0, "missing integer eventType")},
	{"eventType null", `{"eventType":null}`, inv(0, "missing integer eventType")},
	{"eventType bool", `{"eventType":true}`, inv(0, "missing integer eventType")},
	{"eventType object", `{"eventType":{"a":10}}`, inv(0, "missing integer eventType")},
	{"eventType overflow", `{"eventType":99999999999999999999}`, inv(0, "missing integer eventType")},
	{"eventType just over int64", `{"eventType":9223372036854775808}`, inv(0, "missing integer eventType")},

	{"unknown eventType", `{"eventType":42}`, inv(42, "unknown eventType 42")},
	{"unknown eventType zero", `{"eventType":0}`, inv(0, "unknown eventType 0")},
	{"unknown eventType minus zero", `{"eventType":-0}`, inv(0, "unknown eventType 0")},
	{"unknown eventType negative", `{"eventType":-1}`, inv(-1, "unknown eventType -1")},
	{"unknown eventType 12", `{"eventType":12,"message":"hi"}`, inv(12, "unknown eventType 12")},
	{"unknown eventType min int64", `{"eventType":-9223372036854775808}`, inv(-9223372036854775808, "unknown eventType -9223372036854775808")},

	{"echo message missing", `{"eventType":10}`, inv(10, "echo requires a string message")},
	{"echo message number", `{"eventType":10,"message":5}`, inv(10, "echo requires a string message")},
	{"echo message null", `{"eventType":10,"message":null}`, inv(10, "echo requires a string message")},
	{"echo message object", `{"eventType":10,"message":{"a":"b"}}`, inv(10, "echo requires a string message")},
	{"echo broadcast string", `{"eventType":10,"message":"hi","broadcast":"true"}`, inv(10, "broadcast must be a boolean")},
	{"echo broadcast number", `{"eventType":10,"message":"hi","broadcast":1}`, inv(10, "broadcast must be a boolean")},
	{"echo error number", `{"eventType":10,"message":"hi","error":1}`, inv(10, "error must be a string or null")},
	{"echo error object", `{"eventType":10,"message":"hi","error":{}}`, inv(10, "error must be a string or null")},

	{"duplicate eventType", `{"eventType":10,"message":"hi","eventType":1,"username":"x"}`, inv(0, `duplicate key "eventType"`)},
	{"duplicate escaped eventType", `{"eventType":10,"message":"hi","event\u0054ype":1}`, inv(0, `duplicate key "eventType"`)},
	{"duplicate message", `{"eventType":10,"message":"hi","message":5}`, inv(10, `duplicate key "message"`)},
	{"duplicate broadcast", `{"eventType":10,"message":"hi","broadcast":false,"broadcast":true}`, inv(10, `duplicate key "broadcast"`)},
	{"duplicate error", `{"eventType":10,"message":"hi","error":null,"error":"x"}`, inv(10, `duplicate key "error"`)},
	{"duplicate other key allowed", `{"eventType":10,"message":"hi","x":1,"x":2}`, Message{Kind: KindEcho, EventType: 10}},
}

var clientCases = []classifyCase{
	{"meta", `{"eventType":9,"username":"bob","property":"age"}`, Message{Kind: KindMeta, EventType: 9}},
	{"meta set", `{"eventType":9,"username":"bob","property":"age","val":{"x":[1,2]}}`, Message{Kind: KindMeta, EventType: 9}},
	{"meta error null", `{"eventType":9,"error":null}`, Message{Kind: KindMeta, EventType: 9}},
	{"meta error number", `{"eventType":9,"error":false}`, inv(9, "error must be a string or null")},
	{"login from client", `{"eventType":1,"username":"bob"}`, inv(1, "eventType 1 may not be sent by clients")},
	{"activated from client", `{"eventType":3,"username":"bob"}`, inv(3, "eventType 3 may not be sent by clients")},
	{"bucket removed from client", `{"eventType":8,"bucket":"b"}`, inv(8, "eventType 8 may not be sent by clients")},
	{"token refresh", `{"eventType":11,"token":"a.b.c"}`, Message{Kind: KindTokenRefresh, EventType: 11}},
	{"token refresh error number", `{"eventType":11,"error":1}`, inv(11, "error must be a string or null")},
}

var backendCases = []classifyCase{
	{"token refresh from backend", `{"eventType":11,"token":"a.b.c"}`, inv(11, "eventType 11 may not be published")},
	{"login", `{"eventType":1,"username":"bob"}`, Message{Kind: KindServerEvent, EventType: 1}},
	{"file uploaded extra fields", `{"eventType":5,"username":"bob","file":{"name":"a.png","size":3},"x":[true]}`, Message{Kind: KindServerEvent, EventType: 5}},
	{"bucket removed", `{"eventType":8,"bucket":"b","error":null}`, Message{Kind: KindServerEvent, EventType: 8}},
	{"meta reply", `{"eventType":9,"username":"bob","val":1}`, Message{Kind: KindServerEvent, EventType: 9}},
	{"meta reply with error", `{"eventType":9,"error":"no such user"}`, Message{Kind: KindServerEvent, EventType: 9}},
	{"server event error number", `{"eventType":2,"error":7}`, inv(2, "error must be a string or null")},
}

func runClassify(t *testing.T, f func([]byte) Message, cases ...[]classifyCase) {
	t.Helper()
	for _, cs := range cases {
		for _, tc := range cs {
			t.Run(tc.name, func(t *testing.T) {
				if got := f([]byte(tc.msg)); got != tc.want {
					t.Errorf("%q:\n got %+v\nwant %+v", tc.msg, got, tc.want)
				}
			})
		}
	}
}

func TestClassifyClient(t *testing.T) { runClassify(t, ClassifyClient, commonCases, clientCases) }

func TestClassifyBackend(t *testing.T) { runClassify(t, ClassifyBackend, commonCases, backendCases) }

func TestPeekEventType(t *testing.T) {
	tests := []struct {
		name    string
		msg     string
		want    int
		wantErr error
	}{
		{"echo", `{"eventType":10,"message":"hi"}`, 10, nil},
		{"last", `{"message":"hi","x":{"eventType":3},"eventType":4}`, 4, nil},
		{"whitespace", " {\n\"eventType\" :\t9 } ", 9, nil},
		{"negative", `{"eventType":-3}`, -3, nil},
		{"escaped key", `{"event\u0054ype":5}`, 5, nil},
		{"first duplicate wins", `{"eventType":10,"eventType":11}`, 10, nil},
		{"rest not validated", `{"eventType":10,"message":nope}`, 10, nil},
		{"missing", `{"message":"hi"}`, 0, ErrNoEventType},
		{"in string only", `{"message":"\"eventType\":10"}`, 0, ErrNoEventType},
		{"fraction", `{"eventType":10.0}`, 0, ErrNoEventType},
		{"exponent", `{"eventType":1e1}`, 0, ErrNoEventType},
		{"string", `{"eventType":"10"}`, 0, ErrNoEventType},
		{"null", `{"eventType":null}`, 0, ErrNoEventType},
		{"overflow", `{"eventType":99999999999999999999}`, 0, ErrNoEventType},
		{"array", `[{"eventType":10}]`, 0, ErrNotObject},
		{"number", `10`, 0, ErrNotObject},
		{"empty", ``, 0, ErrInvalidJSON},
		{"garbage", `x{"eventType":10}`, 0, ErrInvalidJSON},
		{"truncated", `{"eventType":`, 0, ErrInvalidJSON},
		{"bad value", `{"eventType":1x}`, 0, ErrInvalidJSON},
		{"bad key", `{eventType:10}`, 0, ErrInvalidJSON},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PeekEventType([]byte(tc.msg))
			if got != tc.want || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("PeekEventType(%q) = %d, %v; want %d, %v", tc.msg, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestValidateEvent(t *testing.T) {
	tests := []struct {
		name    string
		ev      string
		wantErr error
		text    string
	}{
		{"login", `{"eventType":1,"username":"bob"}`, nil, ""},
		{"meta", `{"eventType":9,"error":"x"}`, nil, ""},
		{"echo", `{"eventType":10,"message":"hi"}`, ErrEventType, "codec: eventType 10 may not be published"},
		{"unknown", `{"eventType":42}`, ErrEventType, "codec: unknown eventType 42"},
		{"zero", `{"eventType":0}`, ErrEventType, "codec: unknown eventType 0"},
		{"missing", `{"username":"bob"}`, ErrNoEventType, "codec: missing integer eventType"},
		{"not integer", `{"eventType":1.5}`, ErrNoEventType, "codec: missing integer eventType"},
		{"error field", `{"eventType":1,"error":[]}`, ErrField, "codec: error must be a string or null"},
		{"duplicate", `{"eventType":1,"eventType":2}`, ErrDuplicateKey, `codec: duplicate key "eventType"`},
		{"array", `[{"eventType":1}]`, ErrNotObject, "codec: message is not a JSON object"},
		{"invalid", `{"eventType":1`, ErrInvalidJSON, "codec: invalid JSON"},
		{"invalid UTF-8", "{\"eventType\":1,\"username\":\"\xed\xa0\x80\"}", ErrInvalidUTF8, "codec: invalid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateEvent([]byte(tc.ev))
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("ValidateEvent(%q) = %v", tc.ev, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || err.Error() != tc.text {
				t.Fatalf("ValidateEvent(%q) = %v; want %q wrapping %v", tc.ev, err, tc.text, tc.wantErr)
			}
		})
	}
}

func TestSplitPublish(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    []string
		wantErr error
		text    string
	}{
		{"single", `{"eventType":1,"username":"bob"}`, []string{`{"eventType":1,"username":"bob"}`}, nil, ""},
		{"single whitespace trimmed", " \r\n\t{ \"eventType\" : 2 ,\n \"username\":\"bob\" }\n", []string{"{ \"eventType\" : 2 ,\n \"username\":\"bob\" }"}, nil, ""},
		{"array in order", `[{"eventType":1,"username":"a"},{"eventType":5,"username":"a","file":"f"},{"eventType":8,"bucket":"b"}]`,
			[]string{`{"eventType":1,"username":"a"}`, `{"eventType":5,"username":"a","file":"f"}`, `{"eventType":8,"bucket":"b"}`}, nil, ""},
		{"array whitespace", "[\n  {\"eventType\":1,\n   \"username\":\"a\"} ,\n\t{ \"eventType\":2 }\n]\n",
			[]string{"{\"eventType\":1,\n   \"username\":\"a\"}", `{ "eventType":2 }`}, nil, ""},
		{"extra fields byte for byte", `[{"eventType":5,"file":{"name":"a\u00e9\"}","tags":["x",{"eventType":99}]},"n":1.50e+3,"z":null}]`,
			[]string{`{"eventType":5,"file":{"name":"a\u00e9\"}","tags":["x",{"eventType":99}]},"n":1.50e+3,"z":null}`}, nil, ""},
		{"eventType-like text in strings", `[{"note":"{\"eventType\":42}","eventType":3,"username":"]},{"}]`,
			[]string{`{"note":"{\"eventType\":42}","eventType":3,"username":"]},{"}`}, nil, ""},
		{"meta reply", `{"eventType":9,"username":"bob","val":"x"}`, []string{`{"eventType":9,"username":"bob","val":"x"}`}, nil, ""},

		{"empty array", `[]`, nil, ErrEmptyBatch, "codec: empty event array"},
		{"empty array whitespace", " [ \n ] ", nil, ErrEmptyBatch, "codec: empty event array"},
		{"bad element names index", `[{"eventType":1},{"eventType":2},{"eventType":3},{"eventType":42}]`, nil, ErrEventType, "codec: event 3: unknown eventType 42"},
		{"echo element", `[{"eventType":1},{"eventType":10,"message":"x"}]`, nil, ErrEventType, "codec: event 1: eventType 10 may not be published"},
		{"missing type element", `[{"eventType":1},{"username":"x"}]`, nil, ErrNoEventType, "codec: event 1: missing integer eventType"},
		{"scalar element", `[{"eventType":1},2]`, nil, ErrNotObject, "codec: event 1: message is not a JSON object"},
		{"nested array element", `[[{"eventType":1}]]`, nil, ErrNotObject, "codec: event 0: message is not a JSON object"},
		{"error field element", `[{"eventType":1,"error":1}]`, nil, ErrField, "codec: event 0: error must be a string or null"},
		{"duplicate element", `[{"eventType":1,"eventType":1}]`, nil, ErrDuplicateKey, `codec: event 0: duplicate key "eventType"`},
		{"single bad", `{"eventType":42}`, nil, ErrEventType, "codec: unknown eventType 42"},
		{"top-level number", `42`, nil, ErrNotObject, "codec: body must be a JSON object or an array of objects"},
		{"top-level string", `"x"`, nil, ErrNotObject, "codec: body must be a JSON object or an array of objects"},
		{"top-level null", `null`, nil, ErrNotObject, "codec: body must be a JSON object or an array of objects"},
		{"trailing garbage", `[{"eventType":1}] x`, nil, ErrInvalidJSON, "codec: invalid JSON"},
		{"trailing object", `{"eventType":1}{"eventType":2}`, nil, ErrInvalidJSON, "codec: invalid JSON"},
		{"truncated", `[{"eventType":1},`, nil, ErrInvalidJSON, "codec: invalid JSON"},
		{"empty body", ``, nil, ErrInvalidJSON, "codec: invalid JSON"},
		{"bad escape", `[{"eventType":1,"username":"\q"}]`, nil, ErrInvalidJSON, "codec: invalid JSON"},
		{"invalid UTF-8", "[{\"eventType\":1,\"username\":\"\xc0\xaf\"}]", nil, ErrInvalidUTF8, "codec: invalid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			got, err := SplitPublish(body)
			if tc.wantErr != nil {
				if got != nil || !errors.Is(err, tc.wantErr) || err.Error() != tc.text {
					t.Fatalf("SplitPublish(%q) = %q, %v; want %q wrapping %v", tc.body, got, err, tc.text, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("SplitPublish(%q) error %v", tc.body, err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("SplitPublish(%q) = %q; want %q", tc.body, got, tc.want)
			}
			for i := range got {
				if string(got[i]) != tc.want[i] {
					t.Errorf("event %d = %q; want %q", i, got[i], tc.want[i])
				}
				if cap(got[i]) != len(got[i]) {
					t.Errorf("event %d: cap %d not clipped to len %d", i, cap(got[i]), len(got[i]))
				}
				if !sameMemory(body, got[i]) {
					t.Errorf("event %d is not a sub-slice of the body", i)
				}
			}
		})
	}
}

// sameMemory reports whether sub lies inside body's backing array.
func sameMemory(body, sub []byte) bool {
	if len(sub) == 0 {
		return true
	}
	for i := range body {
		if &body[i] == &sub[0] {
			return i+len(sub) <= len(body)
		}
	}
	return false
}

func TestAppendError(t *testing.T) {
	if got := string(AppendError(nil, 0, "invalid JSON")); got != `{"eventType":0,"error":"invalid JSON"}` {
		t.Fatalf("got %s", got)
	}
	if got := string(AppendMetaError([]byte("x"), "no backend available")); got != `x{"eventType":9,"error":"no backend available"}` {
		t.Fatalf("got %s", got)
	}
	if got := string(AppendError(nil, -7, `a"b\c`+"\n\x01\u2028")); got != `{"eventType":-7,"error":"a\"b\\c\n\u0001\u2028"}` {
		t.Fatalf("got %s", got)
	}
	reasons := []string{"", "plain", `quote " backslash \ slash /`, "ctl \x00\x1f\t\r\n\b\f", "utf8 é 😀 \u2028\u2029", "bad \xff\xc3 utf8 \xed\xa0\x80", "<html>&"}
	for _, r := range reasons {
		out := AppendError(nil, 42, r)
		if !json.Valid(out) || !strings.Contains(string(out), `"eventType":42`) {
			t.Fatalf("AppendError(%q) = %s: invalid", r, out)
		}
		var got struct {
			EventType int    `json:"eventType"`
			Error     string `json:"error"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		// encoding/json replaces each invalid byte with U+FFFD, as AppendError does.
		want, _ := json.Marshal(r)
		var wantStr string
		_ = json.Unmarshal(want, &wantStr)
		if got.EventType != 42 || got.Error != wantStr {
			t.Errorf("AppendError(%q) round trip = %+v; want %q", r, got, wantStr)
		}
		if ClassifyBackend(out).Kind != KindInvalid || ValidateEvent(out) == nil {
			t.Errorf("eventType 42 reply should not validate")
		}
	}
}

func TestAppendEcho(t *testing.T) {
	out := AppendEcho(nil, "Hello world?", false)
	if string(out) != `{"eventType":10,"message":"Hello world?"}` {
		t.Fatalf("got %s", out)
	}
	if m := ClassifyClient(out); m != (Message{Kind: KindEcho, EventType: Echo}) {
		t.Fatalf("classify %s = %+v", out, m)
	}
	out = AppendEcho(out[:0], "a\"\n\xff", true)
	if string(out) != `{"eventType":10,"message":"a\"\n\ufffd","broadcast":true}` {
		t.Fatalf("got %s", out)
	}
	if m := ClassifyClient(out); m != (Message{Kind: KindEcho, EventType: Echo, Broadcast: true}) {
		t.Fatalf("classify %s = %+v", out, m)
	}
}

func TestWordScanners(t *testing.T) {
	// Every length up to two words plus a tail, every position, every byte
	// value, each with a later decoy: pins the word-at-a-time tricks.
	for n := 1; n <= 17; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				b := bytes.Repeat([]byte{'a'}, n)
				b[pos] = byte(c)
				if pos+1 < n {
					b[n-1] = '"'
				}
				want := n
				for i, x := range b {
					if x == '"' || x == '\\' || x < 0x20 {
						want = i
						break
					}
				}
				if got := nextStringSpecial(b, 0); got != want {
					t.Fatalf("nextStringSpecial(%q) = %d; want %d", b, got, want)
				}
				want = n
				for i, x := range b {
					if bytes.IndexByte([]byte(`"{}[]`), x) >= 0 {
						want = i
						break
					}
				}
				if got := nextStructural(b, 0); got != want {
					t.Fatalf("nextStructural(%q) = %d; want %d", b, got, want)
				}
			}
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindInvalid: "invalid", KindEcho: "echo", KindMeta: "meta", KindServerEvent: "server-event", 9: "Kind(9)"} {
		if k.String() != want {
			t.Errorf("%d.String() = %q", k, k.String())
		}
	}
}

// TestTruncatedLiteral pins the workaround in validate: sonic reads a
// top-level literal past the end of the slice, so bytes after len(b) in the
// same array must not make a truncated literal valid.
func TestTruncatedLiteral(t *testing.T) {
	for _, tc := range []struct {
		full string
		n    int
	}{{" null", 2}, {"null", 3}, {"true", 1}, {" false ", 4}} {
		b := []byte(tc.full)[:tc.n]
		if m := ClassifyClient(b); m.Reason != "invalid JSON" {
			t.Errorf("ClassifyClient(%q) = %+v; want invalid JSON", b, m)
		}
		if _, err := SplitPublish(b); !errors.Is(err, ErrInvalidJSON) {
			t.Errorf("SplitPublish(%q) = %v; want ErrInvalidJSON", b, err)
		}
	}
	for _, s := range []string{"null", " true\n", "false"} {
		if m := ClassifyClient([]byte(s)); m.Reason != "message is not a JSON object" {
			t.Errorf("ClassifyClient(%q) = %+v", s, m)
		}
	}
}
