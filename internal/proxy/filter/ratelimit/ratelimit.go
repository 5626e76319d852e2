// Package ratelimit is Envoy's global rate-limit HTTP filter
// (envoy.filters.http.ratelimit): for every request it builds the
// descriptors of the filter's rate_limits actions and asks a rate-limit
// service (envoy.service.ratelimit.v3, such as mastd's on 8081) whether the
// request is over limit; 429 when it is, with Envoy's draft-03
// x-ratelimit-limit/remaining/reset headers; failure_mode_deny decides when
// the service cannot answer.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/filter/rlaction"
	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// Name is the filter's well-known name.
const Name = "envoy.filters.http.ratelimit"

// TypeURL is its configuration's type URL.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit"

// defaultTimeout is Envoy's.
const defaultTimeout = 20 * time.Millisecond

// Filter asks the rate-limit service about every request.
type Filter struct {
	domain      string
	timeout     time.Duration
	failDeny    bool
	headers     bool // draft-03 x-ratelimit-* headers
	envoyHeader bool // x-envoy-ratelimited on 429
	limited     int  // status when over limit
	onError     int  // status when the service fails and failure_mode_deny
	retryAfter  bool
	descriptors []rlaction.Descriptor
	client      rlsv3.RateLimitServiceClient
	conn        *grpc.ClientConn
}

var (
	_ filter.HTTPFilter     = (*Filter)(nil)
	_ filter.ResponseFilter = (*Filter)(nil)
)

// New parses the filter's typed config and prepares (without connecting)
// its gRPC client; the connection is closed when the filter is dropped.
func New(_ string, a *anypb.Any) (filter.HTTPFilter, error) {
	var c rlhttpv3.RateLimit
	if err := a.UnmarshalTo(&c); err != nil {
		return nil, err
	}
	if err := filter.CheckFields("", &c, "domain", "stage", "request_type", "timeout", "failure_mode_deny", "rate_limit_service",
		"enable_x_ratelimit_headers", "disable_x_envoy_ratelimited_header", "rate_limited_status", "status_on_error",
		"stat_prefix", "rate_limits", "enable_retry_after_header"); err != nil {
		return nil, err
	}
	f := &Filter{domain: c.GetDomain(), timeout: defaultTimeout, failDeny: c.GetFailureModeDeny(), limited: 429, onError: 500,
		envoyHeader: !c.GetDisableXEnvoyRatelimitedHeader(), retryAfter: c.GetEnableRetryAfterHeader()}
	if f.domain == "" {
		return nil, errors.New("domain: required")
	}
	if c.GetStage() != 0 {
		return nil, errors.New("stage: only stage 0 is supported")
	}
	switch c.GetRequestType() {
	case "", "both":
	default:
		return nil, fmt.Errorf("request_type %q: only \"both\" is supported", c.GetRequestType())
	}
	if c.Timeout != nil {
		if err := c.GetTimeout().CheckValid(); err != nil {
			return nil, fmt.Errorf("timeout: %w", err)
		}
		f.timeout = c.GetTimeout().AsDuration()
	}
	switch c.GetEnableXRatelimitHeaders() {
	case rlhttpv3.RateLimit_OFF:
	case rlhttpv3.RateLimit_DRAFT_VERSION_03:
		f.headers = true
	default:
		return nil, fmt.Errorf("enable_x_ratelimit_headers %v: not supported", c.GetEnableXRatelimitHeaders())
	}
	if s := c.GetRateLimitedStatus(); s != nil {
		if s.GetCode() < 400 {
			return nil, fmt.Errorf("rate_limited_status: %d is not an error status", s.GetCode())
		}
		f.limited = int(s.GetCode())
	}
	if s := c.GetStatusOnError(); s != nil {
		if s.GetCode() < 400 {
			return nil, fmt.Errorf("status_on_error: %d is not an error status", s.GetCode())
		}
		f.onError = int(s.GetCode())
	}
	var err error
	if f.descriptors, err = rlaction.Parse("rate_limits", c.GetRateLimits()); err != nil {
		return nil, err
	}
	if len(f.descriptors) == 0 {
		return nil, errors.New("rate_limits: empty (route-level rate_limits are not supported; put the actions in the filter)")
	}
	target, err := serviceTarget(c.GetRateLimitService())
	if err != nil {
		return nil, err
	}
	if f.conn, err = grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return nil, fmt.Errorf("rate_limit_service: %w", err)
	}
	f.client = rlsv3.NewRateLimitServiceClient(f.conn)
	runtime.AddCleanup(f, func(c *grpc.ClientConn) { c.Close() }, f.conn)
	return f, nil
}

