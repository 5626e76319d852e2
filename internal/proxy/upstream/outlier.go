package upstream

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// hostOutlier is a host's outlier detection state. It lives with the host,
// so it survives configuration updates that keep the host.
type hostOutlier struct {
	consecutive5xx, consecutiveGateway atomic.Uint32
	// consecutiveLocal counts local failures (split_external_local_origin_errors).
	consecutiveLocal atomic.Uint32
	// ejections counts how often the host was ejected (the ejection time
	// multiplier); ejectedUntil is the end of the current ejection in
	// Unix nanoseconds, 0 when not ejected.
	ejections    atomic.Uint32
	ejectedUntil atomic.Int64
	// latency is the host's latency histogram for latency-based ejection,
	// made on its first answer in a cluster that has it (latency.go).
	latency atomic.Pointer[latencyHist]
}

// clusterOutlier is a cluster's outlier detection bookkeeping.
type clusterOutlier struct {
	mu sync.Mutex // serializes ejection decisions (max_ejection_percent)
	// Ejections counts hosts ejected (ejections_enforced_total);
	// latencyEjections those ejected for latency.
	ejections, latencyEjections atomic.Uint64
	// latencyNext is when the current latency interval ends (Unix ns).
	latencyNext atomic.Int64
}

// Ejected reports whether the host is ejected at now.
func (h *Host) Ejected(now time.Time) bool {
	u := h.outlier.ejectedUntil.Load()
	return u != 0 && now.UnixNano() < u
}

// OutlierEjections returns how many ejections the cluster enforced.
func (c *Cluster) OutlierEjections() uint64 { return c.od.ejections.Load() }

// ReportResult feeds one request's outcome on host h to outlier detection:
// status is the upstream's HTTP status, or 0 with err set for a local
// failure (connect error, reset, timeout), which counts as a gateway error.
func (c *Cluster) ReportResult(h *Host, status int, err error) {
	od := c.Cfg.Outlier
	if od == nil || h == nil {
		return
	}
	o := &h.outlier
	local := err != nil
	if od.SplitLocalOrigin {
		// Local failures are counted apart; any answer from the upstream
		// is a local success and ends their run.
		if local {
			if n := o.consecutiveLocal.Add(1); od.ConsecutiveLocal > 0 && n >= od.ConsecutiveLocal && enforce(od.EnforcingLocal) {
				c.eject(h, time.Now())
			}
			return
		}
		if o.consecutiveLocal.Load() != 0 {
			o.consecutiveLocal.Store(0)
		}
	}
	if codes := c.Cfg.OutlierErrorCodes; codes != nil && !local {
		// outlierDetectionHttpErrorCodes: only these statuses are errors,
		// each counted as a 5xx (and a gateway error when 502-504); every
		// other answer is a success.
		if !slices.Contains(codes, status) {
			status = 200
		} else if status < 500 {
			status = 500
		}
	}
	if !local && status < 500 {
		if o.consecutive5xx.Load() != 0 {
			o.consecutive5xx.Store(0)
		}
		if o.consecutiveGateway.Load() != 0 {
			o.consecutiveGateway.Store(0)
		}
		return
	}
	n5 := o.consecutive5xx.Add(1)
	var ng uint32
	if local || status == 502 || status == 503 || status == 504 {
		ng = o.consecutiveGateway.Add(1)
	} else {
		o.consecutiveGateway.Store(0)
	}
	switch {
	case od.Consecutive5xx > 0 && n5 >= od.Consecutive5xx && enforce(od.Enforcing5xx):
	case od.ConsecutiveGateway > 0 && ng >= od.ConsecutiveGateway && enforce(od.EnforcingGateway):
	default:
		return
	}
	c.eject(h, time.Now())
}

func enforce(percent uint32) bool {
	return percent >= 100 || (percent > 0 && rand.Uint32N(100) < percent)
}

// eject takes h out of load balancing for base_ejection_time times the
// number of its ejections (bounded by max_ejection_time), unless that
// would eject more than max_ejection_percent of the hosts (one host can
// always be ejected); false when it did not.
func (c *Cluster) eject(h *Host, now time.Time) bool {
	od := c.Cfg.Outlier
	c.od.mu.Lock()
	defer c.od.mu.Unlock()
	if h.Ejected(now) {
		return false
	}
	hosts := c.Endpoints()
	ejected := 0
	for _, x := range hosts {
		if x.Host.Ejected(now) {
			ejected++
		}
	}
	limit := max(len(hosts)*int(od.MaxEjectionPercent)/100, 1)
	if ejected >= limit {
		return false
	}
	k := h.outlier.ejections.Add(1)
	d := min(od.BaseEjectionTime*time.Duration(k), od.MaxEjectionTime)
	if iv := od.Interval; iv > 0 {
		d = (d + iv - 1) / iv * iv // hosts come back at the detector's sweep, every interval
	}
	h.outlier.ejectedUntil.Store(now.Add(d).UnixNano())
	h.outlier.consecutive5xx.Store(0)
	h.outlier.consecutiveGateway.Store(0)
	h.outlier.consecutiveLocal.Store(0)
	c.od.ejections.Add(1)
	c.log.Info("outlier detection ejected a host", "cluster", c.Cfg.Name, "host", h.Addr, "for", d, "ejections", k)
	return true
}

// usable reports whether Pick may return h: not ejected, or the cluster
// has no outlier detection. It reads the clock only for hosts that were
// ejected at some point.
func (c *Cluster) usable(h *Host) bool {
	return c.Cfg.Outlier == nil || h.outlier.ejectedUntil.Load() == 0 || !h.Ejected(time.Now())
}
