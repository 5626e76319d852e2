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

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/filter/rlaction"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
	"github.com/mast-mesh/mast/internal/proxy/rpc"
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
	conn        rpc.Conn
}

var (
	_ filter.HTTPFilter     = (*Filter)(nil)
	_ filter.ResponseFilter = (*Filter)(nil)
)

// New parses the filter's typed config and prepares (without connecting)
// its gRPC client; the connection is closed when the filter is dropped.
func New(_ string, a *anypb.Any) (filter.HTTPFilter, error) {
	f, target, err := parseConfig(a.GetValue())
	if err != nil {
		return nil, err
	}
	if f.conn, err = rpc.Dial(target, rpc.Options{}); err != nil {
		return nil, fmt.Errorf("rate_limit_service: %w", err)
	}
	runtime.AddCleanup(f, func(c rpc.Conn) { c.Close() }, f.conn)
	return f, nil
}

// Field numbers of the filter's RateLimit, RateLimitServiceConfig,
// GrpcService and GoogleGrpc.
const (
	cfgDomain          = 1
	cfgStage           = 2
	cfgRequestType     = 3
	cfgTimeout         = 4
	cfgFailDeny        = 5
	cfgService         = 7
	cfgXRateLimit      = 8
	cfgNoEnvoyHeader   = 9
	cfgLimitedStatus   = 10
	cfgStatusOnError   = 12
	cfgRateLimits      = 17
	cfgRetryAfter      = 19
	svcGrpcService     = 2
	svcTransportAPI    = 4
	gsGoogleGrpc       = 2
	ggTargetURI        = 1
	httpStatusCode     = 1
	apiVersionV3       = 2
	durSeconds         = 1
	durNanos           = 2
	maxDurationSeconds = 315_576_000_000
)

// parseConfig decodes the filter's RateLimit from its wire bytes: the
// filter (without its connection) and the service's target.
func parseConfig(b []byte) (*Filter, string, error) {
	c, err := pbwire.Decode(wireTable, wireRateLimit, b)
	if err != nil {
		return nil, "", fmt.Errorf("decode %s: %w", TypeURL, err)
	}
	if err := c.CheckFields("", "domain", "stage", "request_type", "timeout", "failure_mode_deny", "rate_limit_service",
		"enable_x_ratelimit_headers", "disable_x_envoy_ratelimited_header", "rate_limited_status", "status_on_error",
		"stat_prefix", "rate_limits", "enable_retry_after_header"); err != nil {
		return nil, "", err
	}
	f := &Filter{domain: c.Str(cfgDomain), timeout: defaultTimeout, failDeny: c.Bool(cfgFailDeny), limited: 429, onError: 500,
		envoyHeader: !c.Bool(cfgNoEnvoyHeader), retryAfter: c.Bool(cfgRetryAfter)}
	if f.domain == "" {
		return nil, "", errors.New("domain: required")
	}
	if c.U32(cfgStage) != 0 {
		return nil, "", errors.New("stage: only stage 0 is supported")
	}
	switch rt := c.Str(cfgRequestType); rt {
	case "", "both":
	default:
		return nil, "", fmt.Errorf("request_type %q: only \"both\" is supported", rt)
	}
	if c.Has(cfgTimeout) {
		d := c.Sub(cfgTimeout)
		secs, nanos := d.I64(durSeconds), d.I32(durNanos)
		if secs < -maxDurationSeconds || secs > maxDurationSeconds || nanos <= -1e9 || nanos >= 1e9 || secs > 0 && nanos < 0 || secs < 0 && nanos > 0 {
			return nil, "", errors.New("timeout: invalid duration")
		}
		f.timeout = pbwire.Duration(d)
	}
	switch v := c.I32(cfgXRateLimit); v {
	case 0: // OFF
	case 1: // DRAFT_VERSION_03
		f.headers = true
	default:
		return nil, "", fmt.Errorf("enable_x_ratelimit_headers %d: not supported", v)
	}
	if c.Has(cfgLimitedStatus) {
		code := c.Sub(cfgLimitedStatus).I32(httpStatusCode)
		if code < 400 {
			return nil, "", fmt.Errorf("rate_limited_status: %d is not an error status", code)
		}
		f.limited = int(code)
	}
	if c.Has(cfgStatusOnError) {
		code := c.Sub(cfgStatusOnError).I32(httpStatusCode)
		if code < 400 {
			return nil, "", fmt.Errorf("status_on_error: %d is not an error status", code)
		}
		f.onError = int(code)
	}
	if f.descriptors, err = rlaction.ParseWire("rate_limits", c.Subs(cfgRateLimits)); err != nil {
		return nil, "", err
	}
	if len(f.descriptors) == 0 {
		return nil, "", errors.New("rate_limits: empty (route-level rate_limits are not supported; put the actions in the filter)")
	}
	target, err := serviceTarget(c.Sub(cfgService))
	if err != nil {
		return nil, "", err
	}
	return f, target, nil
}

