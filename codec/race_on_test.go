//go:build race

package codec

// raceEnabled lets allocation tests skip under -race, where sync.Pool (used
// by sonic for its parser state) deliberately drops items and so allocates.
const raceEnabled = true
