package broker

import (
	"sync/atomic"
	"time"
)

// clockBase anchors the broker's clock: monoNow counts from it.
var clockBase = time.Now()

// monoNow is the broker's clock for every lag, age and timeout measurement:
// nanoseconds on the monotonic clock since the process started. The wall
// clock can step (NTP, a VM migrated or resumed, an operator's date -s); a
// +10 s step read as ten seconds of lag would cut every client as a slow
// consumer, and a backwards step would hide real lag. time.Since reads
// the monotonic clock that time.Now records (package time, "Monotonic
// Clocks"); UnixNano would strip it.
//
// The values are only ever compared with each other and never leave the
// process: event log times, join and hold times, last read, ping and ack.
// They start at clockOrigin, not zero, so that a timestamp field's zero
// value ("never") reads as long ago, as it did with Unix times.
func monoNow() int64 { return clockOrigin + int64(time.Since(clockBase)) }

// clockOrigin is monoNow at process start: a year, so that now-0 exceeds
// every configurable duration.
const clockOrigin = int64(365 * 24 * time.Hour)

// wallNow is the wall clock, for what is shown to people and clients (the
// status page's timestamps).
func wallNow() time.Time { return time.Now().Add(time.Duration(wallStep.Load())) }

// wallStep shifts wallNow: tests step the wall clock with it to check that
// no flow-control decision depends on it.
var wallStep atomic.Int64
