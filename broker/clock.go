package broker

import (
	"sync/atomic"
	"time"

	"github.com/webinate/broker/internal/monoclock"
)

// clockOrigin is monoclock.Now at process start, where the hub tests start
// their own clock.
const clockOrigin = monoclock.Origin

// wallNow is the wall clock, for what is shown to people and clients (the
// status page's timestamps); every flow-control decision uses monoclock.
func wallNow() time.Time { return time.Now().Add(time.Duration(wallStep.Load())) }

// wallStep shifts wallNow: tests step the wall clock with it to check that
// no flow-control decision depends on it.
var wallStep atomic.Int64
