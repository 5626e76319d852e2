package httpproxy

import (
	"math"
	"time"
)

// monoEpoch is the origin of monoNow's readings. It is set once when the
// package initializes and never written again.
var monoEpoch = time.Now()

// monoNow reads the monotonic clock: nanoseconds since monoEpoch, always
// positive. The HTTP/1 connection's and the streams' timers keep their
// limits and activity times in it (h1timer.go, streamtimer.go). It is one
// clock read where time.Now is two (the wall clock too): on the benchmark
// VM 65 against 120 ns, and a request takes several. Being monotonic, a
// step of the wall clock neither fires nor delays a timeout.
func monoNow() int64 { return int64(time.Since(monoEpoch)) }

// monoAdd is the monoNow reading d after t, saturating at the largest
// (an xDS duration of centuries is math.MaxInt64 nanoseconds: the sum
// must not wrap into the past and fire at once).
func monoAdd(t int64, d time.Duration) int64 {
	if d > 0 && t > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return t + int64(d)
}
