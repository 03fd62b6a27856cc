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
	// SegmentBytes is the frame capacity of one segment; zero means
	// DefaultSegmentBytes, or MaxBytes/8 if that is smaller. A frame larger
	// than a segment gets a segment of its own.
	SegmentBytes int
	// Epoch names the numbering; zero means a random one (this log's
	// own). Logs that mirror one outside numbering with AppendAt (the
	// nodes of a cluster) share its name.
	Epoch string
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
	epoch    string

	mu    sync.Mutex // appenders and trimming
	cur   *segment
	bytes int // retained, counting each segment's full capacity

	segs atomic.Pointer[[]*segment] // oldest first; replaced, never mutated
	head atomic.Uint64              // next sequence number
	tail atomic.Uint64              // oldest retained sequence number
	size atomic.Int64               // mirror of bytes for readers
}

// segment holds consecutive events. Slots below n are immutable once
// published; the appender writes only above n, under Log.mu.
type segment struct {
	base  uint64
	buf   []byte   // frames back to back; len never changes, cap == len
	ends  []uint32 // end offset in buf of each event
	times []int64  // append time of each event, unix nanos
	types []uint8
	// targeted[i] counts targeted events among 0..i, so a reader can tell
	// in O(1) whether a range holds any.
	targeted []uint32
	// users is nil until the segment holds a targeted event; it is set
	// once, atomically, because readers of published slots may look at
	// it while the appender fills later ones.
	users atomic.Pointer[[]string]
	used  int // bytes of buf in use (appender only)
	count int // events added, published or not (appender only)
	n     atomic.Int32
	cost  int
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
	l := &Log{maxBytes: cfg.MaxBytes, maxAge: int64(cfg.MaxAge), segBytes: cfg.SegmentBytes, epoch: cfg.Epoch}
	l.head.Store(1)
	l.tail.Store(1)
	empty := []*segment{}
	l.segs.Store(&empty)
	return l
}

// Epoch identifies this log: sequence numbers from another epoch (another
// process, another log) mean nothing here.
func (l *Log) Epoch() string { return l.epoch }

// Head is the sequence number the next appended event will get: every
// event below it is readable (or already trimmed).
func (l *Log) Head() uint64 { return l.head.Load() }

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
	if seq > head && l.cur != nil {
		// A segment holds consecutive numbers: the events after a gap
		// start a new one.
		l.cur.publish()
		l.cur = nil
	}
	if len(evs) == 0 {
		l.head.Store(seq)
		return nil
	}
	l.appendLocked(now, seq, evs)
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
		s.add(ev, now)
		seq++
	}
	if l.cur != nil {
		l.cur.publish()
	}
	// Readers bound every read by Head, so a batch becomes visible at once.
	l.head.Store(seq)
	l.trim(now)
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
		buf:      make([]byte, nb),
		ends:     make([]uint32, slots),
		times:    make([]int64, slots),
		types:    make([]uint8, slots),
		targeted: make([]uint32, slots),
	}
	s.cost = nb + slots*(4+8+1+4)
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
	l.tail.Store(last.base + uint64(last.n.Load()))
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
	return s.count < len(s.ends) && s.used+frame <= len(s.buf)
}

// add writes ev into the next free slot without publishing it.
func (s *segment) add(ev Event, now int64) {
	i := s.count
	s.used += copy(s.buf[s.used:], ev.Frame)
	s.ends[i] = uint32(s.used)
	s.times[i] = now
	s.types[i] = ev.Type
	var prev uint32
	if i > 0 {
		prev = s.targeted[i-1]
	}
	if ev.User != "" {
		u := s.users.Load()
		if u == nil {
			l := make([]string, len(s.ends))
			u = &l
			s.users.Store(u)
		}
		(*u)[i] = ev.User
		prev++
	}
	s.targeted[i] = prev
	s.count++
}

// publish makes every added event visible to readers.
func (s *segment) publish() { s.n.Store(int32(s.count)) }