func serviceTarget(s interface {
	GetGrpcService() *corev3.GrpcService
	GetTransportApiVersion() corev3.ApiVersion
}) (string, error) {
	if s == nil || s.GetGrpcService() == nil {
		return "", errors.New("rate_limit_service.grpc_service: required")
	}
	if s.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		return "", errors.New("rate_limit_service.transport_api_version: must be V3")
	}
	gs := s.GetGrpcService()
	if err := filter.CheckFields("", gs, "google_grpc", "timeout"); err != nil {
		return "", fmt.Errorf("rate_limit_service.grpc_service.%w (envoy_grpc: name the service with google_grpc.target_uri)", err)
	}
	g := gs.GetGoogleGrpc()
	if err := filter.CheckFields("", g, "target_uri", "stat_prefix"); err != nil {
		return "", fmt.Errorf("rate_limit_service.grpc_service.google_grpc.%w (plaintext only)", err)
	}
	if g.GetTargetUri() == "" {
		return "", errors.New("rate_limit_service.grpc_service.google_grpc.target_uri: required")
	}
	return g.GetTargetUri(), nil
}

// DecodeHeaders asks the service and answers 429 when over limit.
func (f *Filter) DecodeHeaders(ctx context.Context, r *filter.Request) filter.Status {
	req := &rlsv3.RateLimitRequest{Domain: f.domain}
	var buf [8]rlaction.Entry
	for i := range f.descriptors {
		es, ok := f.descriptors[i].Build(r, buf[:0])
		if !ok {
			continue
		}
		d := &rlcommonv3.RateLimitDescriptor{Entries: make([]*rlcommonv3.RateLimitDescriptor_Entry, len(es))}
		for j, e := range es {
			d.Entries[j] = &rlcommonv3.RateLimitDescriptor_Entry{Key: e.Key, Value: e.Value}
		}
		req.Descriptors = append(req.Descriptors, d)
	}
	if len(req.Descriptors) == 0 {
		return filter.Continue
	}
	cctx, cancel := context.WithTimeout(ctx, f.timeout)
	resp, err := f.client.ShouldRateLimit(cctx, req)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return filter.Stop // the client went away
		}
		r.AddMeta(Name, "error", err.Error())
		if f.failDeny {
			r.Details = "rate_limiter_error"
			return r.LocalReply(f.onError, "", "RLSE")
		}
		return filter.Continue
	}
	if f.headers {
		setDraft03(r, resp.GetStatuses())
	}
	if resp.GetOverallCode() == rlsv3.RateLimitResponse_OVER_LIMIT {
		r.Flags |= filter.FlagRateLimited
		if f.envoyHeader {
			r.ResponseHeaders.Set("x-envoy-ratelimited", "true")
		}
		if f.retryAfter {
			if reset := minReset(resp.GetStatuses()); reset > 0 {
				r.ResponseHeaders.Set("retry-after", strconv.FormatInt(reset, 10))
			}
		}
		r.Details = "request_rate_limited"
		return r.LocalReply(f.limited, "", "RL")
	}
	return filter.Continue
}

// EncodeHeaders adds the x-ratelimit-* headers to the response.
func (f *Filter) EncodeHeaders(r *filter.Request, _ int, h *headers.List) { r.FlushResponseHeaders(h) }

// setDraft03 sets Envoy's draft-03 headers from the statuses: the limit
// closest to being reached gives x-ratelimit-limit's first value,
// x-ratelimit-remaining and x-ratelimit-reset; every limit is listed as
// "N;w=WINDOW_SECONDS" (with ;name="..." when named).
func setDraft03(r *filter.Request, sts []*rlsv3.RateLimitResponse_DescriptorStatus) {
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
		fmt.Fprintf(&policy, ", %d;w=%d", l.GetRequestsPerUnit(), int64(windowOf(l)/time.Second))
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

func minReset(sts []*rlsv3.RateLimitResponse_DescriptorStatus) int64 {
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

// windowOf is the limit's period: its unit times unit_multiplier (0 when
// the unit is unknown).
func windowOf(l *rlsv3.RateLimitResponse_RateLimit) time.Duration {
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
