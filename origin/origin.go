package origin

import (
	"fmt"
	"regexp"
	"sync"
)

// DefaultCacheSize is the number of distinct origins whose answers a Matcher
// remembers when Config.CacheSize is zero.
const DefaultCacheSize = 4096

// DefaultCacheBytes bounds the memory of the answer cache when
// Config.CacheBytes is zero: the cached origins' bytes plus entryOverhead
// per entry (256 KiB).
const DefaultCacheBytes = 256 << 10

// MaxLen is the longest Origin a Matcher considers (1 KiB). A browser's
// origin is scheme://host[:port] and a DNS name is at most 253 bytes, so no
// real origin comes near it; a longer one is refused without running a
// pattern over it (an unanchored pattern scans all of it) and is never
// cached. The broker answers it with 403 and says why.
const MaxLen = 1024

// MaxCachedLen is the longest origin whose answer is cached. Longer ones
// (up to MaxLen) are matched afresh each time: real origins are far
// shorter, and a flood of long random ones then costs CPU, not memory.
const MaxCachedLen = 256

// entryOverhead is what one cache entry costs beyond its key's bytes: the
// map slot (string header, bool, hash bits) and the string's allocation
// rounding. An estimate, used only for the byte bound.
const entryOverhead = 48

// Config lists the approved patterns.
type Config struct {
	// Patterns are regular expressions (RE2 syntax, the subset of JavaScript
	// regular expressions that the original configs use) matched anywhere in
	// the Origin header unless anchored.
	Patterns []string
	// CacheSize bounds the answer cache's entries; zero means
	// DefaultCacheSize and a negative value disables caching.
	CacheSize int
	// CacheBytes bounds the answer cache's memory (see DefaultCacheBytes);
	// zero means DefaultCacheBytes.
	CacheBytes int
}

// Matcher answers whether an origin is approved.
type Matcher struct {
	patterns []*regexp.Regexp
	limit    int // entries
	maxBytes int

	mu    sync.RWMutex
	cache map[string]bool
	bytes int // cache's key bytes plus entryOverhead per entry
}

// New compiles every pattern. An invalid pattern stops with an error that
// names it, so a typo in the config fails the start instead of silently
// refusing (or approving) browsers.
func New(cfg Config) (*Matcher, error) {
	m := &Matcher{limit: cfg.CacheSize, maxBytes: cfg.CacheBytes}
	if m.limit == 0 {
		m.limit = DefaultCacheSize
	}
	if m.maxBytes <= 0 {
		m.maxBytes = DefaultCacheBytes
	}
	for i, p := range cfg.Patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("origin: approvedSocketDomains[%d] %q is not a valid regular expression: %w", i, p, err)
		}
		m.patterns = append(m.patterns, re)
	}
	if m.limit > 0 {
		m.cache = make(map[string]bool)
	}
	return m, nil
}

// Allow reports whether origin matches at least one approved pattern. An
// empty origin (the header is missing) is never allowed: browsers always
// send one, and non-browser services authenticate with the backend key.
// Neither is one longer than MaxLen.
func (m *Matcher) Allow(origin string) bool {
	if origin == "" || len(origin) > MaxLen {
		return false
	}
	cacheable := m.limit > 0 && len(origin) <= MaxCachedLen
	if cacheable {
		m.mu.RLock()
		ok, hit := m.cache[origin]
		m.mu.RUnlock()
		if hit {
			return ok
		}
	}
	ok := m.match(origin)
	if cacheable {
		cost := len(origin) + entryOverhead
		m.mu.Lock()
		// Dropping the whole map when it is full keeps the bound with no
		// bookkeeping per entry; legitimate origins are re-learned at the cost
		// of one regexp pass each.
		if _, hit := m.cache[origin]; !hit {
			if len(m.cache) >= m.limit || m.bytes+cost > m.maxBytes {
				clear(m.cache)
				m.bytes = 0
			}
			m.cache[origin] = ok
			m.bytes += cost
		}
		m.mu.Unlock()
	}
	return ok
}

func (m *Matcher) match(origin string) bool {
	for _, re := range m.patterns {
		if re.MatchString(origin) {
			return true
		}
	}
	return false
}

// Len returns the number of compiled patterns.
func (m *Matcher) Len() int { return len(m.patterns) }

// CacheUsage returns the answer cache's entries and the memory they are
// charged (key bytes plus a fixed overhead per entry), which New's bounds
// cap. For tests and monitoring.
func (m *Matcher) CacheUsage() (entries, bytes int) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.cache), m.bytes
}
