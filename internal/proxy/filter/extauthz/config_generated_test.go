package extauthz

// The generated-type parser that Parse replaced, kept as the oracle of the
// differential tests in wire_test.go.

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	netextauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/match/matchgen"
)

func parseListGenerated(field string, l *matcherv3.ListStringMatcher) (matchList, error) {
	if l == nil {
		return nil, nil
	}
	out := make(matchList, 0, len(l.GetPatterns()))
	for i, p := range l.GetPatterns() {
		m, err := matchgen.ParseString(p)
		if err != nil {
			return nil, fmt.Errorf("%s.patterns[%d]: %w", field, i, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// parseAnyGenerated is the generated decoder's Parse (the oracle).
func parseAnyGenerated(a *anypb.Any) (*Config, error) {
	var c extauthzv3.ExtAuthz
	if err := proto.Unmarshal(a.GetValue(), &c); err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	return parseProtoGenerated(&c)
}

// parseProtoGenerated is the old ParseProto on the decoded message.
func parseProtoGenerated(c *extauthzv3.ExtAuthz) (*Config, error) {
	if err := filter.CheckFields("", c, "grpc_service", "http_service", "transport_api_version", "failure_mode_allow",
		"failure_mode_allow_header_add", "with_request_body", "clear_route_cache", "status_on_error",
		"filter_enabled_metadata", "filter_enabled", "allowed_headers", "disallowed_headers", "encode_raw_headers",
		"include_tls_session", "max_denied_response_body_bytes"); err != nil {
		return nil, err
	}
	cfg := &Config{FailOpen: c.GetFailureModeAllow(), FailOpenHeader: c.GetFailureModeAllowHeaderAdd(), StatusOnError: 403,
		ClearRouteCache: c.GetClearRouteCache(), EncodeRawHeaders: c.GetEncodeRawHeaders(),
		IncludeTLSSession: c.GetIncludeTlsSession(), MaxDeniedBody: int(c.GetMaxDeniedResponseBodyBytes())}
	switch c.GetTransportApiVersion() {
	case corev3.ApiVersion_AUTO, corev3.ApiVersion_V3:
	default:
		return nil, fmt.Errorf("transport_api_version %v: only V3 is supported", c.GetTransportApiVersion())
	}
	if s := c.GetStatusOnError(); s != nil {
		code := int(s.GetCode())
		if _, ok := typev3.StatusCode_name[int32(code)]; !ok || code < 100 || code > 599 {
			return nil, fmt.Errorf("status_on_error: %d is not an HTTP status", code)
		}
		cfg.StatusOnError = code
	}
	if fe := c.GetFilterEnabled(); fe != nil {
		if fe.GetRuntimeKey() != "" {
			return nil, errors.New("filter_enabled.runtime_key: not supported (runtime)")
		}
		if d := fe.GetDefaultValue(); d.GetNumerator() < denominatorGenerated(d.GetDenominator()) {
			return nil, errors.New("filter_enabled.default_value: only 100% is supported")
		}
	}
	var err error
	if cfg.Enabled, err = parseMetadataMatcherGenerated(c.GetFilterEnabledMetadata()); err != nil {
		return nil, fmt.Errorf("filter_enabled_metadata.%w", err)
	}
	if cfg.AllowedHeaders, err = parseListGenerated("allowed_headers", c.GetAllowedHeaders()); err != nil {
		return nil, err
	}
	if cfg.DisallowedHeaders, err = parseListGenerated("disallowed_headers", c.GetDisallowedHeaders()); err != nil {
		return nil, err
	}
	if b := c.GetWithRequestBody(); b != nil {
		if b.GetMaxRequestBytes() == 0 {
			return nil, errors.New("with_request_body.max_request_bytes: must be greater than 0")
		}
		cfg.Body = &BodySettings{MaxBytes: int(b.GetMaxRequestBytes()), AllowPartial: b.GetAllowPartialMessage(), PackAsBytes: b.GetPackAsBytes()}
	}
	switch {
	case c.GetGrpcService() != nil:
		cfg.GRPC, cfg.Timeout, err = parseGRPCGenerated(c.GetGrpcService())
	case c.GetHttpService() != nil:
		cfg.HTTP, cfg.Timeout, err = parseHTTPGenerated(c.GetHttpService())
		if err == nil && cfg.AllowedHeaders == nil {
			cfg.AllowedHeaders = cfg.HTTP.RequestAllowed
		}
	default:
		return nil, errors.New("services: one of grpc_service or http_service is required")
	}
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

func denominatorGenerated(d typev3.FractionalPercent_DenominatorType) uint32 {
	switch d {
	case typev3.FractionalPercent_TEN_THOUSAND:
		return 10000
	case typev3.FractionalPercent_MILLION:
		return 1000000
	}
	return 100
}

func parseMetadataMatcherGenerated(m *matcherv3.MetadataMatcher) (*MetadataMatcher, error) {
	if m == nil {
		return nil, nil
	}
	if err := filter.CheckFields("", m, "filter", "path", "value", "invert"); err != nil {
		return nil, err
	}
	if m.GetFilter() == "" {
		return nil, errors.New("filter: required")
	}
	if len(m.GetPath()) != 1 || m.GetPath()[0].GetKey() == "" {
		return nil, errors.New("path: exactly one key segment is supported")
	}
	out := &MetadataMatcher{Filter: m.GetFilter(), Key: m.GetPath()[0].GetKey(), Invert: m.GetInvert()}
	v := m.GetValue()
	switch p := v.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_StringMatch:
		s, err := matchgen.ParseString(p.StringMatch)
		if err != nil {
			return nil, fmt.Errorf("value.string_match: %w", err)
		}
		out.Value = &s
	case *matcherv3.ValueMatcher_PresentMatch:
		if !p.PresentMatch {
			return nil, errors.New("value.present_match: false is not supported")
		}
	case nil:
		return nil, errors.New("value: match_pattern missing")
	default:
		name := v.ProtoReflect().WhichOneof(v.ProtoReflect().Descriptor().Oneofs().ByName("match_pattern")).Name()
		return nil, fmt.Errorf("value: %s not supported (string_match and present_match are)", name)
	}
	return out, nil
}

func timeoutOfGenerated(field string, d *durationpb.Duration) (time.Duration, error) {
	if d.CheckValid() != nil {
		return 0, fmt.Errorf("%s: invalid duration (seconds %d, nanos %d)", field, d.GetSeconds(), d.GetNanos())
	}
	t := d.AsDuration()
	if t <= 0 {
		return 0, fmt.Errorf("%s: must be positive", field)
	}
	return t, nil
}

func parseGRPCGenerated(g *corev3.GrpcService) (*GRPCService, time.Duration, error) {
	if err := filter.CheckFields("grpc_service.", g, "envoy_grpc", "timeout", "initial_metadata"); err != nil {
		return nil, 0, fmt.Errorf("%w (only envoy_grpc naming a cluster is)", err)
	}
	e := g.GetEnvoyGrpc()
	if e == nil {
		return nil, 0, errors.New("grpc_service.envoy_grpc: required")
	}
	if err := filter.CheckFields("grpc_service.envoy_grpc.", e, "cluster_name", "authority"); err != nil {
		return nil, 0, err
	}
	if e.GetClusterName() == "" {
		return nil, 0, errors.New("grpc_service.envoy_grpc.cluster_name: required")
	}
	s := &GRPCService{Cluster: e.GetClusterName(), Authority: e.GetAuthority()}
	if s.Authority == "" {
		s.Authority = s.Cluster
	}
	for i, h := range g.GetInitialMetadata() {
		if err := filter.CheckFields(fmt.Sprintf("grpc_service.initial_metadata[%d].", i), h, "key", "value"); err != nil {
			return nil, 0, err
		}
		k := strings.ToLower(h.GetKey())
		if k == "" || strings.HasPrefix(k, ":") || strings.HasPrefix(k, "grpc-") {
			return nil, 0, fmt.Errorf("grpc_service.initial_metadata[%d].key %q: not allowed", i, h.GetKey())
		}
		s.Metadata = append(s.Metadata, [2]string{k, h.GetValue()})
	}
	t := defaultGRPCTimeout
	if g.GetTimeout() != nil {
		var err error
		if t, err = timeoutOfGenerated("grpc_service.timeout", g.GetTimeout()); err != nil {
			return nil, 0, err
		}
	}
	return s, t, nil
}

func parseHTTPGenerated(h *extauthzv3.HttpService) (*HTTPService, time.Duration, error) {
	if err := filter.CheckFields("http_service.", h, "server_uri", "path_prefix", "authorization_request", "authorization_response"); err != nil {
		return nil, 0, err
	}
	u := h.GetServerUri()
	if u == nil {
		return nil, 0, errors.New("http_service.server_uri: required")
	}
	if err := filter.CheckFields("http_service.server_uri.", u, "uri", "cluster", "timeout"); err != nil {
		return nil, 0, err
	}
	if u.GetCluster() == "" {
		return nil, 0, errors.New("http_service.server_uri.cluster: required")
	}
	if u.GetTimeout() == nil {
		return nil, 0, errors.New("http_service.server_uri.timeout: required")
	}
	t, err := timeoutOfGenerated("http_service.server_uri.timeout", u.GetTimeout())
	if err != nil {
		return nil, 0, err
	}
	s := &HTTPService{Cluster: u.GetCluster(), PathPrefix: h.GetPathPrefix()}
	if s.PathPrefix != "" {
		if !strings.HasPrefix(s.PathPrefix, "/") {
			return nil, 0, fmt.Errorf("http_service.path_prefix %q: must begin with /", s.PathPrefix)
		}
		if _, err := url.ParseRequestURI(s.PathPrefix); err != nil || strings.ContainsAny(s.PathPrefix, "?# \t\r\n") {
			return nil, 0, fmt.Errorf("http_service.path_prefix %q: not a path", s.PathPrefix)
		}
	}
	if rq := h.GetAuthorizationRequest(); rq != nil {
		if err := filter.CheckFields("http_service.authorization_request.", rq, "allowed_headers", "headers_to_add"); err != nil {
			return nil, 0, err
		}
		if s.RequestAllowed, err = parseListGenerated("http_service.authorization_request.allowed_headers", rq.GetAllowedHeaders()); err != nil {
			return nil, 0, err
		}
		for i, hv := range rq.GetHeadersToAdd() {
			if err := filter.CheckFields(fmt.Sprintf("http_service.authorization_request.headers_to_add[%d].", i), hv, "key", "value"); err != nil {
				return nil, 0, err
			}
			if hv.GetKey() == "" || strings.HasPrefix(hv.GetKey(), ":") || strings.ContainsAny(hv.GetKey()+hv.GetValue(), "\r\n\x00") {
				return nil, 0, fmt.Errorf("http_service.authorization_request.headers_to_add[%d]: invalid header", i)
			}
			s.HeadersToAdd = append(s.HeadersToAdd, [2]string{strings.ToLower(hv.GetKey()), hv.GetValue()})
		}
	}
	if rs := h.GetAuthorizationResponse(); rs != nil {
		if err := filter.CheckFields("http_service.authorization_response.", rs, "allowed_upstream_headers", "allowed_upstream_headers_to_append",
			"allowed_client_headers", "allowed_client_headers_on_success", "dynamic_metadata_from_headers"); err != nil {
			return nil, 0, err
		}
		for _, l := range []struct {
			field string
			in    *matcherv3.ListStringMatcher
			out   *matchList
		}{
			{"allowed_upstream_headers", rs.GetAllowedUpstreamHeaders(), &s.Upstream},
			{"allowed_upstream_headers_to_append", rs.GetAllowedUpstreamHeadersToAppend(), &s.UpstreamAppend},
			{"allowed_client_headers", rs.GetAllowedClientHeaders(), &s.Client},
			{"allowed_client_headers_on_success", rs.GetAllowedClientHeadersOnSuccess(), &s.ClientOnSuccess},
			{"dynamic_metadata_from_headers", rs.GetDynamicMetadataFromHeaders(), &s.DynamicMetadata},
		} {
			if *l.out, err = parseListGenerated("http_service.authorization_response."+l.field, l.in); err != nil {
				return nil, 0, err
			}
		}
	}
	return s, t, nil
}

// parseNetworkGenerated is the old ParseNetwork on the decoded message.
func parseNetworkGenerated(a *anypb.Any) (*NetworkConfig, error) {
	var c netextauthzv3.ExtAuthz
	if err := proto.Unmarshal(a.GetValue(), &c); err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	if err := filter.CheckFields("", &c, "stat_prefix", "grpc_service", "failure_mode_allow", "transport_api_version",
		"filter_enabled_metadata", "include_tls_session"); err != nil {
		return nil, err
	}
	switch c.GetTransportApiVersion() {
	case corev3.ApiVersion_AUTO, corev3.ApiVersion_V3:
	default:
		return nil, fmt.Errorf("transport_api_version %v: only V3 is supported", c.GetTransportApiVersion())
	}
	if c.GetGrpcService() == nil {
		return nil, errors.New("grpc_service: required")
	}
	cfg := &NetworkConfig{FailOpen: c.GetFailureModeAllow(), IncludeTLSSession: c.GetIncludeTlsSession()}
	var err error
	if cfg.GRPC, cfg.Timeout, err = parseGRPCGenerated(c.GetGrpcService()); err != nil {
		return nil, err
	}
	if cfg.Enabled, err = parseMetadataMatcherGenerated(c.GetFilterEnabledMetadata()); err != nil {
		return nil, fmt.Errorf("filter_enabled_metadata.%w", err)
	}
	return cfg, nil
}
