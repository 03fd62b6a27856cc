package codec

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/bytedance/sonic"
)

// benchMessages: a typical ~60 byte echo, and 4 KiB messages with eventType
// first (as JSON.stringify of a literal writes it) and last (worst case for a
// peek, which must skip everything before it).
var benchMessages = func() []struct {
	name string
	msg  []byte
} {
	small := `{"eventType":10,"message":"Hello world? 0123456789abcdef"}`
	pad := func() string {
		var sb strings.Builder
		sb.WriteString(`"username":"bob","file":{"name":"photo.png","tags":[`)
		for i := 0; sb.Len() < 3900; i++ {
			sb.WriteString(`{"k":"tag-` + strconv.Itoa(i) + `","v":[1,2.5,true,null],"s":"a \"quoted\" value"},`)
		}
		sb.WriteString(`{}]}`)
		return sb.String()
	}()
	first := `{"eventType":10,` + pad + `,"message":"` + strings.Repeat("x", 4096-len(pad)-40) + `"}`
	last := `{` + pad + `,"message":"` + strings.Repeat("x", 4096-len(pad)-40) + `","eventType":10}`
	return []struct {
		name string
		msg  []byte
	}{{"small", []byte(small)}, {"4KiB-first", []byte(first)}, {"4KiB-last", []byte(last)}}
}()

func BenchmarkPeekEventType(b *testing.B) {
	for _, bm := range benchMessages {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.msg)))
			for b.Loop() {
				if _, err := PeekEventType(bm.msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkClassifyClient(b *testing.B) {
	for _, bm := range benchMessages {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.msg)))
			for b.Loop() {
				ClassifyClient(bm.msg)
			}
		})
	}
}

func BenchmarkClassifyBackend(b *testing.B) {
	for _, bm := range benchMessages {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.msg)))
			for b.Loop() {
				ClassifyBackend(bm.msg)
			}
		})
	}
}

// benchEvent is what a full decode of the benchmark messages would produce.
type benchEvent struct {
	EventType int             `json:"eventType"`
	Message   string          `json:"message"`
	Broadcast *bool           `json:"broadcast"`
	Error     *string         `json:"error"`
	Username  string          `json:"username"`
	File      json.RawMessage `json:"file"`
}

// BenchmarkFullDecode is the baseline PeekEventType and ClassifyClient
// avoid: decoding the whole message to read one field.
func BenchmarkFullDecode(b *testing.B) {
	for _, bm := range benchMessages {
		b.Run("std-map/"+bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.msg)))
			for b.Loop() {
				var m map[string]any
				if err := json.Unmarshal(bm.msg, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("sonic-struct/"+bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.msg)))
			for b.Loop() {
				var ev benchEvent
				if err := sonic.Unmarshal(bm.msg, &ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkValidate compares the codec's first pass (UTF-8 plus sonic's
// structural check; strict strings come later, in the walk) with sonic.Valid
// alone and encoding/json's Valid.
func BenchmarkValidate(b *testing.B) {
	for _, bm := range benchMessages {
		b.Run("codec/"+bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.msg)))
			for b.Loop() {
				validate(bm.msg)
			}
		})
		b.Run("sonic.Valid/"+bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.msg)))
			for b.Loop() {
				sonic.Valid(bm.msg)
			}
		})
		b.Run("std.Valid/"+bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.msg)))
			for b.Loop() {
				json.Valid(bm.msg)
			}
		})
	}
}

func BenchmarkSplitPublish(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("[")
	for i := range 100 {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`{"eventType":` + strconv.Itoa(i%8+1) + `,"username":"user-` + strconv.Itoa(i) + `","file":{"name":"f.png","size":123},"bucket":"b"}`)
	}
	sb.WriteString("]")
	body := []byte(sb.String())
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		evs, err := SplitPublish(body)
		if err != nil || len(evs) != 100 {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendError(b *testing.B) {
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendError(buf[:0], MetaRequest, "no backend available")
	}
}
