package codec

import "testing"

// The hot path must not allocate: the broker classifies every inbound frame.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool allocates under -race")
	}
	msg := []byte(`{"eventType":10,"message":"Hello world?","broadcast":true}`)
	login := []byte(`{"eventType":1,"username":"bob"}`)
	buf := make([]byte, 0, 256)
	checks := []struct {
		name string
		f    func()
	}{
		{"PeekEventType", func() {
			if et, err := PeekEventType(msg); et != Echo || err != nil {
				t.Fatal(et, err)
			}
		}},
		{"ClassifyClient", func() {
			if m := ClassifyClient(msg); m.Kind != KindEcho {
				t.Fatal(m)
			}
		}},
		{"ClassifyBackend", func() {
			if m := ClassifyBackend(msg); m.Kind != KindEcho {
				t.Fatal(m)
			}
		}},
		{"ValidateEvent", func() {
			if err := ValidateEvent(login); err != nil {
				t.Fatal(err)
			}
		}},
		{"AppendError", func() { buf = AppendError(buf[:0], 9, "no backend \"available\"\n") }},
		{"AppendEcho", func() { buf = AppendEcho(buf[:0], "Hello world?", true) }},
	}
	for _, c := range checks {
		if n := testing.AllocsPerRun(200, c.f); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", c.name, n)
		}
	}
}
