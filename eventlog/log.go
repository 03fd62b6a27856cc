package eventlog

import (
	"crypto/rand"
	"encoding/hex"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for Config fields left at zero.
const (
	// DefaultMaxBytes is the retained size of the log (8 MiB): a few
	// seconds of a saturating flood, or tens of thousands of ordinary
	// events, held once for every connection.
	DefaultMaxBytes = 8 << 20
	// DefaultSegmentBytes is the size of one segment of frame bytes.
	DefaultSegmentBytes = 256 << 10
)

// minEventBytes is the average frame size a segment's metadata is sized
// for: a segment holds at most SegmentBytes/minEventBytes events, so a log
// of tiny events seals segments by count before their bytes fill up.
const minEventBytes = 48

// Config sizes a Log.
type Config struct {
	// MaxBytes bounds the retained frames and their metadata; zero means
	// DefaultMaxBytes. The oldest segments go first.
	MaxBytes int
	// MaxAge drops segments whose newest event is older than this; zero
	// keeps events until MaxBytes pushes them out.
	MaxAge time.Duration
	// Epoch names the log (see Log.Epoch); zero means a random one.
	Epoch string
	// Variants are alternate encodings of every event, numbered from 1
	// (the plain frames are variant 0). Each is stored next to the plain
	// frames while SetVariant turns it on, so that the readers who want
	// it (ReadVariant) share one copy, as with plain frames. The broker's
	// add the sequence number, deflate, or both.
	Variants []Variant
	// SegmentBytes is the frame capacity of one segment; zero means
	// DefaultSegmentBytes, or MaxBytes/8 if that is smaller. A frame larger
	// than a segment gets a segment of its own.
	SegmentBytes int
}

// Variant is one alternate encoding of the log's events (see
// Config.Variants).
type Variant struct {
	// Build appends the variant's frame for an event (given its number
	// and plain frame) to dst and returns it; it must be set. It may add
	// at most Extra bytes to a frame. It runs on the appender, once per
	// event, while the variant is on.
	Build func(dst []byte, seq uint64, frame []byte) []byte
	Extra int
	// Lazy builds the frame a reader gets for an event appended while the
	// variant was off (none stored); nil means Build. A variant whose
	// Build is costly (compression) can answer with a cheaper equivalent
	// here, so that readers never pay Build per read.
	Lazy func(dst []byte, seq uint64, frame []byte) []byte
}

// lazy is the builder for events without a stored frame.
func (v *Variant) lazy() func(dst []byte, seq uint64, frame []byte) []byte {
	if v.Lazy != nil {
		return v.Lazy
	}
	return v.Build
}

// Event is one event to append.
type Event struct {
	// Frame is the encoded frame, copied into the log.
	Frame []byte
	// Type is the event type, for connection filters.
	Type uint8
	// User, when set, targets the event (see Meta.User).
	User string
}

// Meta describes one retained event without its bytes.
type Meta struct {
	// Type is the event type given at append.
	Type uint8
	// User is the target user; "" means the event is for everyone.
	User string
}

// Log is a bounded, append-only sequence of framed events. See the package
// documentation for its concurrency contract.
type Log struct {
	maxBytes int
	maxAge   int64
	segBytes int
	// epoch and vars change only on Reset; a segment keeps the variants
	// it was created with, so its events' alternate frames name its own
	// epoch. vars[k-1] is variant k.
	epoch atomic.Pointer[string]
	vars  []Variant     // appender only (under mu)
	on    []atomic.Bool // on[k-1]: variant k is stored (SetVariant)
	tmp   []byte        // appender scratch for alternate frames

	mu    sync.Mutex // appenders and trimming
	cur   *segment
	bytes int // retained, counting each segment's full capacity

	segs atomic.Pointer[[]*segment] // oldest first; replaced, never mutated
	head atomic.Uint64              // next sequence number
	tail atomic.Uint64              // oldest retained sequence number
	size atomic.Int64               // mirror of bytes for readers
	// pos is the total frame bytes ever appended (see Pos); written
	// (appender only) before head.
	pos     atomic.Int64
	written int64 // appender's running total
}

// segment holds consecutive events. Slots below n are immutable once
// published; the appender writes only above n, under Log.mu.
type segment struct {
	base  uint64 // sequence number of the first slot
	pos   int64  // stream position of its first event (see Log.Pos)
	vars  []Variant
	plain view
	// altv[k-1] holds variant k's frames of the events from its from
	// on; nil until the first one (see Config.Variants).
	altv  []atomic.Pointer[view]
	times []int64 // append time of each event, unix nanos
	types []uint8
	// targeted[i] counts targeted events among 0..i, so a reader can tell
	// in O(1) whether a range holds any.
	targeted []uint32
	// users is nil until the segment holds a targeted event; it is set
	// once, atomically, because readers of published slots may look at
	// it while the appender fills later ones.
	users atomic.Pointer[[]string]
	// seqs, the number of each slot, is nil while the numbers are
	// consecutive from base (always, on a single node); AppendAt across a
	// gap sets it once, like users.
	seqs  atomic.Pointer[[]uint64]
	count int // events added, published or not (appender only)
	n     atomic.Int32
	cost  int
}

// view is one encoding of a segment's events: frames back to back in buf
// (whose length never changes), ends[i] the end offset of event i. A view
// may start at event from (the alternate view: events before it have
// none); ends is indexed by event all the same.
type view struct {
	buf  []byte
	ends []uint32
	from int
	used int // bytes of buf in use (appender only)
}

// New returns an empty log whose first event will have sequence number 1.
func New(cfg Config) *Log {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = min(DefaultSegmentBytes, max(cfg.MaxBytes/8, 4<<10))
	}
	if cfg.Epoch == "" {
		var e [8]byte
		_, _ = rand.Read(e[:])
		cfg.Epoch = hex.EncodeToString(e[:])
	}
	l := &Log{maxBytes: cfg.MaxBytes, maxAge: int64(cfg.MaxAge), segBytes: cfg.SegmentBytes}
	l.vars = append([]Variant(nil), cfg.Variants...)
	l.on = make([]atomic.Bool, len(l.vars))
	l.epoch.Store(&cfg.Epoch)
	l.head.Store(1)
	l.tail.Store(1)
	empty := []*segment{}
	l.segs.Store(&empty)
	return l
}

