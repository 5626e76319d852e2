package ratelimit

import (
	"errors"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/filter/rlaction/rlactiongen"
)

// The filter's config parse with the generated types before pbwire (New
// without the connection): the oracle of the wire parse's differential
// tests. Changed since: a decode error is prefixed "decode <type URL>: ",
// an invalid timeout is "timeout: invalid duration" (it quoted durationpb's
// error), enable_x_ratelimit_headers is printed as a number.
func parseConfigGenerated(a *anypb.Any) (*Filter, string, error) {
	var c rlhttpv3.RateLimit
	if err := a.UnmarshalTo(&c); err != nil {
		return nil, "", fmt.Errorf("decode %s: %w", TypeURL, err)
	}
	if err := filter.CheckFields("", &c, "domain", "stage", "request_type", "timeout", "failure_mode_deny", "rate_limit_service",
		"enable_x_ratelimit_headers", "disable_x_envoy_ratelimited_header", "rate_limited_status", "status_on_error",
		"stat_prefix", "rate_limits", "enable_retry_after_header"); err != nil {
		return nil, "", err
	}
	f := &Filter{domain: c.GetDomain(), timeout: defaultTimeout, failDeny: c.GetFailureModeDeny(), limited: 429, onError: 500,
		envoyHeader: !c.GetDisableXEnvoyRatelimitedHeader(), retryAfter: c.GetEnableRetryAfterHeader()}
	if f.domain == "" {
		return nil, "", errors.New("domain: required")
	}
	if c.GetStage() != 0 {
		return nil, "", errors.New("stage: only stage 0 is supported")
	}
	switch c.GetRequestType() {
	case "", "both":
	default:
		return nil, "", fmt.Errorf("request_type %q: only \"both\" is supported", c.GetRequestType())
	}
	if c.Timeout != nil {
		if err := c.GetTimeout().CheckValid(); err != nil {
			return nil, "", errors.New("timeout: invalid duration")
		}
		f.timeout = c.GetTimeout().AsDuration()
	}
	switch c.GetEnableXRatelimitHeaders() {
	case rlhttpv3.RateLimit_OFF:
	case rlhttpv3.RateLimit_DRAFT_VERSION_03:
		f.headers = true
	default:
		return nil, "", fmt.Errorf("enable_x_ratelimit_headers %d: not supported", c.GetEnableXRatelimitHeaders())
	}
	if s := c.GetRateLimitedStatus(); s != nil {
		if s.GetCode() < 400 {
			return nil, "", fmt.Errorf("rate_limited_status: %d is not an error status", s.GetCode())
		}
		f.limited = int(s.GetCode())
	}
	if s := c.GetStatusOnError(); s != nil {
		if s.GetCode() < 400 {
			return nil, "", fmt.Errorf("status_on_error: %d is not an error status", s.GetCode())
		}
		f.onError = int(s.GetCode())
	}
	var err error
	if f.descriptors, err = rlactiongen.Parse("rate_limits", c.GetRateLimits()); err != nil {
		return nil, "", err
	}
	if len(f.descriptors) == 0 {
		return nil, "", errors.New("rate_limits: empty (route-level rate_limits are not supported; put the actions in the filter)")
	}
	target, err := serviceTargetGenerated(c.GetRateLimitService())
	if err != nil {
		return nil, "", err
	}
	return f, target, nil
}

func serviceTargetGenerated(s interface {
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
