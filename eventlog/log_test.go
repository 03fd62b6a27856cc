package eventlog

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

func frame(i int) []byte { return []byte(fmt.Sprintf("<%d>", i)) }

// readAll reads from seq to Head in reads of at most max bytes and returns
// the concatenated bytes and the final cursor.
func readAll(l *Log, seq uint64, max int, want Want) ([]byte, uint64, int) {
	var out []byte
	total := 0
	for {
		runs, next, n := l.Read(seq, max, want, nil)
		for _, r := range runs {
			out = append(out, r...)
		}
		total += n
		if next == seq {
			return out, seq, total
		}
		seq = next
	}
}

func TestAppendReadInOrder(t *testing.T) {
	l := New(Config{MaxBytes: 1 << 20, SegmentBytes: 64})
	var want []byte
	for i := 0; i < 1000; i++ {
		f := frame(i)
		want = append(want, f...)
		if seq := l.Append(int64(i), Event{Frame: f}); seq != uint64(i+1) {
			t.Fatalf("seq %d, want %d", seq, i+1)
		}
	}
	for _, max := range []int{1, 7, 64, 1 << 20} {
		got, next, n := readAll(l, 1, max, nil)
		if !bytes.Equal(got, want) || next != 1001 || n != 1000 {
			t.Fatalf("max %d: %d events, next %d, bytes equal %v", max, n, next, bytes.Equal(got, want))
		}
	}
}

func TestReadRespectsBudgetAndTakesOneOversizedFrame(t *testing.T) {
	l := New(Config{MaxBytes: 1 << 20, SegmentBytes: 1024})
	l.Append(0, Event{Frame: make([]byte, 10)}, Event{Frame: make([]byte, 10)}, Event{Frame: make([]byte, 10)})
	runs, next, n := l.Read(1, 25, nil, nil)
	if len(runs) != 1 || len(runs[0]) != 20 || next != 3 || n != 2 {
		t.Fatalf("runs %d, next %d, n %d", len(runs), next, n)
	}
	runs, next, n = l.Read(3, 5, nil, nil)
	if len(runs) != 1 || len(runs[0]) != 10 || next != 4 || n != 1 {
		t.Fatalf("oversized: runs %d, next %d, n %d", len(runs), next, n)
	}
}

func TestTrimByBytesAndCursorFallingOff(t *testing.T) {
	l := New(Config{MaxBytes: 4 << 10, SegmentBytes: 1 << 10})
	for i := 0; i < 10000; i++ {
		l.Append(int64(i), Event{Frame: frame(i)})
	}
	if l.Bytes() > 4<<10+2<<10 {
		t.Fatalf("retained %d bytes, bound 4 KiB (+ one segment)", l.Bytes())
	}
	tail := l.Tail()
	if tail <= 1 || tail >= l.Head() {
		t.Fatalf("tail %d, head %d", tail, l.Head())
	}
	// A cursor behind the tail reads nothing: the caller sees it fell off.
	if runs, next, _ := l.Read(tail-1, 1<<20, nil, nil); len(runs) != 0 || next != tail-1 {
		t.Fatalf("trimmed read: %d runs, next %d", len(runs), next)
	}
	// From the tail, everything retained, in order.
	got, next, n := readAll(l, tail, 100, nil)
	var want []byte
	for i := int(tail - 1); i < 10000; i++ {
		want = append(want, frame(i)...)
	}
	if !bytes.Equal(got, want) || next != l.Head() || n != int(l.Head()-tail) {
		t.Fatalf("after trim: n %d next %d equal %v", n, next, bytes.Equal(got, want))
	}
}

func TestTrimByAge(t *testing.T) {
	l := New(Config{MaxBytes: 1 << 20, SegmentBytes: 64, MaxAge: 100})
	for i := 0; i < 100; i++ {
		l.Append(int64(i), Event{Frame: frame(i)})
	}
	l.Trim(1000)
	// Only the current segment may stay, however old.
	if got := l.Head() - l.Tail(); got > 20 {
		t.Fatalf("%d events retained past MaxAge", got)
	}
}