// Epoch identifies this log: sequence numbers from another epoch (another
// process, another log) mean nothing here.
func (l *Log) Epoch() string { return *l.epoch.Load() }

// Head is the sequence number the next appended event will get: every
// event below it is readable (or already trimmed).
func (l *Log) Head() uint64 { return l.head.Load() }

// Pos is the byte position of event seq in the stream of every frame ever
// appended (the bytes appended before it), and false if seq is trimmed.
// Pos(Head()) is the total. Positions measure how far, in bytes, one
// cursor is behind another.
func (l *Log) Pos(seq uint64) (int64, bool) {
	if seq < l.tail.Load() {
		return 0, false
	}
	head := l.head.Load()
	if seq >= head {
		return l.pos.Load(), seq == head
	}
	// A gap's position is that of the next event.
	s, i := locate(*l.segs.Load(), seq)
	if s == nil || s.seqAt(i) >= head {
		return l.pos.Load(), true
	}
	return s.pos + int64(s.plain.start(i)), true
}

// Tail is the oldest sequence number a reader may still be at: every
// number from Tail to Head names a retained event or is a gap (see
// AppendAt). Tail == Head when nothing is retained.
func (l *Log) Tail() uint64 { return l.tail.Load() }

// Bytes is the memory the log retains, frames and metadata.
func (l *Log) Bytes() int64 { return l.size.Load() }

// Append adds events back to back, atomically for readers of Head, and
// returns the sequence number of the first. now is the append time
// (unix nanos) recorded with each.
func (l *Log) Append(now int64, evs ...Event) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := l.head.Load()
	l.appendLocked(now, first, evs)
	return first
}

// AppendAt is Append with the first sequence number chosen by the caller,
// for a log that mirrors another numbering (a cluster's shared stream). seq
// must be at least Head; if it is above, the numbers from Head to seq-1
// become a gap: they name no event, Read steps over them, and Time and
// Meta report them as not retained. A seq below Head (an event already
// appended, or a number that is part of a gap) returns ErrSeqBehind and
// appends nothing, so a redelivered event is never appended twice. With
// no events, AppendAt only moves Head to seq (a gap at the end).
func (l *Log) AppendAt(now int64, seq uint64, evs ...Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	head := l.head.Load()
	if seq < head {
		return ErrSeqBehind
	}
	if len(evs) == 0 {
		l.head.Store(seq)
		return nil
	}
	l.appendLocked(now, seq, evs)
	return nil
}

