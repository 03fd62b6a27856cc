// Package monoclock is the process's clock for every lag, age and timeout
// measurement, shared by the broker and its cluster bus so that their
// times compare.
//
// The wall clock can step (NTP, a VM migrated or resumed, an operator's
// date -s); a +10 s step read as ten seconds of lag would cut every
// client as a slow consumer, expire a peer's announcement early or hold
// publishers for the length of the step, and a backwards step would hide
// real lag. time.Since reads the monotonic clock that time.Now records
// (package time, "Monotonic Clocks"); UnixNano would strip it.
package monoclock

import "time"

// base anchors the clock: Now counts from it.
var base = time.Now()

// Origin is Now at process start: a year, so that a timestamp field's zero
// value ("never") reads as long ago (now-0 exceeds every configurable
// duration), as it did with Unix times.
const Origin = int64(365 * 24 * time.Hour)

// Now is nanoseconds on the monotonic clock since the process started,
// plus Origin. The values are only ever compared with each other and
// never leave the process: event log times, join and hold times, last
// read, ping and ack, a peer's expiry.
func Now() int64 { return Origin + int64(time.Since(base)) }
