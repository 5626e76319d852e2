package config

import (
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/ratelimit/ratelimitpb"
)

// RateLimit is Mast's own rate-limit kind (docs/ratelimit.md).
var RateLimit = Kind{"ratelimit.mast.io", "RateLimit"}

// Bounds of a RateLimit: Envoy's local token bucket refuses fill intervals
// under 50ms; a rolling window keeps at most 1000 buckets.
const (
	minLocalInterval = 50 * time.Millisecond
	maxRollingBucket = 1000
)

func (v *validator) rateLimit(s *ratelimitpb.RateLimit) {
	if s.Selector != nil {
		v.selectorLabels("spec.selector.matchLabels", s.GetSelector().GetMatchLabels(), true)
	}
	local := s.GetMode() == ratelimitpb.RateLimit_LOCAL
	names := map[string]bool{}
	for i, d := range s.GetDimensions() {
		p := pathIndex("spec.dimensions", i)
		switch {
		case d.GetName() == "":
			v.errorf(p+".name", "required")
		case !isDescriptorKey(d.GetName()):
			v.errorf(p+".name", "%q: use letters, digits, '_', '-' and '.'", d.GetName())
		case names[d.GetName()]:
			v.errorf(p+".name", "duplicate dimension %q", d.GetName())
		}
		names[d.GetName()] = true
		switch src := d.GetSource().(type) {
		case nil:
			v.errorf(p, "one of requestHeader, remoteAddress, value is required")
		case *ratelimitpb.Dimension_RequestHeader:
			h := src.RequestHeader
			if h != strings.ToLower(h) || h == "" || !isHeaderToken(strings.TrimPrefix(h, ":")) {
				v.errorf(p+".requestHeader", "%q is not a lower-case header name", h)
			}
		case *ratelimitpb.Dimension_RemoteAddress:
			if !src.RemoteAddress {
				v.errorf(p+".remoteAddress", "must be true when set")
			}
		case *ratelimitpb.Dimension_Value:
			if src.Value == "" {
				v.errorf(p+".value", "must not be empty")
			}
		}
	}
	if s.GetMaxAmount() < 0 {
		v.errorf("spec.maxAmount", "%d is negative", s.GetMaxAmount())
	}
	if local && s.GetMaxAmount() > 1<<32-1 {
		v.errorf("spec.maxAmount", "%d is larger than a local token bucket holds (2^32-1)", s.GetMaxAmount())
	}
	window := v.positiveDuration("spec.validDuration", s.GetValidDuration().AsDuration(), s.ValidDuration != nil, true)
	if local && window > 0 && window < minLocalInterval {
		v.errorf("spec.validDuration", "%v is shorter than a local token bucket's minimum fill interval %v", window, minLocalInterval)
	}
	if s.GetAlgorithm() == ratelimitpb.RateLimit_ROLLING_WINDOW {
		if local {
			v.errorf("spec.algorithm", "ROLLING_WINDOW: only with mode GLOBAL (a LOCAL limit is a token bucket)")
		}
		if b := v.positiveDuration("spec.bucketDuration", s.GetBucketDuration().AsDuration(), s.BucketDuration != nil, false); b > 0 && window > 0 {
			if b > window {
				v.errorf("spec.bucketDuration", "%v is longer than validDuration %v", b, window)
			} else if window/b > maxRollingBucket {
				v.errorf("spec.bucketDuration", "%v gives more than %d buckets per validDuration", b, maxRollingBucket)
			}
		}
	} else if s.BucketDuration != nil {
		v.errorf("spec.bucketDuration", "only with algorithm ROLLING_WINDOW")
	}
	if local {
		if s.GetFailureModeDeny() {
			v.errorf("spec.failureModeDeny", "only with mode GLOBAL (a LOCAL limit needs no service)")
		}
		if s.Timeout != nil {
			v.errorf("spec.timeout", "only with mode GLOBAL (a LOCAL limit needs no service)")
		}
	}
	v.positiveDuration("spec.timeout", s.GetTimeout().AsDuration(), s.Timeout != nil, false)
	for i, o := range s.GetOverrides() {
		p := pathIndex("spec.overrides", i)
		if len(o.GetDimensions()) == 0 {
			v.errorf(p+".dimensions", "required")
		}
		for k := range o.GetDimensions() {
			if !names[k] {
				v.errorf(pathKey(p+".dimensions", k), "no dimension is named %q", k)
			}
		}
		if o.GetMaxAmount() < 0 {
			v.errorf(p+".maxAmount", "%d is negative", o.GetMaxAmount())
		}
		w := v.positiveDuration(p+".validDuration", o.GetValidDuration().AsDuration(), o.ValidDuration != nil, false)
		if local && w > 0 && w < minLocalInterval {
			v.errorf(p+".validDuration", "%v is shorter than a local token bucket's minimum fill interval %v", w, minLocalInterval)
		}
	}
}

// positiveDuration checks an optional (or required) duration field and
// returns it (0 when absent or bad).
func (v *validator) positiveDuration(field string, d time.Duration, set, required bool) time.Duration {
	switch {
	case !set && required:
		v.errorf(field, "required")
	case !set:
	case d < time.Millisecond:
		v.errorf(field, "%v: must be at least 1ms", d)
	default:
		return d
	}
	return 0
}

func isDescriptorKey(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return s != ""
}

func isHeaderToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return s != ""
}