// Reset starts a new history, for a log that mirrors a numbering which
// was replaced (a cluster's stream deleted and created again) or which
// begins mid-way (a node that joins a running cluster): every retained
// event is dropped, Epoch becomes epoch, and Head and Tail both become
// seq, so no number below seq is retained any more (a reader still below
// it has lost events, as after a trim). seq must be at least Head
// (ErrSeqBehind otherwise, and nothing changes): numbers never go
// backwards, so a reader that was at Head stays where it is. vars
// replace Config.Variants for the events appended from now on, since
// alternate frames may name the epoch; the events appended before keep
// their own. Their number must not change (it panics otherwise): readers
// name them.
func (l *Log) Reset(epoch string, seq uint64, vars []Variant) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(vars) != len(l.vars) {
		panic("eventlog: Reset with a different number of variants")
	}
	if seq < l.head.Load() {
		return ErrSeqBehind
	}
	l.epoch.Store(&epoch)
	l.vars = append([]Variant(nil), vars...)
	l.cur = nil // the next event starts a segment with the new variants
	// Head, then Tail, then the segments (as in trim): a reader that sees
	// the empty index sees the new Tail, and one that still sees the old
	// index finds nothing from the old Head on and moves to the new Head.
	l.head.Store(seq)
	l.tail.Store(seq)
	empty := []*segment{}
	l.segs.Store(&empty)
	l.bytes = 0
	l.size.Store(0)
	return nil
}

// appendLocked adds evs from seq first on; l.mu is held.
func (l *Log) appendLocked(now int64, first uint64, evs []Event) {
	seq := first
	for _, ev := range evs {
		s := l.cur
		if s == nil || !s.fits(len(ev.Frame)) {
			s = l.newSegment(seq, len(ev.Frame))
		}
		s.add(ev, now, seq)
		l.written += int64(len(ev.Frame))
		for k := range s.vars {
			if l.on[k].Load() || s.altv[k].Load() != nil {
				l.addVariant(s, k, seq, ev.Frame)
			}
		}
		seq++
	}
	if l.cur != nil {
		l.cur.publish()
	}
	// Readers bound every read by Head, so a batch becomes visible at once.
	l.pos.Store(l.written)
	l.head.Store(seq)
	l.trim(now)
	l.size.Store(int64(l.bytes))
}

// newSegment seals the current segment and starts one at seq.
func (l *Log) newSegment(seq uint64, frame int) *segment {
	if l.cur != nil {
		l.cur.publish()
	}
	nb := max(l.segBytes, frame)
	slots := max(l.segBytes/minEventBytes, 1)
	if frame > l.segBytes {
		slots = 1
	}
	s := &segment{
		base:     seq,
		pos:      l.written,
		vars:     l.vars,
		altv:     make([]atomic.Pointer[view], len(l.vars)),
		plain:    view{buf: make([]byte, nb), ends: make([]uint32, slots)},
		times:    make([]int64, slots),
		types:    make([]uint8, slots),
		targeted: make([]uint32, slots),
	}
	s.cost = nb + slots*(8+4+8+1+4)
	l.cur = s
	l.bytes += s.cost
	old := *l.segs.Load()
	next := make([]*segment, len(old), len(old)+1)
	copy(next, old)
	next = append(next, s)
	l.segs.Store(&next)
	l.size.Store(int64(l.bytes))
	return s
}

// trim drops the oldest segments over the byte bound or past MaxAge. The
// current segment always stays.
func (l *Log) trim(now int64) {
	segs := *l.segs.Load()
	drop := 0
	bytes := l.bytes
	for drop < len(segs)-1 {
		s := segs[drop]
		n := int(s.n.Load())
		old := l.maxAge > 0 && n > 0 && now-s.times[n-1] > l.maxAge
		if bytes <= l.maxBytes && !old {
			break
		}
		bytes -= s.cost
		drop++
	}
	if drop == 0 {
		return
	}
	next := append([]*segment(nil), segs[drop:]...)
	l.bytes = bytes
	// The new tail is the end of what was dropped, not next[0].base: a
	// gap between them lost nothing, so a cursor in it is still good.
	last := segs[drop-1]
	l.tail.Store(last.seqAt(int(last.n.Load())-1) + 1) // a sealed segment holds at least one event
	l.segs.Store(&next)
	l.size.Store(int64(bytes))
}

