package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"github.com/mast-mesh/mast/internal/proxy/filter"
)

// How the filter read a RateLimitResponse with the generated types before
// rlswire: the oracle of the wire reader's differential tests (unchanged).

func setDraft03Generated(r *filter.Request, sts []*rlsv3.RateLimitResponse_DescriptorStatus) {
	var closest *rlsv3.RateLimitResponse_DescriptorStatus
	var policy strings.Builder
	for _, s := range sts {
		l := s.GetCurrentLimit()
		if l == nil {
			continue
		}
		if closest == nil || s.GetLimitRemaining() < closest.GetLimitRemaining() {
			closest = s
		}
		fmt.Fprintf(&policy, ", %d;w=%d", l.GetRequestsPerUnit(), int64(windowOfGenerated(l)/time.Second))
		if l.GetName() != "" {
			fmt.Fprintf(&policy, ";name=%q", l.GetName())
		}
	}
	if closest == nil {
		return
	}
	r.ResponseHeaders.Set("x-ratelimit-limit", strconv.FormatUint(uint64(closest.GetCurrentLimit().GetRequestsPerUnit()), 10)+policy.String())
	r.ResponseHeaders.Set("x-ratelimit-remaining", strconv.FormatUint(uint64(closest.GetLimitRemaining()), 10))
	r.ResponseHeaders.Set("x-ratelimit-reset", strconv.FormatInt(closest.GetDurationUntilReset().GetSeconds(), 10))
}

func minResetGenerated(sts []*rlsv3.RateLimitResponse_DescriptorStatus) int64 {
	var m int64
	for _, s := range sts {
		if s.GetCode() == rlsv3.RateLimitResponse_OVER_LIMIT {
			if v := s.GetDurationUntilReset().GetSeconds(); m == 0 || v < m {
				m = v
			}
		}
	}
	return m
}

func windowOfGenerated(l *rlsv3.RateLimitResponse_RateLimit) time.Duration {
	var u time.Duration
	switch l.GetUnit() {
	case rlsv3.RateLimitResponse_RateLimit_SECOND:
		u = time.Second
	case rlsv3.RateLimitResponse_RateLimit_MINUTE:
		u = time.Minute
	case rlsv3.RateLimitResponse_RateLimit_HOUR:
		u = time.Hour
	case rlsv3.RateLimitResponse_RateLimit_DAY:
		u = 24 * time.Hour
	case rlsv3.RateLimitResponse_RateLimit_WEEK:
		u = 7 * 24 * time.Hour
	case rlsv3.RateLimitResponse_RateLimit_MONTH:
		u = 30 * 24 * time.Hour
	case rlsv3.RateLimitResponse_RateLimit_YEAR:
		u = 365 * 24 * time.Hour
	}
	if m := l.GetUnitMultiplier(); m != nil {
		u *= time.Duration(m.GetValue())
	}
	return u
}