// serviceTarget reads a RateLimitServiceConfig (nil: absent).
func serviceTarget(s *pbwire.Msg) (string, error) {
	if !s.Has(svcGrpcService) {
		return "", errors.New("rate_limit_service.grpc_service: required")
	}
	if s.I32(svcTransportAPI) != apiVersionV3 {
		return "", errors.New("rate_limit_service.transport_api_version: must be V3")
	}
	gs := s.Sub(svcGrpcService)
	if err := gs.CheckFields("", "google_grpc", "timeout"); err != nil {
		return "", fmt.Errorf("rate_limit_service.grpc_service.%w (envoy_grpc: name the service with google_grpc.target_uri)", err)
	}
	g := gs.Sub(gsGoogleGrpc)
	if err := g.CheckFields("", "target_uri", "stat_prefix"); err != nil {
		return "", fmt.Errorf("rate_limit_service.grpc_service.google_grpc.%w (plaintext only)", err)
	}
	if g.Str(ggTargetURI) == "" {
		return "", errors.New("rate_limit_service.grpc_service.google_grpc.target_uri: required")
	}
	return g.Str(ggTargetURI), nil
}

// DecodeHeaders asks the service and answers 429 when over limit.
func (f *Filter) DecodeHeaders(ctx context.Context, r *filter.Request) filter.Status {
	var descs [][]rlaction.Entry
	for i := range f.descriptors {
		es, ok := f.descriptors[i].Build(r, nil)
		if !ok {
			continue
		}
		descs = append(descs, es)
	}
	if len(descs) == 0 {
		return filter.Continue
	}
	req := appendRequest(nil, f.domain, descs)
	cctx, cancel := context.WithTimeout(ctx, f.timeout)
	raw, err := f.conn.Invoke(cctx, shouldRateLimit, req)
	cancel()
	var resp *pbwire.Msg
	if err == nil {
		if resp, err = pbwire.Decode(wireTable, wireRateLimitResponse, raw); err != nil {
			err = fmt.Errorf("decode RateLimitResponse: %w", err)
		}
	}
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
	sts := resp.Subs(respStatuses)
	if f.headers {
		setDraft03(r, sts)
	}
	if resp.I32(respOverallCode) == overLimit {
		r.Flags |= filter.FlagRateLimited
		if f.envoyHeader {
			r.ResponseHeaders.Set("x-envoy-ratelimited", "true")
		}
		if f.retryAfter {
			if reset := minReset(sts); reset > 0 {
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

// Field numbers of RateLimitResponse, its DescriptorStatus and RateLimit.
const (
	respOverallCode = 1
	respStatuses    = 2

	stCode      = 1
	stLimit     = 2
	stRemaining = 3
	stReset     = 4

	limPerUnit    = 1
	limUnit       = 2
	limName       = 3
	limMultiplier = 4

	overLimit  = 2 // RateLimitResponse.Code OVER_LIMIT
	valueField = 1 // UInt32Value.value
	seconds    = 1 // Duration.seconds
)

// setDraft03 sets Envoy's draft-03 headers from the statuses: the limit
// closest to being reached gives x-ratelimit-limit's first value,
// x-ratelimit-remaining and x-ratelimit-reset; every limit is listed as
// "N;w=WINDOW_SECONDS" (with ;name="..." when named).
func setDraft03(r *filter.Request, sts []*pbwire.Msg) {
	var closest *pbwire.Msg
	var policy strings.Builder
	for _, s := range sts {
		l := s.Sub(stLimit)
		if l == nil {
			continue
		}
		if closest == nil || s.U32(stRemaining) < closest.U32(stRemaining) {
			closest = s
		}
		fmt.Fprintf(&policy, ", %d;w=%d", l.U32(limPerUnit), int64(windowOf(l)/time.Second))
		if l.Str(limName) != "" {
			fmt.Fprintf(&policy, ";name=%q", l.Str(limName))
		}
	}
	if closest == nil {
		return
	}
	r.ResponseHeaders.Set("x-ratelimit-limit", strconv.FormatUint(uint64(closest.Sub(stLimit).U32(limPerUnit)), 10)+policy.String())
	r.ResponseHeaders.Set("x-ratelimit-remaining", strconv.FormatUint(uint64(closest.U32(stRemaining)), 10))
	r.ResponseHeaders.Set("x-ratelimit-reset", strconv.FormatInt(closest.Sub(stReset).I64(seconds), 10))
}

func minReset(sts []*pbwire.Msg) int64 {
	var m int64
	for _, s := range sts {
		if s.I32(stCode) == overLimit {
			if v := s.Sub(stReset).I64(seconds); m == 0 || v < m {
				m = v
			}
		}
	}
	return m
}

// windowOf is the limit's period: its unit times unit_multiplier (0 when
// the unit is unknown).
func windowOf(l *pbwire.Msg) time.Duration {
	var u time.Duration
	switch l.I32(limUnit) {
	case 1: // SECOND
		u = time.Second
	case 2: // MINUTE
		u = time.Minute
	case 3: // HOUR
		u = time.Hour
	case 4: // DAY
		u = 24 * time.Hour
	case 7: // WEEK
		u = 7 * 24 * time.Hour
	case 5: // MONTH
		u = 30 * 24 * time.Hour
	case 6: // YEAR
		u = 365 * 24 * time.Hour
	}
	if l.Has(limMultiplier) {
		u *= time.Duration(l.Sub(limMultiplier).U32(valueField))
	}
	return u
}

// shouldRateLimit is the method the filter calls.
const shouldRateLimit = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"

// appendRequest appends a RateLimitRequest with the domain and, for each
// element of descs, a RateLimitDescriptor of its entries, encoded as
// proto.Marshal encodes them (empty strings omitted).
func appendRequest(b []byte, domain string, descs [][]rlaction.Entry) []byte {
	b = appendString(b, 1, domain) // domain
	for _, es := range descs {
		n := 0
		for _, e := range es {
			n += protowire.SizeTag(1) + protowire.SizeBytes(entrySize(e))
		}
		b = protowire.AppendTag(b, 2, protowire.BytesType) // descriptors
		b = protowire.AppendVarint(b, uint64(n))
		for _, e := range es {
			b = protowire.AppendTag(b, 1, protowire.BytesType) // entries
			b = protowire.AppendVarint(b, uint64(entrySize(e)))
			b = appendString(appendString(b, 1, e.Key), 2, e.Value)
		}
	}
	return b
}

// entrySize is the encoded size of a RateLimitDescriptor.Entry's fields.
func entrySize(e rlaction.Entry) int { return stringSize(1, e.Key) + stringSize(2, e.Value) }

func stringSize(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}