func TestSegmentsSealByCount(t *testing.T) {
	l := New(Config{MaxBytes: 1 << 20, SegmentBytes: 4 << 10})
	for i := 0; i < 5000; i++ {
		l.Append(0, Event{Frame: []byte{'x'}})
	}
	got, _, n := readAll(l, 1, 1<<20, nil)
	if n != 5000 || len(got) != 5000 {
		t.Fatalf("%d events, %d bytes", n, len(got))
	}
}

func TestBigFrameGetsItsOwnSegment(t *testing.T) {
	l := New(Config{MaxBytes: 1 << 20, SegmentBytes: 64})
	big := bytes.Repeat([]byte{'b'}, 1000)
	l.Append(0, Event{Frame: []byte("a")}, Event{Frame: big}, Event{Frame: []byte("c")})
	got, _, n := readAll(l, 1, 10, nil)
	if n != 3 || string(got) != "a"+string(big)+"c" {
		t.Fatalf("n %d, %d bytes", n, len(got))
	}
}

func TestTargetedAndFiltered(t *testing.T) {
	l := New(Config{MaxBytes: 1 << 20, SegmentBytes: 1 << 10})
	l.Append(0,
		Event{Frame: []byte("1"), Type: 1},
		Event{Frame: []byte("2"), Type: 2, User: "ann"},
		Event{Frame: []byte("3"), Type: 3},
		Event{Frame: []byte("4"), Type: 1, User: "bob"},
		Event{Frame: []byte("5"), Type: 2},
	)
	check := func(name string, want Want, exp string, runs int) {
		t.Helper()
		r, next, n := l.Read(1, 1<<20, want, nil)
		var got []byte
		for _, b := range r {
			got = append(got, b...)
		}
		if string(got) != exp || next != 6 || n != len(exp) || len(r) != runs {
			t.Fatalf("%s: got %q in %d runs (next %d, n %d), want %q in %d", name, got, len(r), next, n, exp, runs)
		}
	}
	check("anonymous", nil, "135", 3)
	check("ann", func(m Meta) bool { return m.User == "" || m.User == "ann" }, "1235", 2)
	check("backend", func(Meta) bool { return true }, "12345", 1)
	check("type 1", func(m Meta) bool { return m.User == "" && m.Type == 1 }, "1", 1)
	if m, ok := l.Meta(4); !ok || m.User != "bob" || m.Type != 1 {
		t.Fatalf("meta: %+v %v", m, ok)
	}
}

func TestSeqAfter(t *testing.T) {
	l := New(Config{MaxBytes: 1 << 20, SegmentBytes: 32})
	if got := l.SeqAfter(5); got != 1 {
		t.Fatalf("empty: %d", got)
	}
	for i := 0; i < 100; i++ {
		l.Append(int64(i*10), Event{Frame: frame(i)}) // seq i+1 at time 10i
	}
	for _, tc := range []struct {
		t    int64
		want uint64
	}{{-5, 1}, {0, 1}, {1, 2}, {10, 2}, {455, 47}, {990, 100}, {991, 101}, {5000, 101}} {
		if got := l.SeqAfter(tc.t); got != tc.want {
			t.Fatalf("SeqAfter(%d) = %d, want %d", tc.t, got, tc.want)
		}
	}
	// Events in one segment per append, the newest segment half full.
	l2 := New(Config{MaxBytes: 1 << 20, SegmentBytes: 4 << 10})
	l2.Append(100, Event{Frame: []byte("a")})
	if got := l2.SeqAfter(50); got != 1 {
		t.Fatalf("all recent: %d", got)
	}
	if got := l2.SeqAfter(150); got != 2 {
		t.Fatalf("none recent: %d", got)
	}
	if ts, ok := l.Time(47); !ok || ts != 460 {
		t.Fatalf("Time(47) = %d %v", ts, ok)
	}
}

