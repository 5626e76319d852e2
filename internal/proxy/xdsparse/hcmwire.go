package xdsparse

import (
	"fmt"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/filter/builtin"
	"github.com/mast-mesh/mast/internal/proxy/pathnorm"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// The HttpConnectionManager is decoded from the wire (wire.go, pbwire) with
// everything it reaches: the inline route configuration, the HTTP
// filters' entries, access logs and their filters, tracing and the
// tracers' configs; so http_connection_manager/v3, accesslog/v3, trace/v3
// and the access loggers' packages are not linked into mast-proxy. The
// generated path it replaced is the tests' oracle (hcm_generated_test.go,
// TestDecodeHTTPManagerMatchesGenerated, FuzzDecodeHTTPManager).

// Field numbers of envoy.extensions.filters.network.http_connection_manager.v3
// messages and the core messages inside them.
const (
	hcmCodecType, hcmStatPrefix, hcmRds, hcmRouteConfig             = 1, 2, 3, 4
	hcmHTTPFilters, hcmTracing                                      = 5, 7
	hcmHTTP2Options, hcmServerName, hcmDrainTimeout, hcmAccessLog   = 9, 10, 12, 13
	hcmUseRemoteAddress, hcmGenerateRequestID, hcmForwardClientCert = 14, 15, 16
	hcmSetClientCertDetails, hcmXffTrustedHops, hcmSkipXffAppend    = 17, 19, 21
	hcmUpgradeConfigs, hcmStreamIdleTimeout, hcmInternalAddress     = 23, 24, 25
	hcmRequestTimeout, hcmMaxRequestHeadersKb, hcmNormalizePath     = 28, 29, 30
	hcmPreserveRequestID, hcmMergeSlashes, hcmCommonHTTPOptions     = 32, 33, 35
	hcmRequestHeadersTimeout, hcmPathNormOptions, hcmEscapedSlashes = 41, 43, 45

	rdsRouteConfigName = 2

	hfName, hfTypedConfig, hfConfigDiscovery, hfIsOptional, hfDisabled = 1, 4, 5, 6, 7

	upType, upFilters, upEnabled = 1, 2, 3

	iacCidrRanges = 2

	ccdSubject, ccdCert, ccdDNS, ccdURI, ccdChain = 1, 3, 4, 5, 6

	hpoMaxHeadersCount = 2 // hpo*, h2o*: clusterwire.go
)

// Enum values of the connection manager's fields.
const (
	codecAuto, codecHTTP1, codecHTTP2 = 0, 1, 2

	escapedDefault, escapedKeep, escapedReject, escapedRedirect, escapedForward = 0, 1, 2, 3, 4

	fccSanitize, fccForwardOnly, fccAppendForward, fccSanitizeSet, fccAlwaysForwardOnly = 0, 1, 2, 3, 4
)

// hcmConfigName is the connection manager's typed_config message.
const hcmConfigName = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

// DecodeHTTPManager decodes and parses an encoded HttpConnectionManager
// (a network filter's typed_config value).
func DecodeHTTPManager(b []byte) (*HTTPManager, error) {
	if err := validateWire(descHTTPConnectionManager, b); err != nil {
		return nil, err
	}
	return parseHTTPManagerWire(decodeWire(descHTTPConnectionManager, b))
}

func parseHTTPManagerWire(h *pbwire.Msg) (*HTTPManager, error) {
	if err := checkWire(h, hcmRules); err != nil {
		return nil, err
	}
	m := &HTTPManager{
		StatPrefix:             h.Str(hcmStatPrefix),
		MaxRequestHeadersBytes: 60 * 1024,
		MaxHeadersCount:        100,
		MaxConcurrentStreams:   100,
		IdleTimeout:            time.Hour,
		StreamIdleTimeout:      5 * time.Minute,
		RequestHeadersTimeout:  10 * time.Second,
		DrainTimeout:           5 * time.Second,
		ConnBufferLimit:        DefaultConnBufferLimit,
		GenerateRequestID:      true,
		UseRemoteAddress:       wireBool(h, hcmUseRemoteAddress, false),
		XffTrustedHops:         uint32(h.U64(hcmXffTrustedHops)),
		SkipXffAppend:          h.U64(hcmSkipXffAppend) != 0,
		PreserveRequestID:      h.U64(hcmPreserveRequestID) != 0,
		ServerName:             h.Str(hcmServerName),
	}
	m.PathNorm.NormalizePath = wireBool(h, hcmNormalizePath, false)
	m.PathNorm.MergeSlashes = h.U64(hcmMergeSlashes) != 0
	switch a := int32(h.U64(hcmEscapedSlashes)); a {
	case escapedDefault, escapedKeep:
	case escapedReject:
		m.PathNorm.EscapedSlashes = pathnorm.RejectEscapedSlashes
	case escapedRedirect:
		m.PathNorm.EscapedSlashes = pathnorm.UnescapeAndRedirect
	case escapedForward:
		m.PathNorm.EscapedSlashes = pathnorm.UnescapeAndForward
	default:
		return nil, fmt.Errorf("path_with_escaped_slashes_action %s: unknown", enumName(h, hcmEscapedSlashes, a))
	}
	if h.Has(hcmPathNormOptions) {
		return nil, fmt.Errorf("path_normalization_options: not supported")
	}
	if err := parseXFCCWire(h, m); err != nil {
		return nil, err
	}
	for i, c := range h.Sub(hcmInternalAddress).Subs(iacCidrRanges) {
		p, err := parseCIDR(c.Str(cidrPrefix), wireU32Value(c, cidrLen))
		if err != nil {
			return nil, fmt.Errorf("internal_address_config.cidr_ranges[%d]: %w", i, err)
		}
		m.InternalCIDRs = append(m.InternalCIDRs, p)
	}
	switch c := int32(h.U64(hcmCodecType)); c {
	case codecHTTP1:
		m.CodecHTTP1Only = true
	case codecHTTP2:
		m.CodecHTTP2Only = true
	case codecAuto:
	default:
		return nil, fmt.Errorf("codec_type %s: not supported", enumName(h, hcmCodecType, c))
	}
	switch {
	case h.Has(hcmRds):
		name := h.Sub(hcmRds).Str(rdsRouteConfigName)
		if name == "" {
			return nil, fmt.Errorf("rds.route_config_name: empty")
		}
		m.RDSName = name
	case h.Has(hcmRouteConfig):
		_, t, err := DecodeRouteConfiguration(h.Bytes(hcmRouteConfig))
		if err != nil {
			return nil, fmt.Errorf("route_config: %w", err)
		}
		m.Routes = t
	default:
		return nil, fmt.Errorf("rds or route_config: missing")
	}
	if h.Has(hcmMaxRequestHeadersKb) {
		v := wrapperU32(h, hcmMaxRequestHeadersKb, 0)
		if v == 0 || v > 8192 {
			return nil, fmt.Errorf("max_request_headers_kb %d: want 1-8192", v)
		}
		m.MaxRequestHeadersBytes = int(v) * 1024
	}
	if h.Has(hcmCommonHTTPOptions) {
		o := h.Sub(hcmCommonHTTPOptions)
		if o.Has(hpoIdleTimeout) {
			m.IdleTimeout = wireDuration(o.Bytes(hpoIdleTimeout))
		}
		if n := wrapperU32(o, hpoMaxHeadersCount, 0); n > 0 {
			m.MaxHeadersCount = int(n)
		}
		if o.Has(hpoMaxConnectionDuration) {
			m.MaxConnectionDuration = wireDuration(o.Bytes(hpoMaxConnectionDuration))
		}
	}
	if n := wrapperU32(h.Sub(hcmHTTP2Options), h2oMaxConcurrentStreams, 0); n > 0 && n < m.MaxConcurrentStreams {
		m.MaxConcurrentStreams = n
	}
	if h.Has(hcmStreamIdleTimeout) {
		m.StreamIdleTimeout = wireDuration(h.Bytes(hcmStreamIdleTimeout))
	}
	if h.Has(hcmRequestTimeout) {
		m.RequestTimeout = wireDuration(h.Bytes(hcmRequestTimeout))
	}
	if d := wireDuration(h.Bytes(hcmRequestHeadersTimeout)); h.Has(hcmRequestHeadersTimeout) && d > 0 {
		m.RequestHeadersTimeout = d
	}
	if h.Has(hcmDrainTimeout) {
		m.DrainTimeout = wireDuration(h.Bytes(hcmDrainTimeout))
	}
	m.GenerateRequestID = wireBool(h, hcmGenerateRequestID, true)
	for i, u := range h.Subs(hcmUpgradeConfigs) {
		t := strings.ToLower(u.Str(upType))
		if t == "" {
			return nil, fmt.Errorf("upgrade_configs[%d].upgrade_type: empty", i)
		}
		for j, f := range u.Subs(upFilters) {
			hf := httpFilterWire(f)
			if !isRouter(&hf) && !hf.IsOptional {
				return nil, fmt.Errorf("upgrade_configs[%d] %q: filters[%d] %q: not supported", i, t, j, hf.Name)
			}
		}
		if m.Upgrades == nil {
			m.Upgrades = map[string]bool{}
		}
		m.Upgrades[t] = wireBool(u, upEnabled, true)
	}
	var filters []filter.HTTPFilterConfig
	for _, f := range h.Subs(hcmHTTPFilters) {
		filters = append(filters, httpFilterWire(f))
	}
	if len(filters) == 0 || !isRouter(&filters[len(filters)-1]) {
		return nil, fmt.Errorf("http_filters: the last filter must be %s", RouterFilterName)
	}
	for i := range filters[:len(filters)-1] {
		if isRouter(&filters[i]) {
			return nil, fmt.Errorf("http_filters[%d] %q: the router must be the last filter", i, filters[i].Name)
		}
	}
	// Istio's stats filter configures this proxy's metrics, not the chain.
	var rest []filter.HTTPFilterConfig
	for i, f := range filters {
		if f.Name != StatsFilterName {
			rest = append(rest, f)
			continue
		}
		st, err := ParseStats(f.TypedConfig)
		if err != nil {
			return nil, fmt.Errorf("http_filters[%d] %q: %w", i, f.Name, err)
		}
		m.Stats = st
	}
	chain, err := builtin.Registry().BuildHTTP(rest, isRouter)
	if err != nil {
		return nil, err
	}
	m.Filters = chain
	if m.AccessLogs, err = parseAccessLogsWire(h.Subs(hcmAccessLog)); err != nil {
		return nil, err
	}
	if h.Has(hcmTracing) {
		if m.Tracing, err = parseTracingWire(h.Sub(hcmTracing)); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// httpFilterWire reads one http_filters entry.
func httpFilterWire(f *pbwire.Msg) filter.HTTPFilterConfig {
	return filter.HTTPFilterConfig{Name: f.Str(hfName), TypedConfig: typedConfig(f, hfTypedConfig),
		IsOptional: f.U64(hfIsOptional) != 0, Disabled: f.U64(hfDisabled) != 0, ConfigDiscovery: f.Has(hfConfigDiscovery)}
}

func isRouter(f *filter.HTTPFilterConfig) bool {
	if f.TypedConfig != nil {
		return isRouterAny(f.TypedConfig)
	}
	return f.Name == RouterFilterName
}

// parseXFCCWire reads forward_client_cert_details and
// set_current_client_cert_details.
func parseXFCCWire(h *pbwire.Msg, m *HTTPManager) error {
	switch v := int32(h.U64(hcmForwardClientCert)); v {
	case fccSanitize:
		m.ForwardClientCert = FCCSanitize
	case fccForwardOnly:
		m.ForwardClientCert = FCCForwardOnly
	case fccAppendForward:
		m.ForwardClientCert = FCCAppendForward
	case fccSanitizeSet:
		m.ForwardClientCert = FCCSanitizeSet
	case fccAlwaysForwardOnly:
		m.ForwardClientCert = FCCAlwaysForwardOnly
	default:
		return fmt.Errorf("forward_client_cert_details %s: not supported", enumName(h, hcmForwardClientCert, v))
	}
	if h.Has(hcmSetClientCertDetails) {
		d := h.Sub(hcmSetClientCertDetails)
		if d.U64(ccdCert) != 0 || d.U64(ccdChain) != 0 {
			return fmt.Errorf("set_current_client_cert_details: cert and chain are not supported (subject, uri and dns are)")
		}
		m.ClientCertDetails = ClientCertDetails{Subject: wireBool(d, ccdSubject, false), URI: d.U64(ccdURI) != 0, DNS: d.U64(ccdDNS) != 0}
	}
	return nil
}

// anyIs reports whether an Any's type URL names the message fullName, as
// anypb.Any.MessageIs does.
func anyIs(url, fullName string) bool {
	if !strings.HasSuffix(url, fullName) {
		return false
	}
	return len(url) == len(fullName) || url[len(url)-len(fullName)-1] == '/'
}

// unpackTyped validates an Any's value as the message wireTable[di] (the
// caller checked its type) and decodes it, as anypb.UnmarshalTo would (its
// error is the caller's to wrap, as UnmarshalTo's).
func unpackTyped(di int, value []byte) (*pbwire.Msg, error) {
	if err := validateWire(di, value); err != nil {
		return nil, err
	}
	return decodeWire(di, value), nil
}