// Trim applies MaxAge without an append, for a log that has gone quiet.
func (l *Log) Trim(now int64) {
	l.mu.Lock()
	l.trim(now)
	l.mu.Unlock()
}

func (s *segment) fits(frame int) bool {
	if s.count >= len(s.plain.ends) || s.plain.used+frame > len(s.plain.buf) {
		return false
	}
	return true // an alternate view is sized for every slot (see addVariant)
}

// add writes ev, numbered seq, into the next free slot without
// publishing it.
func (s *segment) add(ev Event, now int64, seq uint64) {
	i := s.count
	if p := s.seqs.Load(); p != nil {
		(*p)[i] = seq
	} else if seq != s.base+uint64(i) {
		l := make([]uint64, len(s.plain.ends))
		for k := range i {
			l[k] = s.base + uint64(k)
		}
		l[i] = seq
		s.seqs.Store(&l)
	}
	v := &s.plain
	v.used += copy(v.buf[v.used:], ev.Frame)
	v.ends[i] = uint32(v.used)
	s.times[i] = now
	s.types[i] = ev.Type
	var prev uint32
	if i > 0 {
		prev = s.targeted[i-1]
	}
	if ev.User != "" {
		u := s.users.Load()
		if u == nil {
			l := make([]string, len(s.plain.ends))
			u = &l
			s.users.Store(u)
		}
		(*u)[i] = ev.User
		prev++
	}
	s.targeted[i] = prev
	s.count++
}

// SetVariant turns the storing of variant k (Config.Variants[k-1]) on or
// off: on while some reader wants it, so that a log nobody reads that way
// costs nothing extra. Events appended while it is off are built on read
// (see ReadVariant).
func (l *Log) SetVariant(k int, on bool) { l.on[k-1].Store(on) }

// Variants is the number of alternate encodings: variants 1 to Variants.
func (l *Log) Variants() int { return len(l.on) }

// addVariant stores variant k+1's frame of the event just added to s. Once a
// segment has a variant's frames it keeps them to its end, so they stay
// contiguous. Its buffer is sized for every slot at the variant's most
// (the plain frames plus Extra each) and counted in the log's bytes.
func (l *Log) addVariant(s *segment, k int, seq uint64, frame []byte) {
	i := s.count - 1
	vr := &s.vars[k]
	a := s.altv[k].Load()
	if a == nil {
		slots := len(s.plain.ends)
		a = &view{buf: make([]byte, len(s.plain.buf)+slots*vr.Extra), ends: make([]uint32, slots), from: i}
		s.cost += len(a.buf) + 4*slots
		l.bytes += len(a.buf) + 4*slots
		s.altv[k].Store(a)
	}
	l.tmp = vr.Build(l.tmp[:0], seq, frame)
	if len(l.tmp) > len(frame)+vr.Extra {
		panic("eventlog: a variant added more than its Extra bytes")
	}
	a.used += copy(a.buf[a.used:], l.tmp)
	a.ends[i] = uint32(a.used)
}

// publish makes every added event visible to readers.
func (s *segment) publish() { s.n.Store(int32(s.count)) }

// slot returns the index of the first of the segment's first n slots
// whose number is at least seq, or n if there is none. A segment without
// gaps (every single node's) maps numbers to slots directly.
func (s *segment) slot(seq uint64, n int) int {
	p := s.seqs.Load()
	if p == nil {
		if seq <= s.base {
			return 0
		}
		return int(min(seq-s.base, uint64(n)))
	}
	seqs := *p
	return sort.Search(n, func(i int) bool { return seqs[i] >= seq })
}

// seqAt is the number of published slot i.
func (s *segment) seqAt(i int) uint64 {
	if p := s.seqs.Load(); p != nil {
		return (*p)[i]
	}
	return s.base + uint64(i)
}

