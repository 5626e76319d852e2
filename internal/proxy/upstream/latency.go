package upstream

import (
	"math"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"
)

// Latency histogram buckets: 4 per power of two of microseconds (each
// about 19% wide), from 1 µs to over an hour.
const (
	latSub     = 4
	latBuckets = 36 * latSub
)

// latencyHist counts one host's answer latencies over the current interval.
type latencyHist struct {
	n atomic.Uint32
	b [latBuckets]atomic.Uint32
}

func latBucket(d time.Duration) int {
	us := uint64(max(d.Microseconds(), 1))
	e := bits.Len64(us) - 1 // us in [2^e, 2^(e+1))
	sub := 0
	if e >= 2 {
		sub = int((us >> (e - 2)) & (latSub - 1))
	} else {
		sub = int(us<<(2-e)) & (latSub - 1)
	}
	return min(e*latSub+sub, latBuckets-1)
}

// latUpper is the upper bound of bucket i.
func latUpper(i int) time.Duration {
	e, sub := i/latSub, i%latSub
	return time.Duration(float64(time.Microsecond) * math.Ldexp(1+float64(sub+1)/latSub, e))
}

// take returns the count and the p-th percentile (the upper bound of its
// bucket), and empties the histogram.
func (h *latencyHist) take(p float64) (uint32, time.Duration) {
	var counts [latBuckets]uint32
	var n uint32
	for i := range h.b {
		counts[i] = h.b[i].Swap(0)
		n += counts[i]
	}
	h.n.Store(0)
	if n == 0 {
		return 0, 0
	}
	rank := uint32(math.Ceil(p / 100 * float64(n)))
	var seen uint32
	for i, c := range counts {
		if seen += c; seen >= max(rank, 1) {
			return n, latUpper(i)
		}
	}
	return n, latUpper(latBuckets - 1)
}

// LatencyEjections returns how many ejections were for latency.
func (c *Cluster) LatencyEjections() uint64 { return c.od.latencyEjections.Load() }

// TracksLatency says the cluster has latency-based outlier detection, so
// callers time a try only when ReportLatency would use it.
func (c *Cluster) TracksLatency() bool {
	return c.Cfg.Outlier != nil && c.Cfg.Outlier.Latency != nil
}

// ReportLatency feeds the time a host took to answer (to the response
// head) to latency-based outlier detection, when the cluster has it. The
// first report after an interval ends judges the hosts (no timer runs).
func (c *Cluster) ReportLatency(h *Host, d time.Duration) {
	if !c.TracksLatency() || h == nil {
		return
	}
	od := c.Cfg.Outlier
	hist := h.outlier.latency.Load()
	if hist == nil {
		hist = new(latencyHist)
		if !h.outlier.latency.CompareAndSwap(nil, hist) {
			hist = h.outlier.latency.Load()
		}
	}
	hist.b[latBucket(d)].Add(1)
	hist.n.Add(1)
	iv := od.Interval
	if iv <= 0 {
		iv = 10 * time.Second // Envoy's outlier detection interval default
	}
	now := time.Now()
	next := c.od.latencyNext.Load()
	if next == 0 {
		c.od.latencyNext.CompareAndSwap(0, now.Add(iv).UnixNano())
		return
	}
	if now.UnixNano() < next || !c.od.latencyNext.CompareAndSwap(next, now.Add(iv).UnixNano()) {
		return
	}
	c.judgeLatency(now)
}

// judgeLatency ends a latency interval: every host's histogram is read and
// emptied, and hosts far slower than the others are ejected (see
// xdsparse.LatencyOutlier).
func (c *Cluster) judgeLatency(now time.Time) {
	lo := c.Cfg.Outlier.Latency
	type judged struct {
		h *Host
		p time.Duration
	}
	var hosts []judged
	for _, e := range c.Endpoints() {
		hist := e.Host.outlier.latency.Load()
		if hist == nil {
			continue
		}
		n, p := hist.take(lo.Percentile)
		if n >= lo.RequestVolume && !e.Host.Ejected(now) {
			hosts = append(hosts, judged{e.Host, p})
		}
	}
	if len(hosts) < int(lo.MinimumHosts) {
		return
	}
	others := make([]time.Duration, 0, len(hosts)-1)
	for i, j := range hosts {
		others = others[:0]
		for k, o := range hosts {
			if k != i {
				others = append(others, o.p)
			}
		}
		slices.Sort(others)
		med := others[len(others)/2]
		if len(others)%2 == 0 {
			med = (others[len(others)/2-1] + others[len(others)/2]) / 2
		}
		if float64(j.p) > lo.Factor*float64(med) && j.p-med >= lo.MinimumExcess {
			if c.eject(j.h, now) {
				c.od.latencyEjections.Add(1)
				c.log.Info("latency outlier detection ejected a slow host", "cluster", c.Cfg.Name, "host", j.h.Addr,
					"percentile", lo.Percentile, "latency", j.p, "others_median", med)
			}
		}
	}
}
