package extauthz

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/match"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// defaultGRPCTimeout is Envoy's for the ext_authz gRPC service.
const defaultGRPCTimeout = 200 * time.Millisecond

// Config is a parsed ExtAuthz: what the filter honours, nothing else.
type Config struct {
	// Exactly one of GRPC and HTTP is set.
	GRPC *GRPCService
	HTTP *HTTPService
	// Timeout bounds one check (grpc_service.timeout, http_service.server_uri.timeout).
	Timeout time.Duration
	// FailOpen is failure_mode_allow; FailOpenHeader is failure_mode_allow_header_add.
	FailOpen, FailOpenHeader bool
	// StatusOnError answers an error when closed (default 403).
	StatusOnError int
	// Enabled is filter_enabled_metadata (nil: every request).
	Enabled *MetadataMatcher
	// Body is with_request_body (nil: the body is not sent).
	Body *BodySettings
	// ClearRouteCache re-matches the route after an OK that changed headers.
	ClearRouteCache bool
	// AllowedHeaders / DisallowedHeaders select the client request headers
	// sent in the check (nil Allowed: all for gRPC, the defaults for HTTP).
	AllowedHeaders, DisallowedHeaders matchList
	// EncodeRawHeaders keeps repeated headers apart (gRPC: header_map).
	EncodeRawHeaders bool
	// IncludeTLSSession sends the SNI in tls_session.
	IncludeTLSSession bool
	// MaxDeniedBody truncates the denied body (0: no limit).
	MaxDeniedBody int
}

// GRPCService is grpc_service with envoy_grpc: a cluster of the proxy.
type GRPCService struct {
	Cluster, Authority string
	// Metadata is initial_metadata sent with every check.
	Metadata [][2]string
}

// HTTPService is http_service.
type HTTPService struct {
	Cluster    string
	PathPrefix string
	// HeadersToAdd are authorization_request.headers_to_add.
	HeadersToAdd [][2]string
	// RequestAllowed is authorization_request.allowed_headers (deprecated
	// spelling of the filter's allowed_headers).
	RequestAllowed matchList
	// Upstream, UpstreamAppend, Client, ClientOnSuccess and
	// DynamicMetadata are authorization_response's allowed_upstream_headers,
	// allowed_upstream_headers_to_append, allowed_client_headers,
	// allowed_client_headers_on_success, dynamic_metadata_from_headers.
	Upstream, UpstreamAppend, Client, ClientOnSuccess, DynamicMetadata matchList
}

// BodySettings is with_request_body.
type BodySettings struct {
	MaxBytes     int
	AllowPartial bool
	PackAsBytes  bool
}

// MetadataMatcher is filter_enabled_metadata: one key of one filter's
// dynamic metadata, matched by a string matcher or for presence.
type MetadataMatcher struct {
	Filter, Key string
	Value       *match.String // nil: present_match
	Invert      bool
}

// matches reports whether the dynamic metadata meta satisfies m (the
// latest value of the key, as Envoy's merged metadata holds); a nil m
// matches everything.
func (m *MetadataMatcher) matches(meta []filter.Meta) bool {
	if m == nil {
		return true
	}
	v, found := filter.LookupMeta(meta, m.Filter, m.Key)
	if found && m.Value != nil {
		found = m.Value.Match(v)
	}
	return found != m.Invert
}

// matchList is a ListStringMatcher; nil means not configured.
type matchList []match.String

func (l matchList) matches(s string) bool {
	for i := range l {
		if l[i].Match(s) {
			return true
		}
	}
	return false
}

// Field numbers of the messages Parse and ParseNetwork read (wire_gen.go
// holds their tables).
const (
	eaGRPC            = 1
	eaFailOpen        = 2
	eaHTTP            = 3
	eaBody            = 5
	eaClearCache      = 6
	eaStatusOnError   = 7
	eaFilterEnabled   = 9
	eaAPIVersion      = 12
	eaEnabledMeta     = 14
	eaAllowed         = 17
	eaTLSSession      = 18
	eaFailOpenHeader  = 19
	eaRawHeaders      = 23
	eaDisallowed      = 25
	eaMaxDeniedBody   = 30
	bufMaxBytes       = 1
	bufPartial        = 2
	bufPackAsBytes    = 3
	statusCode        = 1
	rfpDefault        = 1
	rfpRuntimeKey     = 2
	fpNumerator       = 1
	fpDenominator     = 2
	listPatterns      = 1
	mmFilter          = 1
	mmPath            = 2
	mmValue           = 3
	mmInvert          = 4
	segKey            = 1
	vmString          = 3
	vmPresent         = 5
	grpcEnvoy         = 1
	grpcTimeout       = 3
	grpcMetadata      = 5
	envoyGRPCCluster  = 1
	envoyGRPCAuth     = 2
	hvKey             = 1
	hvValue           = 2
	httpServerURI     = 1
	httpPathPrefix    = 2
	httpRequest       = 7
	httpResponse      = 8
	uriCluster        = 2
	uriTimeout        = 3
	reqAllowed        = 1
	reqHeadersToAdd   = 2
	durSeconds        = 1
	durNanos          = 2
	apiVersionV2      = 1
	apiVersionV3      = 2
	denomTenThousand  = 1
	denomMillion      = 2
	vmMatchPatternMax = 7
)

