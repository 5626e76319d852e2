package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Mast's extensions to Istio's API are annotations (docs/resilience.md):
// Istio's own tools keep them, and Istio ignores them.
const (
	// HedgeAnnotation on a VirtualService ("true") hedges the requests of its
	// routes that have a per-try timeout (Envoy's hedge_on_per_try_timeout).
	HedgeAnnotation = "networking.mast.io/hedge-on-per-try-timeout"
	// LatencyOutlierAnnotation on a DestinationRule with outlierDetection
	// ejects hosts much slower than the others ("true" or knobs).
	LatencyOutlierAnnotation = "networking.mast.io/latency-outlier"
	// AdaptiveConcurrencyAnnotation on a DestinationRule puts Envoy's
	// adaptive concurrency filter (gradient controller) in front of the
	// host's workloads ("true" or knobs).
	AdaptiveConcurrencyAnnotation = "networking.mast.io/adaptive-concurrency"
)

// LatencyOutlier are the knobs of latency-based outlier ejection.
type LatencyOutlier struct {
	// Percentile of each host's latencies over an interval (default 90).
	Percentile float64
	// Factor: a host is slow when its percentile is over Factor times the
	// median of the other hosts' (default 3)...
	Factor float64
	// MinimumExcess: ...and over it by at least this much (default 10ms).
	MinimumExcess time.Duration
	// RequestVolume: hosts with fewer answers in the interval are not
	// judged nor counted (default 20).
	RequestVolume uint32
	// MinimumHosts: fewer judged hosts, no ejection (default 3).
	MinimumHosts uint32
}

// DefaultLatencyOutlier are the defaults of "true".
var DefaultLatencyOutlier = LatencyOutlier{Percentile: 90, Factor: 3, MinimumExcess: 10 * time.Millisecond, RequestVolume: 20, MinimumHosts: 3}

// AdaptiveConcurrency are the knobs of the gradient controller; unset ones
// keep Envoy's defaults, except the two Envoy requires.
type AdaptiveConcurrency struct {
	// UpdateInterval: concurrency_update_interval (default 100ms).
	UpdateInterval time.Duration
	// MinRTTInterval: min_rtt_calc_params.interval (default 60s).
	MinRTTInterval time.Duration
	// Percentile: sample_aggregate_percentile (default 50).
	Percentile float64
	// MaxLimit: max_concurrency_limit (default 1000).
	MaxLimit uint32
	// MinConcurrency: min_rtt_calc_params.min_concurrency (default 3).
	MinConcurrency uint32
	// RequestCount: min_rtt_calc_params.request_count (default 50).
	RequestCount uint32
	// Buffer: min_rtt_calc_params.buffer percent (default 25).
	Buffer float64
	// Jitter: min_rtt_calc_params.jitter percent (default 15).
	Jitter float64
}

// DefaultAdaptiveConcurrency are the defaults of "true".
var DefaultAdaptiveConcurrency = AdaptiveConcurrency{UpdateInterval: 100 * time.Millisecond, MinRTTInterval: time.Minute,
	Percentile: 50, MaxLimit: 1000, MinConcurrency: 3, RequestCount: 50, Buffer: 25, Jitter: 15}

