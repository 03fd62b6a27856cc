package origin

import (
	"regexp"
	"testing"
)

// FuzzAllow checks that the cached answer always equals a fresh regexp pass
// and that no input panics.
func FuzzAllow(f *testing.F) {
	for _, s := range []string{"http://localhost", "ws://www.webinate.net:123", "a.example.com", "", "\xff\xfe", "example.org"} {
		f.Add(s)
	}
	m, err := New(Config{Patterns: examplePatterns, CacheSize: 64})
	if err != nil {
		f.Fatal(err)
	}
	res := make([]*regexp.Regexp, len(examplePatterns))
	for i, p := range examplePatterns {
		res[i] = regexp.MustCompile(p)
	}
	f.Fuzz(func(t *testing.T, o string) {
		want := false
		for _, re := range res {
			if o != "" && len(o) <= MaxLen && re.MatchString(o) {
				want = true
			}
		}
		for i := 0; i < 2; i++ {
			if got := m.Allow(o); got != want {
				t.Fatalf("Allow(%q) = %v, want %v", o, got, want)
			}
		}
	})
}