// find returns the segment and slot holding event seq, or nil if seq is
// trimmed, a gap, or not yet appended.
func (l *Log) find(seq uint64) (*segment, int) {
	segs := *l.segs.Load()
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > seq }) - 1
	if i < 0 {
		return nil, 0
	}
	s := segs[i]
	n := int(s.n.Load())
	j := s.slot(seq, n)
	if j == n || s.seqAt(j) != seq {
		return nil, 0
	}
	return s, j
}

// locate returns the segment and slot of the first published event
// numbered seq or later, looking from the segment whose range holds seq;
// nil if there is none.
func locate(segs []*segment, seq uint64) (*segment, int) {
	i := max(sort.Search(len(segs), func(i int) bool { return segs[i].base > seq })-1, 0)
	for ; i < len(segs); i++ {
		s := segs[i]
		n := int(s.n.Load())
		if j := s.slot(seq, n); j < n {
			return s, j
		}
	}
	return nil, 0
}

// Time returns the append time of event seq, and false if it is not
// retained.
func (l *Log) Time(seq uint64) (int64, bool) {
	s, i := l.find(seq)
	if s == nil {
		return 0, false
	}
	return s.times[i], true
}

// Meta returns the type and target of event seq, and false if it is not
// retained.
func (l *Log) Meta(seq uint64) (Meta, bool) {
	s, i := l.find(seq)
	if s == nil {
		return Meta{}, false
	}
	return s.meta(i), true
}

// SeqAfter returns the lowest number n such that every retained event
// numbered n or above was appended at or after t (the caller's clock):
// the number just after the last event older than t, Head if none is that
// recent, or Tail if every retained event is. A cursor at or above it has
// nothing older than t left to read. In a sparse log (a cluster's numbers
// leave gaps between stream messages) this is not the next event's own
// number: a cursor in the gap before a recent event has read everything
// older, and is not behind.
func (l *Log) SeqAfter(t int64) uint64 {
	segs := *l.segs.Load()
	// The newest segment whose first event is older than t holds the
	// answer, or the answer is that segment's successor's first number.
	i := sort.Search(len(segs), func(i int) bool {
		// A segment not yet published can only be the newest: its
		// events are the most recent, so it sorts with the "after t" ones.
		s := segs[i]
		return s.n.Load() == 0 || s.times[0] >= t
	})
	if i == 0 {
		if len(segs) == 0 {
			return l.head.Load()
		}
		// Tail, not segs[0].base: a gap before the first segment holds no
		// event, so a cursor in it is not behind.
		return min(l.tail.Load(), segs[0].base)
	}
	s := segs[i-1]
	n := int(s.n.Load())
	// s.times[0] < t, so j >= 1: the last event older than t is j-1.
	j := sort.Search(n, func(j int) bool { return s.times[j] >= t })
	return s.seqAt(j-1) + 1
}

// Want decides, for Read, whether a reader receives an event. A nil Want
// receives every event without a User.
type Want func(m Meta) bool

// Read appends to runs the frames of the events from seq on that want
// accepts, as few slices as possible (consecutive frames of one segment
// are one slice), stopping before max bytes would be exceeded (but always
// taking at least one frame) or at Head. It returns the runs, the next
// sequence number to read and how many events the runs hold. It returns
// next == seq and no runs when seq is not retained (trimmed, or at Head).
//
// The slices are shared with every reader and must not be modified; they
// stay valid after the events are trimmed.
func (l *Log) Read(seq uint64, max int, want Want, runs [][]byte) ([][]byte, uint64, int) {
	runs, _, next, n, _ := l.read(seq, max, want, runs, nil, 0)
	return runs, next, n
}

// ReadVariant is Read for variant k (0: the plain frames, as Read; k > 0:
// Config.Variants[k-1]). Events appended while the variant was off have
// no frame stored: theirs are built with its Lazy builder into scratch
// (reused across calls, returned grown), and runs may point into it until
// the next call. It also returns the size of the plain frames of the
// events read, so that a caller can tell what an encoding saved.
func (l *Log) ReadVariant(k int, seq uint64, max int, want Want, runs [][]byte, scratch []byte) (_ [][]byte, _ []byte, next uint64, n int, plain int) {
	return l.read(seq, max, want, runs, scratch[:0], k)
}

