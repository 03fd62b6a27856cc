// Package commalist splits the comma-separated lists that flags and
// config values take (addresses, URLs, patterns), the same way for every
// command.
package commalist

import "strings"

// Split splits s at its commas, trimming spaces and dropping empty items,
// so that "a, b,," is [a b] and "" is nil.
func Split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