// Readers run while appenders add and trim: each reader sees every event
// it reads whole, in order, and either keeps up or sees its cursor fall
// behind Tail. Run with -race.
func TestConcurrentAppendAndRead(t *testing.T) {
	l := New(Config{MaxBytes: 64 << 10, SegmentBytes: 4 << 10})
	const writers, per = 4, 5000
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				// A batch of two: they must stay adjacent.
				l.Append(int64(i), Event{Frame: []byte(fmt.Sprintf("[%d:%d]", w, i))}, Event{Frame: []byte(fmt.Sprintf("(%d:%d)", w, i))})
			}
		}()
	}
	done := make(chan struct{})
	var rg sync.WaitGroup
	for r := 0; r < 3; r++ {
		rg.Add(1)
		go func() {
			defer rg.Done()
			seq := l.Head()
			last := map[string]int{}
			var buf []byte
			resync := false // the tail may split a batch: skip to a pair
			for {
				runs, next, _ := l.Read(seq, 512, nil, nil)
				if next == seq {
					if seq < l.Tail() {
						seq = l.Tail() // fell off: start again from the tail
						buf = buf[:0]
						clear(last)
						resync = true
						continue
					}
					select {
					case <-done:
						return
					default:
						continue
					}
				}
				for _, b := range runs {
					buf = append(buf, b...)
				}
				seq = next
				if resync {
					i := bytes.IndexByte(buf, '[')
					if i < 0 {
						buf = buf[:0]
						continue
					}
					buf, resync = buf[i:], false
				}
				// Parse complete "[w:i](w:i)" pairs: per writer, i increases.
				for len(buf) > 0 && bytes.IndexByte(buf, ')') >= 0 {
					var w, i, w2, i2 int
					if _, err := fmt.Sscanf(string(buf), "[%d:%d](%d:%d)", &w, &i, &w2, &i2); err != nil {
						t.Errorf("garbled stream %.40q: %v", buf, err)
						return
					}
					if w != w2 || i != i2 {
						t.Errorf("batch split: [%d:%d](%d:%d)", w, i, w2, i2)
						return
					}
					key := fmt.Sprint(w)
					if p, ok := last[key]; ok && i <= p {
						t.Errorf("writer %d: %d after %d", w, i, p)
						return
					}
					last[key] = i
					buf = buf[len(fmt.Sprintf("[%d:%d](%d:%d)", w, i, w, i)):]
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	rg.Wait()
	if got := l.Head() - 1; got != writers*per*2 {
		t.Fatalf("head %d, want %d", got, writers*per*2)
	}
}

func BenchmarkAppend(b *testing.B) {
	l := New(Config{})
	f := make([]byte, 130)
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l.Append(int64(i), Event{Frame: f, Type: 1})
	}
}

func BenchmarkRead(b *testing.B) {
	l := New(Config{})
	f := make([]byte, 130)
	for i := 0; i < 10000; i++ {
		l.Append(int64(i), Event{Frame: f, Type: 1})
	}
	runs := make([][]byte, 0, 8)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		runs, _, _ = l.Read(l.Tail()+uint64(i%1000), 16<<10, nil, runs[:0])
	}
}

// altFrame is a test alternate: the sequence number before the frame.
func altFrame(dst []byte, seq uint64, frame []byte) []byte {
	dst = fmt.Appendf(dst, "%d:", seq)
	return append(dst, frame...)
}

// seqVariant is altFrame as a log variant (with no Lazy: Build serves
// events appended while it was off).
var seqVariant = Variant{Build: altFrame, Extra: 8}

// Alternate frames: stored while their variant is on, built on demand for
// events appended before, contiguous where stored, filtered like plain ones.
func TestAltFrames(t *testing.T) {
	l := New(Config{MaxBytes: 1 << 20, SegmentBytes: 64, Variants: []Variant{seqVariant}})
	for i := 0; i < 30; i++ {
		if i == 12 {
			l.SetVariant(1, true)
		}
		user := ""
		if i%7 == 3 {
			user = "ann"
		}
		l.Append(0, Event{Frame: frame(i), User: user})
	}
	var want, wantAnn []byte
	for i := 0; i < 30; i++ {
		a := altFrame(nil, uint64(i+1), frame(i))
		if i%7 != 3 {
			want = append(want, a...)
		}
		wantAnn = append(wantAnn, a...)
	}
	for _, max := range []int{1, 10, 1 << 20} {
		for name, tc := range map[string]struct {
			want Want
			exp  []byte
		}{
			"anonymous": {nil, want},
			"ann":       {func(m Meta) bool { return m.User == "" || m.User == "ann" }, wantAnn},
		} {
			var got, scratch []byte
			var runs [][]byte
			seq := uint64(1)
			for {
				var next uint64
				runs, scratch, next, _, _ = l.ReadVariant(1, seq, max, tc.want, runs[:0], scratch)
				for _, r := range runs {
					got = append(got, r...)
				}
				if next == seq {
					break
				}
				seq = next
			}
			if !bytes.Equal(got, tc.exp) {
				t.Fatalf("max %d %s:\n got %q\nwant %q", max, name, got, tc.exp)
			}
		}
	}
	// Plain reads are unaffected.
	got, _, n := readAll(l, 1, 1<<20, func(Meta) bool { return true })
	var plain []byte
	for i := 0; i < 30; i++ {
		plain = append(plain, frame(i)...)
	}
	if n != 30 || !bytes.Equal(got, plain) {
		t.Fatalf("plain after alt: %q", got)
	}
}

func TestPos(t *testing.T) {
	l := New(Config{MaxBytes: 4 << 10, SegmentBytes: 1 << 10})
	var total int64
	want := map[uint64]int64{}
	for i := 0; i < 2000; i++ {
		f := frame(i)
		want[uint64(i+1)] = total
		total += int64(len(f))
		l.Append(0, Event{Frame: f})
	}
	if p, ok := l.Pos(l.Head()); !ok || p != total {
		t.Fatalf("Pos(head) = %d %v, want %d", p, ok, total)
	}
	for seq := l.Tail(); seq < l.Head(); seq++ {
		if p, ok := l.Pos(seq); !ok || p != want[seq] {
			t.Fatalf("Pos(%d) = %d %v, want %d", seq, p, ok, want[seq])
		}
	}
	if _, ok := l.Pos(1); ok {
		t.Fatal("Pos of a trimmed event")
	}
}

func TestAppendAtMirrorsNumbersAndStepsOverGaps(t *testing.T) {
	l := New(Config{MaxBytes: 1 << 20, SegmentBytes: 64})
	if err := l.AppendAt(1, 1, Event{Frame: frame(1)}, Event{Frame: frame(2)}); err != nil {
		t.Fatal(err)
	}
	// 3..9 are someone else's numbers (another subject, purged): a gap.
	if err := l.AppendAt(2, 10, Event{Frame: frame(10)}); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendAt(3, 11, Event{Frame: frame(11)}); err != nil {
		t.Fatal(err)
	}
	if h := l.Head(); h != 12 {
		t.Fatalf("head %d, want 12", h)
	}
	got, next, n := readAll(l, 1, 1<<20, nil)
	if want := "<1><2><10><11>"; string(got) != want || next != 12 || n != 4 {
		t.Fatalf("read %q next %d n %d", got, next, n)
	}
	// A cursor inside the gap (a reader that joined at Head 3) reads on.
	got, next, _ = readAll(l, 5, 1<<20, nil)
	if string(got) != "<10><11>" || next != 12 {
		t.Fatalf("from the gap: %q next %d", got, next)
	}
	if _, ok := l.Time(5); ok {
		t.Fatal("a gap number reports a time")
	}
	if m, ok := l.Meta(10); !ok || m.User != "" {
		t.Fatal("event 10 not retained")
	}
	if ts, ok := l.Time(10); !ok || ts != 2 {
		t.Fatalf("time of 10: %d %v", ts, ok)
	}
}

func TestAppendAtRefusesNumbersBelowHead(t *testing.T) {
	l := New(Config{})
	if err := l.AppendAt(0, 5, Event{Frame: frame(5)}); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{1, 4, 5} { // a gap number, the gap's end, a duplicate
		if err := l.AppendAt(0, seq, Event{Frame: frame(int(seq))}); err != ErrSeqBehind {
			t.Fatalf("AppendAt(%d): %v, want ErrSeqBehind", seq, err)
		}
	}
	got, _, n := readAll(l, 1, 1<<20, nil)
	if string(got) != "<5>" || n != 1 {
		t.Fatalf("read %q (%d events): a refused append left something", got, n)
	}
	// Append goes on from Head after AppendAt.
	if seq := l.Append(0, Event{Frame: frame(6)}); seq != 6 {
		t.Fatalf("Append after AppendAt: seq %d, want 6", seq)
	}
}

func TestAppendAtGapAtTheEnd(t *testing.T) {
	l := New(Config{})
	l.Append(0, Event{Frame: frame(1)})
	if err := l.AppendAt(0, 8); err != nil {
		t.Fatal(err)
	}
	if l.Head() != 8 {
		t.Fatalf("head %d, want 8", l.Head())
	}
	runs, next, n := l.Read(2, 1<<20, nil, nil)
	if len(runs) != 0 || next != 8 || n != 0 {
		t.Fatalf("trailing gap: runs %d next %d n %d, want next 8", len(runs), next, n)
	}
	l.AppendAt(0, 8, Event{Frame: frame(8)})
	got, next, _ := readAll(l, 2, 1<<20, nil)
	if string(got) != "<8>" || next != 9 {
		t.Fatalf("after trailing gap: %q next %d", got, next)
	}
}

func TestTrimAcrossGapKeepsCursorsInTheGap(t *testing.T) {
	// Segments of 64 bytes, a 4 KiB log: many gaps, then trimming.
	l := New(Config{MaxBytes: 4 << 10, SegmentBytes: 64})
	seq := uint64(1)
	for i := 0; i < 400; i++ {
		if err := l.AppendAt(int64(i), seq, Event{Frame: frame(int(seq))}); err != nil {
			t.Fatal(err)
		}
		seq += uint64(1 + i%3) // gaps of 0, 1 and 2 numbers
	}
	tail := l.Tail()
	if tail <= 1 {
		t.Fatal("nothing trimmed")
	}
	// Below Tail: not retained (the reader lost events and must be told).
	if runs, next, n := l.Read(tail-1, 1<<20, nil, nil); len(runs) != 0 || next != tail-1 || n != 0 {
		t.Fatalf("below tail: next %d n %d", next, n)
	}
	// From Tail on, every retained event exactly once, in order.
	got, next, n := readAll(l, tail, 1<<20, nil)
	if next != l.Head() {
		t.Fatalf("next %d, head %d", next, l.Head())
	}
	var want []byte
	cnt := 0
	for s := tail; s < l.Head(); s++ {
		if _, ok := l.Meta(s); ok {
			want = append(want, frame(int(s))...)
			cnt++
		}
	}
	if !bytes.Equal(got, want) || n != cnt || cnt == 0 {
		t.Fatalf("read %d events, want %d", n, cnt)
	}
}

// A cursor in a gap before the oldest segment is not behind: SeqAfter,
// which the broker compares cursors with to find slow readers, must not
// put it below the first event's number.
func TestSeqAfterWithLeadingGap(t *testing.T) {
	l := New(Config{})
	l.AppendAt(100, 6, Event{Frame: frame(6)})
	if got := l.SeqAfter(50); got > 1 {
		t.Fatalf("SeqAfter(before every event) = %d: a reader at 1 (in the gap) would look behind", got)
	}
	if got := l.SeqAfter(200); got != 7 {
		t.Fatalf("SeqAfter(after every event) = %d, want head 7", got)
	}
}

// Gaps cost nothing: numbers spaced like a cluster's (message S, event i
// -> S<<10+i) share segments, and filtered and budgeted reads step over
// them.
func TestSparseNumbersShareSegments(t *testing.T) {
	l := New(Config{MaxBytes: 1 << 20, SegmentBytes: 64 << 10})
	var want []byte
	for s := uint64(1); s <= 500; s++ {
		ev := Event{Frame: frame(int(s))}
		if s%5 == 0 {
			ev.User = "bob"
		} else {
			want = append(want, ev.Frame...)
		}
		if err := l.AppendAt(int64(s), s<<10, ev); err != nil {
			t.Fatal(err)
		}
	}
	if b := l.Bytes(); b > 200<<10 {
		t.Fatalf("500 sparse events hold %d bytes: a segment per gap?", b)
	}
	for _, max := range []int{1, 10, 1 << 20} {
		got, next, n := readAll(l, 1, max, nil)
		if !bytes.Equal(got, want) || next != l.Head() || n != 400 {
			t.Fatalf("max %d: %d events, next %d (head %d)", max, n, next, l.Head())
		}
	}
	// A targeted reader (slow path) gets bob's events too.
	got, _, n := readAll(l, 3<<10+1, 1<<20, func(m Meta) bool { return true })
	if n != 497 || !bytes.HasPrefix(got, frame(4)) {
		t.Fatalf("want-all from inside a gap: %d events, starts %q", n, got[:min(len(got), 8)])
	}
	if _, ok := l.Meta(5<<10 + 1); ok {
		t.Fatal("a gap number is retained")
	}
	if m, ok := l.Meta(5 << 10); !ok || m.User != "bob" {
		t.Fatalf("Meta(5<<10) = %v %v", m, ok)
	}
	// Just after the last event older than 250 (249<<10), not the next
	// event's own number: a cursor in the gap has read everything older.
	if got := l.SeqAfter(250); got != 249<<10+1 {
		t.Fatalf("SeqAfter(250) = %d, want %d", got, 249<<10+1)
	}
}

// Reset: a new history under a new epoch. Nothing before it is retained,
// a reader at the old Head stays valid, numbers never go backwards, and
// alternate frames name the epoch of the segment their event is in.
func TestResetStartsANewHistory(t *testing.T) {
	altOf := func(epoch string) []Variant {
		return []Variant{{Build: func(dst []byte, seq uint64, frame []byte) []byte {
			dst = fmt.Appendf(dst, "%s/%d:", epoch, seq)
			return append(dst, frame...)
		}, Extra: 12}}
	}
	l := New(Config{MaxBytes: 1 << 20, SegmentBytes: 64, Epoch: "one", Variants: altOf("one")})
	for i := 1; i <= 5; i++ {
		l.Append(0, Event{Frame: frame(i)})
	}
	// A reader still holding the old index builds old events' alternates
	// with the old epoch, whatever happens after.
	oldRuns, oldScratch, _, _, _ := l.ReadVariant(1, 4, 1<<20, nil, nil, nil)
	if err := l.Reset("two", 3, altOf("two")); err != ErrSeqBehind {
		t.Fatalf("Reset below Head: %v, want ErrSeqBehind", err)
	}
	if l.Epoch() != "one" || l.Head() != 6 {
		t.Fatal("a refused Reset changed the log")
	}
	if err := l.Reset("two", 6, altOf("two")); err != nil {
		t.Fatal(err)
	}
	if l.Epoch() != "two" || l.Head() != 6 || l.Tail() != 6 || l.Bytes() != 0 {
		t.Fatalf("after Reset: epoch %s head %d tail %d bytes %d", l.Epoch(), l.Head(), l.Tail(), l.Bytes())
	}
	if runs, next, n := l.Read(2, 1<<20, nil, nil); len(runs) != 0 || next != 2 || n != 0 {
		t.Fatalf("an event from before the Reset is still readable: next %d n %d", next, n)
	}
	if _, ok := l.Pos(2); ok {
		t.Fatal("Pos of an event from before the Reset")
	}
	if err := l.AppendAt(0, 20, Event{Frame: frame(20)}); err != nil {
		t.Fatal(err)
	}
	// The reader that was at the old Head reads on across the gap.
	got, next, _ := readAll(l, 6, 1<<20, nil)
	if string(got) != "<20>" || next != 21 {
		t.Fatalf("from the old head: %q next %d", got, next)
	}
	runs, _, _, _, _ := l.ReadVariant(1, 6, 1<<20, nil, nil, nil)
	if len(runs) != 1 || string(runs[0]) != "two/20:<20>" {
		t.Fatalf("alternate after Reset: %q", runs)
	}
	if string(bytes.Join(oldRuns, nil)) != "one/4:<4>one/5:<5>" || len(oldScratch) == 0 {
		t.Fatalf("alternates read before the Reset: %q", oldRuns)
	}
	// An empty log placed mid-way: its history starts at its first number.
	m := New(Config{})
	if err := m.Reset("mid", 9<<10, nil); err != nil {
		t.Fatal(err)
	}
	if m.Tail() != 9<<10 || m.Head() != 9<<10 {
		t.Fatalf("mid-way: tail %d head %d", m.Tail(), m.Head())
	}
}

// Variants: each stored only while on (and counted in Bytes),
// built with Lazy for events appended before, with the size of the plain
// frames read reported beside them.
func TestVariants(t *testing.T) {
	upper := func(dst []byte, _ uint64, f []byte) []byte { return append(dst, bytes.ToUpper(f)...) }
	lazy := func(dst []byte, _ uint64, f []byte) []byte { return append(append(dst, '~'), f...) }
	l := New(Config{MaxBytes: 1 << 20, SegmentBytes: 64,
		Variants: []Variant{seqVariant, {Build: upper, Lazy: lazy, Extra: 1}}})
	if l.Variants() != 2 {
		t.Fatalf("%d variants, want 2", l.Variants())
	}
	for i := 0; i < 10; i++ {
		l.Append(0, Event{Frame: frame(i)})
	}
	before := l.Bytes()
	l.SetVariant(2, true)
	for i := 10; i < 20; i++ {
		l.Append(0, Event{Frame: frame(i)})
	}
	if l.Bytes() <= before {
		t.Fatal("the stored variant is not counted in Bytes")
	}
	var want []byte
	plainLen := 0
	for i := 0; i < 20; i++ {
		if i < 10 {
			want = lazy(want, 0, frame(i))
		} else {
			want = upper(want, 0, frame(i))
		}
		plainLen += len(frame(i))
	}
	var got, scratch []byte
	var runs [][]byte
	seq, plain := uint64(1), 0
	for {
		var next uint64
		var p int
		runs, scratch, next, _, p = l.ReadVariant(2, seq, 16, nil, runs[:0], scratch)
		for _, r := range runs {
			got = append(got, r...)
		}
		plain += p
		if next == seq {
			break
		}
		seq = next
	}
	if !bytes.Equal(got, want) || plain != plainLen {
		t.Fatalf("variant 2:\n got %q (plain %d)\nwant %q (plain %d)", got, plain, want, plainLen)
	}
	// The seq alternate is not stored (never turned on): built on read.
	runs, _, _, n, _ := l.ReadVariant(1, 1, 1<<20, nil, nil, nil)
	if n != 20 || !bytes.HasPrefix(runs[0], []byte("1:")) {
		t.Fatalf("variant 1: %d events, %q", n, runs)
	}
}