// find returns the segment holding seq, or nil if seq is trimmed or not
// yet appended.
func (l *Log) find(seq uint64) *segment {
	segs := *l.segs.Load()
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > seq }) - 1
	if i < 0 {
		return nil
	}
	s := segs[i]
	if seq >= s.base+uint64(s.n.Load()) {
		return nil
	}
	return s
}

// Time returns the append time of event seq, and false if it is not
// retained.
func (l *Log) Time(seq uint64) (int64, bool) {
	s := l.find(seq)
	if s == nil {
		return 0, false
	}
	return s.times[seq-s.base], true
}

// Meta returns the type and target of event seq, and false if it is not
// retained.
func (l *Log) Meta(seq uint64) (Meta, bool) {
	s := l.find(seq)
	if s == nil {
		return Meta{}, false
	}
	i := seq - s.base
	return s.meta(int(i)), true
}

// SeqAfter returns the first sequence number whose event was appended at
// or after t (unix nanos), Head if none was, or Tail if every retained
// event is that recent.
func (l *Log) SeqAfter(t int64) uint64 {
	segs := *l.segs.Load()
	// The newest segment whose first event is older than t holds the
	// answer, or the answer is that segment's successor's base.
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
	j := sort.Search(n, func(j int) bool { return s.times[j] >= t })
	return s.base + uint64(j)
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
	head := l.head.Load()
	total, count := 0, 0
	for seq < head {
		s := l.find(seq)
		if s == nil {
			// Not in any segment: trimmed (below Tail: lost to this
			// reader, who must be told), or a gap, stepped over.
			var ok bool
			if seq, ok = l.afterGap(seq, head); !ok {
				break
			}
			continue
		}
		n := int(s.n.Load())
		if lim := head - s.base; uint64(n) > lim {
			n = int(lim) // published, but part of a batch still being appended
		}
		i := int(seq - s.base)
		start := s.start(i)
		if want == nil && s.untargeted(i, n) {
			// Fast path: every event from i on is for this reader.
			j := s.fill(i, n, max-total, total == 0)
			if j == i {
				return runs, seq, count
			}
			runs = append(runs, s.buf[start:s.ends[j-1]])
			total += int(s.ends[j-1]) - start
			count += j - i
			seq += uint64(j - i)
			continue
		}
		runStart := -1
		for ; i < n; i++ {
			size := int(s.ends[i]) - s.start(i)
			if total+size > max && total > 0 {
				break
			}
			m := s.meta(i)
			ok := m.User == ""
			if want != nil {
				ok = want(m)
			}
			if !ok {
				if runStart >= 0 {
					runs = append(runs, s.buf[runStart:s.start(i)])
					runStart = -1
				}
				continue
			}
			if runStart < 0 {
				runStart = s.start(i)
			}
			total += size
			count++
		}
		if runStart >= 0 {
			runs = append(runs, s.buf[runStart:s.start(i)])
		}
		seq = s.base + uint64(i)
		if i < n {
			break // max reached
		}
	}
	return runs, seq, count
}

// afterGap returns the first number at or after seq that names an event
// (or head, for a gap at the end), and false if seq is below Tail. seq is
// below head and in no segment. Trim stores Tail before it replaces the
// segments, so a reader that missed seq in the new segments sees the new
// Tail.
func (l *Log) afterGap(seq, head uint64) (uint64, bool) {
	if seq < l.tail.Load() {
		return seq, false
	}
	segs := *l.segs.Load()
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > seq })
	if i < len(segs) && segs[i].base < head {
		return segs[i].base, true
	}
	return head, true
}

func (s *segment) meta(i int) Meta {
	m := Meta{Type: s.types[i]}
	if u := s.users.Load(); u != nil {
		m.User = (*u)[i]
	}
	return m
}

// start is the offset of event i in buf.
func (s *segment) start(i int) int {
	if i == 0 {
		return 0
	}
	return int(s.ends[i-1])
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
func (s *segment) fill(i, n, budget int, atLeastOne bool) int {
	start := s.start(i)
	limit := uint32(start + max(budget, 0))
	j := i + sort.Search(n-i, func(k int) bool { return s.ends[i+k] > limit })
	if j == i && atLeastOne && i < n {
		j = i + 1
	}
	return j
}
