package xdsparse

import (
	"fmt"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/pbwire"
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

// parseLatencyOutlier reads cluster metadata mast.latency_outlier (nil when
// absent); every key must be known.
func parseLatencyOutlier(c *pbwire.Msg) (*LatencyOutlier, error) {
	md, ok, err := filterMetadata(c, "mast")
	if err != nil || !ok {
		return nil, err
	}
	out := &LatencyOutlier{Percentile: 90, Factor: 3, MinimumExcess: 10 * time.Millisecond, RequestVolume: 20, MinimumHosts: 3}
	for k, v := range md.GetFields() {
		if k != "latency_outlier" {
			return nil, fmt.Errorf("metadata.filter_metadata.mast.%s: unknown", k)
		}
		for name, f := range v.GetStructValue().GetFields() {
			num := f.GetNumberValue()
			var err error
			switch name {
			case "percentile":
				if out.Percentile = num; num <= 0 || num > 100 {
					err = fmt.Errorf("must be in (0, 100]")
				}
			case "factor":
				if out.Factor = num; num < 1 {
					err = fmt.Errorf("must be >= 1")
				}
			case "minimum_excess":
				out.MinimumExcess, err = time.ParseDuration(f.GetStringValue())
			case "request_volume":
				if out.RequestVolume = uint32(num); num < 1 {
					err = fmt.Errorf("must be >= 1")
				}
			case "minimum_hosts":
				if out.MinimumHosts = uint32(num); num < 2 {
					err = fmt.Errorf("must be >= 2")
				}
			default:
				err = fmt.Errorf("unknown")
			}
			if err != nil {
				return nil, fmt.Errorf("metadata.filter_metadata.mast.latency_outlier.%s: %w", name, err)
			}
		}
	}
	if !c.Has(clOutlier) {
		return nil, fmt.Errorf("metadata.filter_metadata.mast.latency_outlier: needs outlier_detection")
	}
	return out, nil
}