func (l *Log) read(seq uint64, max int, want Want, runs [][]byte, scratch []byte, k int) ([][]byte, []byte, uint64, int, int) {
	head := l.head.Load()
	total, count, plain := 0, 0, 0
	for seq < head {
		// Segments first, then Tail: trim stores Tail before it replaces
		// the segments, so a reader that sees the new segments sees the
		// new Tail, and never steps over trimmed events as if a gap.
		segs := *l.segs.Load()
		if seq < l.tail.Load() {
			break // trimmed: lost to this reader, who must be told
		}
		s, i := locate(segs, seq)
		if s == nil || s.seqAt(i) >= head {
			// Only a gap (or a batch still being appended) up to head.
			seq = head
			break
		}
		// Published, but part of a batch still being appended: stop at head.
		n := s.slot(head, int(s.n.Load()))
		v := &s.plain
		if k > 0 {
			vr := &s.vars[k-1]
			v = s.altv[k-1].Load()
			// Events before the stored alternates: build them one by one.
			for ; i < n && (v == nil || i < v.from); i++ {
				if want == nil && s.meta(i).User != "" || want != nil && !want(s.meta(i)) {
					continue
				}
				psize := int(s.plain.ends[i]) - s.plain.start(i)
				size := psize + vr.Extra
				if total+size > max && count > 0 {
					return runs, scratch, s.seqAt(i), count, plain
				}
				from := len(scratch)
				scratch = vr.lazy()(scratch, s.seqAt(i), s.plain.buf[s.plain.start(i):s.plain.ends[i]])
				runs = append(runs, scratch[from:len(scratch):len(scratch)])
				total += len(scratch) - from
				plain += psize
				count++
			}
			if i == n {
				seq = s.seqAt(n-1) + 1
				continue
			}
		}
		if want == nil && s.untargeted(i, n) {
			// Fast path: every event from i on is for this reader.
			j := v.fill(i, n, max-total, count == 0)
			if j == i {
				return runs, scratch, s.seqAt(i), count, plain
			}
			start := v.start(i)
			runs = append(runs, v.buf[start:v.ends[j-1]])
			total += int(v.ends[j-1]) - start
			plain += int(s.plain.ends[j-1]) - s.plain.start(i)
			count += j - i
			seq = s.seqAt(j-1) + 1
			continue
		}
		runStart := -1
		for ; i < n; i++ {
			size := int(v.ends[i]) - v.start(i)
			if total+size > max && count > 0 {
				break
			}
			m := s.meta(i)
			ok := m.User == ""
			if want != nil {
				ok = want(m)
			}
			if !ok {
				if runStart >= 0 {
					runs = append(runs, v.buf[runStart:v.start(i)])
					runStart = -1
				}
				continue
			}
			if runStart < 0 {
				runStart = v.start(i)
			}
			total += size
			plain += int(s.plain.ends[i]) - s.plain.start(i)
			count++
		}
		if runStart >= 0 {
			runs = append(runs, v.buf[runStart:v.start(i)])
		}
		if i < n {
			seq = s.seqAt(i)
			break // max reached
		}
		seq = s.seqAt(n-1) + 1
	}
	return runs, scratch, seq, count, plain
}

func (s *segment) meta(i int) Meta {
	m := Meta{Type: s.types[i]}
	if u := s.users.Load(); u != nil {
		m.User = (*u)[i]
	}
	return m
}

// start is the offset of event i in v.buf.
func (v *view) start(i int) int {
	if i == v.from {
		return 0
	}
	return int(v.ends[i-1])
}

// untargeted reports whether events i..n-1 all lack a User.
func (s *segment) untargeted(i, n int) bool {
	if s.users.Load() == nil {
		return true
	}
	var before uint32
	if i > 0 {
		before = s.targeted[i-1]
	}
	return s.targeted[n-1] == before
}

// fill returns the end index j (i <= j <= n) of the longest run from i
// within budget bytes; with atLeastOne it takes event i even if it alone
// exceeds the budget.
func (v *view) fill(i, n, budget int, atLeastOne bool) int {
	start := v.start(i)
	limit := uint32(start + max(budget, 0))
	j := i + sort.Search(n-i, func(k int) bool { return v.ends[i+k] > limit })
	if j == i && atLeastOne && i < n {
		j = i + 1
	}
	return j
}
