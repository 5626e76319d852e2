package httpproxy

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

func retriableErr(rp *xdsparse.RetryPolicy, err error) bool {
	if rp == nil {
		return false
	}
	switch {
	case errors.Is(err, upstream.ErrConnect):
		return rp.On&(xdsparse.RetryConnectFailure|xdsparse.Retry5xx|xdsparse.RetryGatewayError) != 0
	case errors.Is(err, upstream.ErrRefused):
		return rp.On&(xdsparse.RetryRefusedStream|xdsparse.Retry5xx|xdsparse.RetryGatewayError|xdsparse.RetryReset) != 0
	case errors.Is(err, upstream.ErrReset):
		return rp.On&(xdsparse.RetryReset|xdsparse.Retry5xx|xdsparse.RetryGatewayError) != 0
	case errors.Is(err, upstream.ErrTimeout):
		return rp.On&(xdsparse.Retry5xx|xdsparse.RetryGatewayError) != 0
	case errors.Is(err, upstream.ErrProtocol):
		return rp.On&(xdsparse.Retry5xx|xdsparse.RetryGatewayError) != 0
	}
	return false
}

func retriableStatus(rp *xdsparse.RetryPolicy, status int, h headers.List) bool {
	if rp == nil {
		return false
	}
	if rp.On&xdsparse.RetryGRPCMask != 0 {
		// gRPC conditions: the status of a trailers-only response (in its headers).
		if v, ok := h.Get("grpc-status"); ok {
			if code, err := strconv.Atoi(v); err == nil && rp.On&xdsparse.GRPCRetryBit(code) != 0 {
				return true
			}
		}
	}
	if rp.On&xdsparse.RetryEnvoyRateLimited != 0 {
		if _, ok := h.Get("x-envoy-ratelimited"); ok {
			return true
		}
	}
	if status >= 500 && rp.On&xdsparse.Retry5xx != 0 {
		return true
	}
	if (status == 502 || status == 503 || status == 504) && rp.On&xdsparse.RetryGatewayError != 0 {
		return true
	}
	if status == 409 && rp.On&xdsparse.RetryRetriable4xx != 0 {
		return true
	}
	if rp.On&xdsparse.RetryRetriableStatusCodes != 0 {
		for _, c := range rp.StatusCodes {
			if c == status {
				return true
			}
		}
	}
	return false
}

// routeTimeout is the timeout of a request on the route: the route's, or,
// for gRPC when the route says so, the client's grpc-timeout (capped by the
// route's maximum), further bounded by max_stream_duration. 0 is none.
func routeTimeout(act *xdsparse.RouteAction, req *dsRequest) time.Duration {
	t := act.Timeout
	if act.GRPCTimeout {
		if v, ok := req.header.Get("grpc-timeout"); ok {
			if d, ok := parseGRPCTimeout(v); ok {
				t = d
				if act.GRPCTimeoutMax > 0 && (t == 0 || t > act.GRPCTimeoutMax) {
					t = act.GRPCTimeoutMax
				}
			}
		}
	}
	if m := act.MaxStreamDuration; m > 0 && (t == 0 || m < t) {
		t = m
	}
	return t
}

// parseGRPCTimeout parses gRPC's "TimeoutValue TimeoutUnit" (at most 8 digits, one of H M S m u n).
func parseGRPCTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// sleepBackoff waits Envoy's jittered exponential back-off before retry n;
// false when the stream ended or the route timeout (by, if set) passes
// first.
func sleepBackoff(ctx context.Context, by time.Time, rp *xdsparse.RetryPolicy, n int) bool {
	d := rp.BackoffBase
	for i := 0; i < n && d < rp.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, rp.BackoffMax)
	d = time.Duration(rand.Int64N(int64(d) + 1))
	if !by.IsZero() && time.Until(by) <= d {
		if left := time.Until(by); left > 0 {
			t := time.NewTimer(left)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
		}
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// priorityUpdateFrequency is the policy's previous_priorities update
// frequency, 0 without a policy or retry priority.
func priorityUpdateFrequency(rp *xdsparse.RetryPolicy) int {
	if rp == nil {
		return 0
	}
	return rp.PriorityUpdateFrequency
}
