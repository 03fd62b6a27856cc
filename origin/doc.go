// Package origin decides whether the Origin header of a WebSocket upgrade
// request is approved.
//
// Patterns are the `approvedSocketDomains` of the original users-server
// config: regular expressions matched the way JavaScript's
// `origin.match(new RegExp(p))` matches, that is anywhere in the origin
// unless the pattern anchors itself with ^ or $. They are compiled once by
// New; an invalid pattern is an error that names it.
//
// A Matcher is safe for concurrent use. Answers are cached per origin string
// (a browser fleet sends few distinct origins), and the cache is bounded so
// that hostile clients sending random Origin headers cannot grow it without
// limit: in entries (CacheSize), in bytes (CacheBytes), and by key length
// (origins over MaxCachedLen are matched but not cached; over MaxLen they
// are refused unmatched).
package origin
