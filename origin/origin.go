package origin

import (
	"fmt"
	"regexp"
	"sync"
)

// DefaultCacheSize is the number of distinct origins whose answers a Matcher
// remembers when Config.CacheSize is zero.
const DefaultCacheSize = 4096

// Config lists the approved patterns.
type Config struct {
	// Patterns are regular expressions (RE2 syntax, the subset of JavaScript
	// regular expressions that the original configs use) matched anywhere in
	// the Origin header unless anchored.
	Patterns []string
	// CacheSize bounds the answer cache; zero means DefaultCacheSize and a
	// negative value disables caching.
	CacheSize int
}

// Matcher answers whether an origin is approved.
type Matcher struct {
	patterns []*regexp.Regexp
	limit    int

	mu    sync.RWMutex
	cache map[string]bool
}

// New compiles every pattern. An invalid pattern stops with an error that
// names it, so a typo in the config fails the start instead of silently
// refusing (or approving) browsers.
func New(cfg Config) (*Matcher, error) {
	m := &Matcher{limit: cfg.CacheSize}
	if m.limit == 0 {
		m.limit = DefaultCacheSize
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
func (m *Matcher) Allow(origin string) bool {
	if origin == "" {
		return false
	}
	if m.limit > 0 {
		m.mu.RLock()
		ok, hit := m.cache[origin]
		m.mu.RUnlock()
		if hit {
			return ok
		}
	}
	ok := m.match(origin)
	if m.limit > 0 {
		m.mu.Lock()
		// Dropping the whole map when it is full keeps the bound with no
		// bookkeeping per entry; legitimate origins are re-learned at the cost
		// of one regexp pass each.
		if len(m.cache) >= m.limit {
			clear(m.cache)
		}
		m.cache[origin] = ok
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
