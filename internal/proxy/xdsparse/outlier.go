package xdsparse

import (
	"time"
)

// OutlierDetection is a cluster's passive health checking: hosts that fail
// in a row are ejected from load balancing for a while.
type OutlierDetection struct {
	// Consecutive5xx ejects after that many 5xx answers (or local failures:
	// connect error, reset, timeout) in a row; 0 disables. Enforcing5xx is
	// the percentage of such ejections that happen.
	Consecutive5xx, Enforcing5xx uint32
	// ConsecutiveGateway ejects after that many 502/503/504 (or local
	// failures) in a row; EnforcingGateway as above.
	ConsecutiveGateway, EnforcingGateway uint32
	// SplitLocalOrigin (split_external_local_origin_errors) counts local
	// failures apart: they no longer count as 5xx or gateway errors, and
	// ConsecutiveLocal of them in a row eject (EnforcingLocal percent).
	SplitLocalOrigin                 bool
	ConsecutiveLocal, EnforcingLocal uint32
	// BaseEjectionTime times the number of times a host was ejected is how
	// long it stays out, at most MaxEjectionTime.
	BaseEjectionTime, MaxEjectionTime time.Duration
	// MaxEjectionPercent bounds the share of the cluster's hosts ejected at
	// once (at least one host can always be ejected).
	MaxEjectionPercent uint32
	// Interval is the time between the detector's sweeps, which return
	// ejected hosts: an ejection lasts a whole number of intervals. Unset
	// (0), a host returns as soon as its ejection time is over.
	Interval time.Duration
	// Latency is Mast's latency-based ejection (cluster metadata
	// mast.latency_outlier), nil for none.
	Latency *LatencyOutlier
}

// LatencyOutlier ejects hosts much slower than the rest of their cluster:
// every interval, each host that answered at least RequestVolume times has
// the Percentile of its latencies (to the response head) compared with the
// median of the other such hosts' percentiles; a host over Factor times
// that median, and over it by at least MinimumExcess, is ejected as a
// failing host is (base_ejection_time, max_ejection_percent). Fewer than
// MinimumHosts such hosts: nobody is judged.
type LatencyOutlier struct {
	Percentile, Factor          float64
	MinimumExcess               time.Duration
	RequestVolume, MinimumHosts uint32
}