// valueMatcherNames names ValueMatcher's match_pattern members by number.
var valueMatcherNames = [...]string{1: "null_match", 2: "double_match", 3: "string_match", 4: "bool_match",
	5: "present_match", 6: "list_match", 7: "or_match"}

// httpStatusCodes are the values of envoy.type.v3.StatusCode
// (TestStatusCodes checks them against the generated enum).
var httpStatusCodes = [...]int{100, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304,
	305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421,
	422, 423, 424, 426, 428, 429, 431, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511}

func isStatusCode(code int) bool {
	for _, c := range httpStatusCodes {
		if c == code {
			return true
		}
	}
	return false
}

// apiVersion prints a core.v3.ApiVersion as its generated String does.
func apiVersion(v int32) string {
	switch v {
	case 0:
		return "AUTO"
	case apiVersionV2:
		return "V2"
	case apiVersionV3:
		return "V3"
	}
	return strconv.Itoa(int(v))
}

func parseList(field string, l *pbwire.Msg) (matchList, error) {
	if l == nil {
		return nil, nil
	}
	pats := l.Subs(listPatterns)
	out := make(matchList, 0, len(pats))
	for i, p := range pats {
		m, err := match.StringWire(p)
		if err != nil {
			return nil, fmt.Errorf("%s.patterns[%d]: %w", field, i, err)
		}
		out = append(out, m)
	}
	return out, nil
}

var errDecode = errors.New("decode")

