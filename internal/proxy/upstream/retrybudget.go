package upstream

import (
	"sync"
	"time"
)

// recentBuckets is the number of buckets a retry budget's interval is cut
// into: requests are counted for between 7/8 and all of the interval.
const recentBuckets = 8

// recentCounter counts the requests a cluster started within its retry
// budget's budget_interval, in buckets of interval/8.
type recentCounter struct {
	mu    sync.Mutex
	epoch [recentBuckets]int64
	n     [recentBuckets]uint64
}

func (r *recentCounter) add(now time.Time, width time.Duration) {
	e := now.UnixNano() / int64(width)
	b := e % recentBuckets
	r.mu.Lock()
	if r.epoch[b] != e {
		r.epoch[b], r.n[b] = e, 0
	}
	r.n[b]++
	r.mu.Unlock()
}

func (r *recentCounter) sum(now time.Time, width time.Duration) uint64 {
	e := now.UnixNano() / int64(width)
	var s uint64
	r.mu.Lock()
	for b := range r.epoch {
		if e-r.epoch[b] < recentBuckets {
			s += r.n[b]
		}
	}
	r.mu.Unlock()
	return s
}

// NoteRequest counts a request the router starts, for a retry budget with
// a budget_interval (a no-op otherwise).
func (c *Cluster) NoteRequest() {
	if b := c.Cfg.RetryBudget; b != nil && b.Interval > 0 {
		c.recent.add(time.Now(), max(b.Interval/recentBuckets, time.Nanosecond))
	}
}

// RetryLimit is how many retries may be in flight on the cluster now: the
// retry budget's share of the active (and pending) requests, at least its
// minimum concurrency, or max_retries without a budget (Envoy ignores
// max_retries when a budget is set).
func (c *Cluster) RetryLimit() uint64 {
	b := c.Cfg.RetryBudget
	if b == nil {
		return uint64(c.Cfg.MaxRetries)
	}
	base := uint64(max(c.Stats.RqActive.Load(), 0))
	if b.Interval > 0 {
		base = max(base, c.recent.sum(time.Now(), max(b.Interval/recentBuckets, time.Nanosecond)))
	}
	return max(uint64(float64(base)*b.Percent/100), uint64(b.MinConcurrency))
}
