//go:build race

package broker

// raceEnabled: the race detector's shadow memory makes RSS checks
// meaningless, and slows everything down.
const raceEnabled = true
