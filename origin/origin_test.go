package origin

import (
	"fmt"
	"strings"
	"testing"
)

// The patterns of the original users-server example config.
var examplePatterns = []string{
	"localhost",
	"^ws://www.webinate.net:123$",
	"^webinate\\.net:80$",
	"^example\\.com$",
	"^.+\\.example\\.com$",
	"^example\\.org",
	"^.+\\.example\\.org",
}

func TestAllow(t *testing.T) {
	m, err := New(Config{Patterns: examplePatterns})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		origin string
		want   bool
	}{
		{"unanchored matches anywhere", "http://localhost:3000", true},
		{"unanchored matches inside a host", "http://notlocalhost.evil.com", true},
		{"anchored exact", "ws://www.webinate.net:123", true},
		{"anchored exact rejects suffix", "ws://www.webinate.net:1234", false},
		{"anchored exact rejects prefix", "xws://www.webinate.net:123", false},
		{"escaped dot is literal", "webinateXnet:80", false},
		{"subdomain", "a.b.example.com", true},
		{"bare domain needs its own pattern", "example.com", true},
		{"start-anchored only allows any suffix", "example.org.evil", true},
		{"start anchor rejects scheme prefix", "http://example.com", false},
		{"empty origin", "", false},
		{"unrelated", "http://evil.com", false},
		{"case sensitive like JavaScript", "http://LOCALHOST", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Twice: the second answer comes from the cache.
			for i := 0; i < 2; i++ {
				if got := m.Allow(tc.origin); got != tc.want {
					t.Fatalf("Allow(%q) = %v, want %v (pass %d)", tc.origin, got, tc.want, i)
				}
			}
		})
	}
}

func TestInvalidPatternNamed(t *testing.T) {
	_, err := New(Config{Patterns: []string{"localhost", "^(unclosed$"}})
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"approvedSocketDomains[1]", `"^(unclosed$"`} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not contain %q", err, want)
		}
	}
	// JavaScript look-ahead is not RE2: reported, not silently dropped.
	if _, err := New(Config{Patterns: []string{"^(?!evil).*$"}}); err == nil {
		t.Fatal("want error for look-ahead")
	}
}

func TestNoPatternsAllowsNothing(t *testing.T) {
	m, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Allow("http://localhost") {
		t.Fatal("no patterns must approve nothing")
	}
}

func TestCacheBounded(t *testing.T) {
	m, err := New(Config{Patterns: []string{"^good"}, CacheSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		o := fmt.Sprintf("bad-%d", i)
		if m.Allow(o) {
			t.Fatalf("%s allowed", o)
		}
		if len(m.cache) > 16 {
			t.Fatalf("cache grew to %d", len(m.cache))
		}
	}
	if !m.Allow("good-1") {
		t.Fatal("good-1 refused")
	}
}

// cachedKeyBytes sums the cached origins' lengths, read from the map
// itself so that the measure does not depend on the Matcher's accounting.
func cachedKeyBytes(m *Matcher) int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := 0
	for k := range m.cache {
		n += len(k)
	}
	return n
}

// Refused upgrades with huge Origin headers must not pin memory: 1,000
// distinct 60 KiB origins (the reproduction grew the heap by
// 63 MiB) leave nothing in the cache, and neither do origins just over
// MaxCachedLen.
func TestCacheIgnoresLongOrigins(t *testing.T) {
	m, err := New(Config{Patterns: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("a", 60<<10)
	for i := 0; i < 1000; i++ {
		o := fmt.Sprintf("http://%d.%s", i, pad)
		if m.Allow(o) {
			t.Fatalf("60 KiB origin %d allowed", i)
		}
	}
	if n := cachedKeyBytes(m); n != 0 {
		t.Fatalf("cache holds %d bytes of 60 KiB origins", n)
	}
	// Matched afresh, not cached: a long origin that matches is still
	// allowed up to MaxLen, and refused past it even if it matches.
	long := "http://localhost/" + strings.Repeat("b", MaxCachedLen)
	for i := 0; i < 2; i++ {
		if !m.Allow(long) {
			t.Fatalf("%d-byte matching origin refused", len(long))
		}
	}
	if tooLong := "http://localhost/" + strings.Repeat("c", MaxLen); m.Allow(tooLong) {
		t.Fatalf("%d-byte origin allowed (MaxLen %d)", len(tooLong), MaxLen)
	}
	if n := cachedKeyBytes(m); n != 0 {
		t.Fatalf("cache holds %d bytes of over-long origins", n)
	}
}

// The cache's memory is bounded by CacheBytes whatever the entry count
// allows: 4,096 entries of MaxCachedLen bytes would be 1 MiB.
func TestCacheBytesBounded(t *testing.T) {
	m, err := New(Config{Patterns: []string{"^good"}})
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", MaxCachedLen-16)
	for i := 0; i < 20000; i++ {
		o := fmt.Sprintf("%08d%s", i, pad)
		if m.Allow(o) {
			t.Fatalf("%s allowed", o)
		}
		if n := cachedKeyBytes(m); n > DefaultCacheBytes {
			t.Fatalf("cache holds %d key bytes after %d origins, bound %d", n, i+1, DefaultCacheBytes)
		}
	}
	entries, bytes := m.CacheUsage()
	if entries == 0 || bytes > DefaultCacheBytes || bytes < cachedKeyBytes(m) {
		t.Fatalf("CacheUsage() = %d entries, %d bytes; key bytes %d", entries, bytes, cachedKeyBytes(m))
	}
	if !m.Allow("good-1") {
		t.Fatal("good-1 refused")
	}
}

func TestCacheDisabled(t *testing.T) {
	m, err := New(Config{Patterns: []string{"a"}, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Allow("abc") || m.Allow("xyz") {
		t.Fatal("wrong answer without cache")
	}
	if m.cache != nil {
		t.Fatal("cache allocated although disabled")
	}
}

func TestConcurrent(t *testing.T) {
	m, _ := New(Config{Patterns: examplePatterns, CacheSize: 8})
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func(g int) {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 500; i++ {
				o := fmt.Sprintf("http://%d.example.org%d", i%20, g)
				_ = m.Allow(o)
			}
		}(g)
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}

func BenchmarkAllowCached(b *testing.B) {
	m, _ := New(Config{Patterns: examplePatterns})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		m.Allow("https://app.example.com")
	}
}

func BenchmarkAllowUncached(b *testing.B) {
	m, _ := New(Config{Patterns: examplePatterns, CacheSize: -1})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		m.Allow("https://app.example.com")
	}
}
