package cluster

import "time"

// clockBase anchors monoNow.
var clockBase = time.Now()

// monoNow is nanoseconds on the monotonic clock since the process started
// (plus a year, so that a zero field reads as long ago): what every
// timeout and age here is measured with, so that a step of the wall clock
// (NTP, a resumed VM) neither expires a peer's announcement early nor
// holds publishers for the length of the step. Wall times are kept only
// to be shown (BusStatus).
func monoNow() int64 { return int64(365*24*time.Hour) + int64(time.Since(clockBase)) }