// knobs splits "true" or "k=v,k=v" into its pairs (nil for "true").
func knobs(s string, known ...string) (map[string]string, error) {
	s = strings.TrimSpace(s)
	if s == "true" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf(`%q: want "true" or comma-separated key=value (keys: %s)`, kv, strings.Join(known, ", "))
		}
		k = strings.TrimSpace(k)
		found := false
		for _, n := range known {
			found = found || n == k
		}
		if !found {
			return nil, fmt.Errorf("unknown key %q (keys: %s)", k, strings.Join(known, ", "))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("key %q given twice", k)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

func knobFloat(m map[string]string, k string, dst *float64, lo, hi float64) error {
	v, ok := m[k]
	if !ok {
		return nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < lo || f > hi {
		return fmt.Errorf("%s=%s: want a number in %v..%v", k, v, lo, hi)
	}
	*dst = f
	return nil
}

func knobUint(m map[string]string, k string, dst *uint32, lo uint32) error {
	v, ok := m[k]
	if !ok {
		return nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || uint32(n) < lo {
		return fmt.Errorf("%s=%s: want a whole number >= %d", k, v, lo)
	}
	*dst = uint32(n)
	return nil
}

func knobDuration(m map[string]string, k string, dst *time.Duration, lo time.Duration) error {
	v, ok := m[k]
	if !ok {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo {
		return fmt.Errorf("%s=%s: want a duration >= %v", k, v, lo)
	}
	*dst = d
	return nil
}

// ParseLatencyOutlier reads the latency-outlier annotation.
func ParseLatencyOutlier(s string) (LatencyOutlier, error) {
	out := DefaultLatencyOutlier
	m, err := knobs(s, "percentile", "factor", "minimumExcess", "requestVolume", "minimumHosts")
	if err != nil {
		return out, err
	}
	for _, e := range []error{
		knobFloat(m, "percentile", &out.Percentile, 1, 100),
		knobFloat(m, "factor", &out.Factor, 1, 1000),
		knobDuration(m, "minimumExcess", &out.MinimumExcess, 0),
		knobUint(m, "requestVolume", &out.RequestVolume, 1),
		knobUint(m, "minimumHosts", &out.MinimumHosts, 2),
	} {
		if e != nil {
			return out, e
		}
	}
	return out, nil
}

// ParseAdaptiveConcurrency reads the adaptive-concurrency annotation.
func ParseAdaptiveConcurrency(s string) (AdaptiveConcurrency, error) {
	out := DefaultAdaptiveConcurrency
	m, err := knobs(s, "updateInterval", "minRTTInterval", "percentile", "maxLimit", "minConcurrency", "requestCount", "buffer", "jitter")
	if err != nil {
		return out, err
	}
	for _, e := range []error{
		knobDuration(m, "updateInterval", &out.UpdateInterval, time.Millisecond),
		knobDuration(m, "minRTTInterval", &out.MinRTTInterval, time.Millisecond),
		knobFloat(m, "percentile", &out.Percentile, 0, 100),
		knobUint(m, "maxLimit", &out.MaxLimit, 1),
		knobUint(m, "minConcurrency", &out.MinConcurrency, 1),
		knobUint(m, "requestCount", &out.RequestCount, 1),
		knobFloat(m, "buffer", &out.Buffer, 0, 100),
		knobFloat(m, "jitter", &out.Jitter, 0, 100),
	} {
		if e != nil {
			return out, e
		}
	}
	return out, nil
}

// mastAnnotations checks Mast's extension annotations: on the kind they
// belong to, with a value they can read. A bad one is an error naming it;
// one on another kind is a warning (it would do nothing).
func (v *validator) mastAnnotations(outlier bool) {
	r := v.r
	keys := make([]string, 0, len(r.Annotations))
	for k := range r.Annotations {
		if strings.HasPrefix(k, "networking.mast.io/") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		val, f := r.Annotations[k], pathKey("metadata.annotations", k)
		var err error
		want := DestinationRule
		switch k {
		case HedgeAnnotation:
			want = VirtualService
			if val != "true" && val != "false" {
				err = fmt.Errorf(`%q: want "true" or "false"`, val)
			}
		case LatencyOutlierAnnotation:
			_, err = ParseLatencyOutlier(val)
			if err == nil && r.Kind == DestinationRule && !outlier {
				v.warnf(f, "latency-based ejection needs the DestinationRule's trafficPolicy.outlierDetection (its interval, ejection times and maxEjectionPercent); without it nothing is ejected")
			}
		case AdaptiveConcurrencyAnnotation:
			_, err = ParseAdaptiveConcurrency(val)
		default:
			v.warnf(f, "unknown Mast annotation: it has no effect")
			continue
		}
		if err != nil {
			v.errorf(f, "%s: %v", k, err)
		} else if r.Kind != want {
			v.warnf(f, "%s has effect on a %s only", k, want)
		}
	}
}
