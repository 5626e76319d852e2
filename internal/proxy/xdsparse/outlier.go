package xdsparse

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
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
func parseLatencyOutlier(c *clusterv3.Cluster) (*LatencyOutlier, error) {
	md := c.GetMetadata().GetFilterMetadata()["mast"]
	if md == nil {
		return nil, nil
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
	if c.GetOutlierDetection() == nil {
		return nil, fmt.Errorf("metadata.filter_metadata.mast.latency_outlier: needs outlier_detection")
	}
	return out, nil
}

func u32or(v *wrapperspb.UInt32Value, def uint32) uint32 {
	if v == nil {
		return def
	}
	return v.GetValue()
}

// parseOutlier reads outlier_detection with Envoy's defaults; nil when the
// cluster has none. Success-rate and failure-percentage ejection are not
// implemented (Istio disables the former and never sets the latter).
func parseOutlier(c *clusterv3.Cluster) (*OutlierDetection, error) {
	lat, err := parseLatencyOutlier(c)
	if err != nil {
		return nil, err
	}
	od := c.GetOutlierDetection()
	if od == nil {
		return nil, nil
	}
	pct := func(field string, v uint32) error {
		if v > 100 {
			return fmt.Errorf("outlier_detection.%s %d: over 100", field, v)
		}
		return nil
	}
	out := &OutlierDetection{
		Consecutive5xx:     u32or(od.GetConsecutive_5Xx(), 5),
		Enforcing5xx:       u32or(od.GetEnforcingConsecutive_5Xx(), 100),
		ConsecutiveGateway: u32or(od.GetConsecutiveGatewayFailure(), 5),
		EnforcingGateway:   u32or(od.GetEnforcingConsecutiveGatewayFailure(), 0),
		MaxEjectionPercent: u32or(od.GetMaxEjectionPercent(), 10),
		BaseEjectionTime:   30 * time.Second,
		MaxEjectionTime:    300 * time.Second,
		Latency:            lat,
	}
	if od.GetSplitExternalLocalOriginErrors() {
		// The local-origin counters take effect only when split.
		out.SplitLocalOrigin = true
		out.ConsecutiveLocal = u32or(od.GetConsecutiveLocalOriginFailure(), 5)
		out.EnforcingLocal = u32or(od.GetEnforcingConsecutiveLocalOriginFailure(), 100)
	}
	if v := od.GetEnforcingSuccessRate(); v != nil && v.GetValue() != 0 {
		return nil, fmt.Errorf("outlier_detection.enforcing_success_rate %d: success-rate ejection is not supported by mast-proxy; set 0", v.GetValue())
	}
	if d := od.GetInterval(); d != nil {
		if out.Interval = d.AsDuration(); out.Interval <= 0 {
			return nil, fmt.Errorf("outlier_detection.interval: must be > 0")
		}
	}
	for _, p := range []struct {
		name string
		v    uint32
	}{{"enforcing_consecutive_5xx", out.Enforcing5xx}, {"enforcing_consecutive_gateway_failure", out.EnforcingGateway},
		{"max_ejection_percent", out.MaxEjectionPercent}, {"enforcing_consecutive_local_origin_failure", out.EnforcingLocal}} {
		if err := pct(p.name, p.v); err != nil {
			return nil, err
		}
	}
	if d := od.GetBaseEjectionTime(); d != nil {
		if out.BaseEjectionTime = d.AsDuration(); out.BaseEjectionTime <= 0 {
			return nil, fmt.Errorf("outlier_detection.base_ejection_time: must be > 0")
		}
	}
	if d := od.GetMaxEjectionTime(); d != nil {
		if out.MaxEjectionTime = d.AsDuration(); out.MaxEjectionTime <= 0 {
			return nil, fmt.Errorf("outlier_detection.max_ejection_time: must be > 0")
		}
	}
	out.MaxEjectionTime = max(out.MaxEjectionTime, out.BaseEjectionTime)
	return out, nil
}