// ParseAny decodes and checks an ExtAuthz typed config.
func ParseAny(a *anypb.Any) (*Config, error) {
	c, err := Parse(a.GetValue())
	if err != nil && errors.Is(err, errDecode) {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	return c, err
}

// Parse turns an ExtAuthz's wire bytes into a Config; every field it does
// not honour is an error naming it.
func Parse(b []byte) (*Config, error) {
	c, err := pbwire.Decode(wireTable, wireExtAuthz, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDecode, err)
	}
	if err := c.CheckFields("", "grpc_service", "http_service", "transport_api_version", "failure_mode_allow",
		"failure_mode_allow_header_add", "with_request_body", "clear_route_cache", "status_on_error",
		"filter_enabled_metadata", "filter_enabled", "allowed_headers", "disallowed_headers", "encode_raw_headers",
		"include_tls_session", "max_denied_response_body_bytes"); err != nil {
		return nil, err
	}
	cfg := &Config{FailOpen: c.Bool(eaFailOpen), FailOpenHeader: c.Bool(eaFailOpenHeader), StatusOnError: 403,
		ClearRouteCache: c.Bool(eaClearCache), EncodeRawHeaders: c.Bool(eaRawHeaders),
		IncludeTLSSession: c.Bool(eaTLSSession), MaxDeniedBody: int(c.U32(eaMaxDeniedBody))}
	if v := c.I32(eaAPIVersion); v != 0 && v != apiVersionV3 {
		return nil, fmt.Errorf("transport_api_version %s: only V3 is supported", apiVersion(v))
	}
	if c.Has(eaStatusOnError) {
		code := int(c.Sub(eaStatusOnError).I32(statusCode))
		if !isStatusCode(code) {
			return nil, fmt.Errorf("status_on_error: %d is not an HTTP status", code)
		}
		cfg.StatusOnError = code
	}
	if c.Has(eaFilterEnabled) {
		fe := c.Sub(eaFilterEnabled)
		if fe.Str(rfpRuntimeKey) != "" {
			return nil, errors.New("filter_enabled.runtime_key: not supported (runtime)")
		}
		if d := fe.Sub(rfpDefault); d.U32(fpNumerator) < denominator(d.I32(fpDenominator)) {
			return nil, errors.New("filter_enabled.default_value: only 100% is supported")
		}
	}
	if cfg.Enabled, err = parseMetadataMatcher(c.Sub(eaEnabledMeta)); err != nil {
		return nil, fmt.Errorf("filter_enabled_metadata.%w", err)
	}
	if cfg.AllowedHeaders, err = parseList("allowed_headers", c.Sub(eaAllowed)); err != nil {
		return nil, err
	}
	if cfg.DisallowedHeaders, err = parseList("disallowed_headers", c.Sub(eaDisallowed)); err != nil {
		return nil, err
	}
	if c.Has(eaBody) {
		b := c.Sub(eaBody)
		if b.U32(bufMaxBytes) == 0 {
			return nil, errors.New("with_request_body.max_request_bytes: must be greater than 0")
		}
		cfg.Body = &BodySettings{MaxBytes: int(b.U32(bufMaxBytes)), AllowPartial: b.Bool(bufPartial), PackAsBytes: b.Bool(bufPackAsBytes)}
	}
	switch c.Oneof(eaGRPC, eaHTTP) {
	case eaGRPC:
		cfg.GRPC, cfg.Timeout, err = parseGRPC(c.Sub(eaGRPC))
	case eaHTTP:
		cfg.HTTP, cfg.Timeout, err = parseHTTP(c.Sub(eaHTTP))
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

func denominator(d int32) uint32 {
	switch d {
	case denomTenThousand:
		return 10000
	case denomMillion:
		return 1000000
	}
	return 100
}

func parseMetadataMatcher(m *pbwire.Msg) (*MetadataMatcher, error) {
	if m == nil {
		return nil, nil
	}
	if err := m.CheckFields("", "filter", "path", "value", "invert"); err != nil {
		return nil, err
	}
	if m.Str(mmFilter) == "" {
		return nil, errors.New("filter: required")
	}
	path := m.Subs(mmPath)
	if len(path) != 1 || path[0].Str(segKey) == "" {
		return nil, errors.New("path: exactly one key segment is supported")
	}
	out := &MetadataMatcher{Filter: m.Str(mmFilter), Key: path[0].Str(segKey), Invert: m.Bool(mmInvert)}
	v := m.Sub(mmValue)
	switch n := v.Oneof(1, 2, 3, 4, 5, 6, vmMatchPatternMax); n {
	case vmString:
		s, err := match.StringWire(v.Sub(vmString))
		if err != nil {
			return nil, fmt.Errorf("value.string_match: %w", err)
		}
		out.Value = &s
	case vmPresent:
		if !v.Bool(vmPresent) {
			return nil, errors.New("value.present_match: false is not supported")
		}
	case 0:
		return nil, errors.New("value: match_pattern missing")
	default:
		return nil, fmt.Errorf("value: %s not supported (string_match and present_match are)", valueMatcherNames[n])
	}
	return out, nil
}

// timeoutOf reads a Duration as the old decoder did: durationpb's
// CheckValid, then a positive AsDuration.
func timeoutOf(field string, d *pbwire.Msg) (time.Duration, error) {
	secs, nanos := d.I64(durSeconds), d.I32(durNanos)
	if err := durationValid(secs, nanos); err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	t := pbwire.Duration(d)
	if t <= 0 {
		return 0, fmt.Errorf("%s: must be positive", field)
	}
	return t, nil
}

// durationValid is durationpb's CheckValid (its error text, which prints
// the message in protobuf-go's deliberately unstable text format, is not
// kept: the error names the field and both numbers).
func durationValid(secs int64, nanos int32) error {
	const maxSecs = 315_576_000_000
	if secs < -maxSecs || secs > maxSecs || nanos <= -1e9 || nanos >= 1e9 ||
		(secs > 0 && nanos < 0) || (secs < 0 && nanos > 0) {
		return fmt.Errorf("invalid duration (seconds %d, nanos %d)", secs, nanos)
	}
	return nil
}

func parseGRPC(g *pbwire.Msg) (*GRPCService, time.Duration, error) {
	if err := g.CheckFields("grpc_service.", "envoy_grpc", "timeout", "initial_metadata"); err != nil {
		return nil, 0, fmt.Errorf("%w (only envoy_grpc naming a cluster is)", err)
	}
	if !g.Has(grpcEnvoy) {
		return nil, 0, errors.New("grpc_service.envoy_grpc: required")
	}
	e := g.Sub(grpcEnvoy)
	if err := e.CheckFields("grpc_service.envoy_grpc.", "cluster_name", "authority"); err != nil {
		return nil, 0, err
	}
	if e.Str(envoyGRPCCluster) == "" {
		return nil, 0, errors.New("grpc_service.envoy_grpc.cluster_name: required")
	}
	s := &GRPCService{Cluster: e.Str(envoyGRPCCluster), Authority: e.Str(envoyGRPCAuth)}
	if s.Authority == "" {
		s.Authority = s.Cluster
	}
	for i, h := range g.Subs(grpcMetadata) {
		if err := h.CheckFields(fmt.Sprintf("grpc_service.initial_metadata[%d].", i), "key", "value"); err != nil {
			return nil, 0, err
		}
		k := strings.ToLower(h.Str(hvKey))
		if k == "" || strings.HasPrefix(k, ":") || strings.HasPrefix(k, "grpc-") {
			return nil, 0, fmt.Errorf("grpc_service.initial_metadata[%d].key %q: not allowed", i, h.Str(hvKey))
		}
		s.Metadata = append(s.Metadata, [2]string{k, h.Str(hvValue)})
	}
	t := defaultGRPCTimeout
	if g.Has(grpcTimeout) {
		var err error
		if t, err = timeoutOf("grpc_service.timeout", g.Sub(grpcTimeout)); err != nil {
			return nil, 0, err
		}
	}
	return s, t, nil
}

func parseHTTP(h *pbwire.Msg) (*HTTPService, time.Duration, error) {
	if err := h.CheckFields("http_service.", "server_uri", "path_prefix", "authorization_request", "authorization_response"); err != nil {
		return nil, 0, err
	}
	if !h.Has(httpServerURI) {
		return nil, 0, errors.New("http_service.server_uri: required")
	}
	u := h.Sub(httpServerURI)
	if err := u.CheckFields("http_service.server_uri.", "uri", "cluster", "timeout"); err != nil {
		return nil, 0, err
	}
	if u.Str(uriCluster) == "" {
		return nil, 0, errors.New("http_service.server_uri.cluster: required")
	}
	if !u.Has(uriTimeout) {
		return nil, 0, errors.New("http_service.server_uri.timeout: required")
	}
	t, err := timeoutOf("http_service.server_uri.timeout", u.Sub(uriTimeout))
	if err != nil {
		return nil, 0, err
	}
	s := &HTTPService{Cluster: u.Str(uriCluster), PathPrefix: h.Str(httpPathPrefix)}
	if s.PathPrefix != "" {
		if !strings.HasPrefix(s.PathPrefix, "/") {
			return nil, 0, fmt.Errorf("http_service.path_prefix %q: must begin with /", s.PathPrefix)
		}
		if _, err := url.ParseRequestURI(s.PathPrefix); err != nil || strings.ContainsAny(s.PathPrefix, "?# \t\r\n") {
			return nil, 0, fmt.Errorf("http_service.path_prefix %q: not a path", s.PathPrefix)
		}
	}
	if h.Has(httpRequest) {
		rq := h.Sub(httpRequest)
		if err := rq.CheckFields("http_service.authorization_request.", "allowed_headers", "headers_to_add"); err != nil {
			return nil, 0, err
		}
		if s.RequestAllowed, err = parseList("http_service.authorization_request.allowed_headers", rq.Sub(reqAllowed)); err != nil {
			return nil, 0, err
		}
		for i, hv := range rq.Subs(reqHeadersToAdd) {
			if err := hv.CheckFields(fmt.Sprintf("http_service.authorization_request.headers_to_add[%d].", i), "key", "value"); err != nil {
				return nil, 0, err
			}
			k, v := hv.Str(hvKey), hv.Str(hvValue)
			if k == "" || strings.HasPrefix(k, ":") || strings.ContainsAny(k+v, "\r\n\x00") {
				return nil, 0, fmt.Errorf("http_service.authorization_request.headers_to_add[%d]: invalid header", i)
			}
			s.HeadersToAdd = append(s.HeadersToAdd, [2]string{strings.ToLower(k), v})
		}
	}
	if h.Has(httpResponse) {
		rs := h.Sub(httpResponse)
		if err := rs.CheckFields("http_service.authorization_response.", "allowed_upstream_headers", "allowed_upstream_headers_to_append",
			"allowed_client_headers", "allowed_client_headers_on_success", "dynamic_metadata_from_headers"); err != nil {
			return nil, 0, err
		}
		for _, l := range []struct {
			field string
			num   protowire.Number
			out   *matchList
		}{
			{"allowed_upstream_headers", 1, &s.Upstream},
			{"allowed_upstream_headers_to_append", 3, &s.UpstreamAppend},
			{"allowed_client_headers", 2, &s.Client},
			{"allowed_client_headers_on_success", 4, &s.ClientOnSuccess},
			{"dynamic_metadata_from_headers", 5, &s.DynamicMetadata},
		} {
			if *l.out, err = parseList("http_service.authorization_response."+l.field, rs.Sub(l.num)); err != nil {
				return nil, 0, err
			}
		}
	}
	return s, t, nil
}
