package xdsparse

// The generated path the connection manager's, tcp_proxy's, access logs'
// and tracing's wire decoders replaced: go-control-plane's types, as
// mast-proxy parsed them before. It is the oracle of the differential
// tests (TestDecodeHTTPManagerMatchesGenerated, the listener tests).

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/filter/builtin"
	"github.com/mast-mesh/mast/internal/proxy/match/matchgen"
	"github.com/mast-mesh/mast/internal/proxy/pathnorm"
	"github.com/mast-mesh/mast/internal/telemetry"
	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
	"github.com/mast-mesh/mast/internal/telemetry/tracing"
)

// snakeCase turns a oneof wrapper's Go name (TraceableFilter) into its
// field name (traceable_filter).
func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// generatedHTTPManager parses an HttpConnectionManager.
func generatedHTTPManager(h *hcmv3.HttpConnectionManager) (*HTTPManager, error) {
	if err := checkFields(h, hcmRules); err != nil {
		return nil, err
	}
	m := &HTTPManager{
		StatPrefix:             h.GetStatPrefix(),
		MaxRequestHeadersBytes: 60 * 1024,
		MaxHeadersCount:        100,
		MaxConcurrentStreams:   100,
		IdleTimeout:            time.Hour,
		StreamIdleTimeout:      5 * time.Minute,
		RequestHeadersTimeout:  10 * time.Second,
		DrainTimeout:           5 * time.Second,
		ConnBufferLimit:        DefaultConnBufferLimit,
		GenerateRequestID:      true,
		UseRemoteAddress:       h.GetUseRemoteAddress().GetValue(),
		XffTrustedHops:         h.GetXffNumTrustedHops(),
		SkipXffAppend:          h.GetSkipXffAppend(),
		PreserveRequestID:      h.GetPreserveExternalRequestId(),
		ServerName:             h.GetServerName(),
	}
	m.PathNorm.NormalizePath = h.GetNormalizePath().GetValue()
	m.PathNorm.MergeSlashes = h.GetMergeSlashes()
	switch a := h.GetPathWithEscapedSlashesAction(); a {
	case hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT, hcmv3.HttpConnectionManager_KEEP_UNCHANGED:
	case hcmv3.HttpConnectionManager_REJECT_REQUEST:
		m.PathNorm.EscapedSlashes = pathnorm.RejectEscapedSlashes
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
		m.PathNorm.EscapedSlashes = pathnorm.UnescapeAndRedirect
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		m.PathNorm.EscapedSlashes = pathnorm.UnescapeAndForward
	default:
		return nil, fmt.Errorf("path_with_escaped_slashes_action %v: unknown", a)
	}
	if h.GetPathNormalizationOptions() != nil {
		return nil, fmt.Errorf("path_normalization_options: not supported")
	}
	if err := generatedXFCC(h, m); err != nil {
		return nil, err
	}
	for i, c := range h.GetInternalAddressConfig().GetCidrRanges() {
		p, err := parseCIDR(c.GetAddressPrefix(), c.GetPrefixLen())
		if err != nil {
			return nil, fmt.Errorf("internal_address_config.cidr_ranges[%d]: %w", i, err)
		}
		m.InternalCIDRs = append(m.InternalCIDRs, p)
	}
	switch h.GetCodecType() {
	case hcmv3.HttpConnectionManager_HTTP1:
		m.CodecHTTP1Only = true
	case hcmv3.HttpConnectionManager_HTTP2:
		m.CodecHTTP2Only = true
	case hcmv3.HttpConnectionManager_AUTO:
	default:
		return nil, fmt.Errorf("codec_type %v: not supported", h.GetCodecType())
	}
	switch rs := h.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		if rs.Rds.GetRouteConfigName() == "" {
			return nil, fmt.Errorf("rds.route_config_name: empty")
		}
		m.RDSName = rs.Rds.GetRouteConfigName()
	case *hcmv3.HttpConnectionManager_RouteConfig:
		b, err := proto.Marshal(rs.RouteConfig)
		if err != nil {
			return nil, fmt.Errorf("route_config: %w", err)
		}
		_, t, err := DecodeRouteConfiguration(b)
		if err != nil {
			return nil, fmt.Errorf("route_config: %w", err)
		}
		m.Routes = t
	default:
		return nil, fmt.Errorf("rds or route_config: missing")
	}
	if v := h.GetMaxRequestHeadersKb(); v != nil {
		if v.GetValue() == 0 || v.GetValue() > 8192 {
			return nil, fmt.Errorf("max_request_headers_kb %d: want 1-8192", v.GetValue())
		}
		m.MaxRequestHeadersBytes = int(v.GetValue()) * 1024
	}
	if o := h.GetCommonHttpProtocolOptions(); o != nil {
		if d := o.GetIdleTimeout(); d != nil {
			m.IdleTimeout = d.AsDuration()
		}
		if n := o.GetMaxHeadersCount(); n != nil && n.GetValue() > 0 {
			m.MaxHeadersCount = int(n.GetValue())
		}
		if d := o.GetMaxConnectionDuration(); d != nil {
			m.MaxConnectionDuration = d.AsDuration()
		}
	}
	if n := h.GetHttp2ProtocolOptions().GetMaxConcurrentStreams(); n != nil && n.GetValue() > 0 && n.GetValue() < m.MaxConcurrentStreams {
		m.MaxConcurrentStreams = n.GetValue()
	}
	if d := h.GetStreamIdleTimeout(); d != nil {
		m.StreamIdleTimeout = d.AsDuration()
	}
	if d := h.GetRequestTimeout(); d != nil {
		m.RequestTimeout = d.AsDuration()
	}
	if d := h.GetRequestHeadersTimeout(); d != nil && d.AsDuration() > 0 {
		m.RequestHeadersTimeout = d.AsDuration()
	}
	if d := h.GetDrainTimeout(); d != nil {
		m.DrainTimeout = d.AsDuration()
	}
	if g := h.GetGenerateRequestId(); g != nil {
		m.GenerateRequestID = g.GetValue()
	}
	for i, u := range h.GetUpgradeConfigs() {
		t := strings.ToLower(u.GetUpgradeType())
		if t == "" {
			return nil, fmt.Errorf("upgrade_configs[%d].upgrade_type: empty", i)
		}
		for j, f := range u.GetFilters() {
			if !generatedIsRouter(f) && !f.GetIsOptional() {
				return nil, fmt.Errorf("upgrade_configs[%d] %q: filters[%d] %q: not supported", i, t, j, f.GetName())
			}
		}
		if m.Upgrades == nil {
			m.Upgrades = map[string]bool{}
		}
		m.Upgrades[t] = u.GetEnabled() == nil || u.GetEnabled().GetValue()
	}
	filters := h.GetHttpFilters()
	if len(filters) == 0 || !generatedIsRouter(filters[len(filters)-1]) {
		return nil, fmt.Errorf("http_filters: the last filter must be %s", RouterFilterName)
	}
	for i, f := range filters[:len(filters)-1] {
		if generatedIsRouter(f) {
			return nil, fmt.Errorf("http_filters[%d] %q: the router must be the last filter", i, f.GetName())
		}
	}
	// Istio's stats filter configures this proxy's metrics, not the chain.
	var rest []filter.HTTPFilterConfig
	for i, f := range filters {
		if f.GetName() != StatsFilterName {
			rest = append(rest, filter.HTTPFilterConfig{Name: f.GetName(), TypedConfig: f.GetTypedConfig(),
				IsOptional: f.GetIsOptional(), Disabled: f.GetDisabled(), ConfigDiscovery: f.GetConfigDiscovery() != nil})
			continue
		}
		st, err := ParseStats(f.GetTypedConfig())
		if err != nil {
			return nil, fmt.Errorf("http_filters[%d] %q: %w", i, f.GetName(), err)
		}
		m.Stats = st
	}
	chain, err := builtin.Registry().BuildHTTP(rest, isRouter)
	if err != nil {
		return nil, err
	}
	m.Filters = chain
	if m.AccessLogs, err = generatedAccessLogs(h.GetAccessLog()); err != nil {
		return nil, err
	}
	if m.Tracing, err = generatedTracing(h.GetTracing()); err != nil {
		return nil, err
	}
	return m, nil
}

func generatedIsRouter(f *hcmv3.HttpFilter) bool {
	if a := f.GetTypedConfig(); a != nil {
		return isRouterAny(a)
	}
	return f.GetName() == RouterFilterName
}

func generatedTCPProxy(t *tcpv3.TcpProxy) (*TCPProxy, error) {
	if err := checkFields(t, tcpProxyRules); err != nil {
		return nil, err
	}
	p := &TCPProxy{StatPrefix: t.GetStatPrefix(), IdleTimeout: time.Hour}
	switch c := t.GetClusterSpecifier().(type) {
	case *tcpv3.TcpProxy_Cluster:
		if c.Cluster == "" {
			return nil, fmt.Errorf("cluster: empty")
		}
		p.Cluster = c.Cluster
	case *tcpv3.TcpProxy_WeightedClusters:
		for i, w := range c.WeightedClusters.GetClusters() {
			if w.GetName() == "" {
				return nil, fmt.Errorf("weighted_clusters.clusters[%d]: name is empty", i)
			}
			p.Weighted = append(p.Weighted, WeightedCluster{Name: w.GetName(), Weight: w.GetWeight()})
			p.TotalWeight += w.GetWeight()
		}
		if p.TotalWeight == 0 {
			return nil, fmt.Errorf("weighted_clusters: total weight is 0")
		}
	default:
		return nil, fmt.Errorf("cluster or weighted_clusters: missing")
	}
	if d := t.GetIdleTimeout(); d != nil {
		p.IdleTimeout = d.AsDuration()
	}
	if d := t.GetMaxDownstreamConnectionDuration(); d != nil {
		p.MaxConnectionDuration = d.AsDuration()
	}
	if p.IdleTimeout < 0 || p.MaxConnectionDuration < 0 {
		return nil, fmt.Errorf("idle_timeout %v, max_downstream_connection_duration %v: negative", p.IdleTimeout, p.MaxConnectionDuration)
	}
	if tc := t.GetTunnelingConfig(); tc != nil {
		tun, err := parseTunnel(tc.GetHostname(), tc.GetUsePost(), tc.GetPostPath())
		if err != nil {
			return nil, err
		}
		p.Tunnel = tun
	}
	logs, err := generatedAccessLogs(t.GetAccessLog())
	if err != nil {
		return nil, err
	}
	p.AccessLogs = logs
	return p, nil
}

// generatedTracing turns an HCM's tracing into the proxy's; nil when absent.
func generatedTracing(t *hcmv3.HttpConnectionManager_Tracing) (*tracing.Config, error) {
	if t == nil {
		return nil, nil
	}
	if err := checkFields(t, tracingRules); err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if t.GetSpawnUpstreamSpan().GetValue() {
		return nil, fmt.Errorf("tracing.spawn_upstream_span: true is not supported (one span per request and proxy)")
	}
	c := &tracing.Config{RandomSampling: 100, ClientSampling: 100, OverallSampling: 100, MaxPathTagLength: 256}
	if p := t.GetRandomSampling(); p != nil {
		c.RandomSampling = p.GetValue()
	}
	if p := t.GetClientSampling(); p != nil {
		c.ClientSampling = p.GetValue()
	}
	if p := t.GetOverallSampling(); p != nil {
		c.OverallSampling = p.GetValue()
	}
	for _, v := range []float64{c.RandomSampling, c.ClientSampling, c.OverallSampling} {
		if v < 0 || v > 100 {
			return nil, fmt.Errorf("tracing: sampling percentage %v: not within 0-100", v)
		}
	}
	if n := t.GetMaxPathTagLength(); n != nil {
		c.MaxPathTagLength = int(n.GetValue())
	}
	for i, ct := range t.GetCustomTags() {
		tag := tracing.CustomTag{Tag: ct.GetTag()}
		switch {
		case ct.GetLiteral() != nil:
			tag.Literal = ct.GetLiteral().GetValue()
		case ct.GetEnvironment() != nil:
			tag.Env, tag.Default = ct.GetEnvironment().GetName(), ct.GetEnvironment().GetDefaultValue()
		case ct.GetRequestHeader() != nil:
			tag.Header, tag.Default = ct.GetRequestHeader().GetName(), ct.GetRequestHeader().GetDefaultValue()
		}
		if tag.Tag == "" {
			return nil, fmt.Errorf("tracing.custom_tags[%d].tag: empty", i)
		}
		c.CustomTags = append(c.CustomTags, tag)
	}
	prov := t.GetProvider()
	if prov == nil {
		return nil, fmt.Errorf("tracing.provider: required (mast-proxy has no default tracer)")
	}
	a := prov.GetTypedConfig()
	switch a.GetTypeUrl() {
	case openTelemetryConfigType:
		var o tracev3.OpenTelemetryConfig
		if err := a.UnmarshalTo(&o); err != nil {
			return nil, fmt.Errorf("tracing.provider %q: %w", prov.GetName(), err)
		}
		if err := checkFields(&o, otelRules); err != nil {
			return nil, fmt.Errorf("tracing.provider %q: %w", prov.GetName(), err)
		}
		eg := o.GetGrpcService().GetEnvoyGrpc()
		if eg.GetClusterName() == "" {
			return nil, fmt.Errorf("tracing.provider %q: grpc_service.envoy_grpc.cluster_name: required", prov.GetName())
		}
		c.Provider = tracing.Provider{Kind: tracing.OpenTelemetry, Cluster: eg.GetClusterName(), Authority: eg.GetAuthority(),
			ServiceName: o.GetServiceName(), TraceID128: true}
	case zipkinConfigType:
		var z tracev3.ZipkinConfig
		if err := a.UnmarshalTo(&z); err != nil {
			return nil, fmt.Errorf("tracing.provider %q: %w", prov.GetName(), err)
		}
		if err := checkFields(&z, zipkinRules); err != nil {
			return nil, fmt.Errorf("tracing.provider %q: %w", prov.GetName(), err)
		}
		if z.GetCollectorEndpointVersion() != tracev3.ZipkinConfig_HTTP_JSON {
			return nil, fmt.Errorf("tracing.provider %q: collector_endpoint_version %s: only HTTP_JSON is supported", prov.GetName(), z.GetCollectorEndpointVersion())
		}
		if z.GetSharedSpanContext() == nil || z.GetSharedSpanContext().GetValue() {
			return nil, fmt.Errorf("tracing.provider %q: shared_span_context: must be false (each proxy reports its own span)", prov.GetName())
		}
		if z.GetCollectorCluster() == "" || z.GetCollectorEndpoint() == "" {
			return nil, fmt.Errorf("tracing.provider %q: collector_cluster and collector_endpoint: required", prov.GetName())
		}
		c.Provider = tracing.Provider{Kind: tracing.Zipkin, Cluster: z.GetCollectorCluster(), Authority: z.GetCollectorHostname(),
			Path: z.GetCollectorEndpoint(), TraceID128: z.GetTraceId_128Bit()}
	default:
		return nil, fmt.Errorf("tracing.provider %q (%s): not supported (opentelemetry, zipkin)", prov.GetName(), a.GetTypeUrl())
	}
	return c, nil
}

// generatedAccessLogs parses an HttpConnectionManager's or TcpProxy's
// access_log: Envoy's file and stdout/stderr loggers with text or JSON
// formats. Other loggers, filters and format options are NACKed by name.
func generatedAccessLogs(logs []*accesslogv3.AccessLog) ([]accesslog.Config, error) {
	var out []accesslog.Config
	for i, l := range logs {
		c, err := generatedAccessLog(l)
		if err != nil {
			return nil, fmt.Errorf("access_log[%d] %q: %w", i, l.GetName(), err)
		}
		out = append(out, c)
	}
	return out, nil
}

func generatedAccessLog(l *accesslogv3.AccessLog) (accesslog.Config, error) {
	var c accesslog.Config
	if l.GetFilter() != nil {
		f, err := generatedAccessLogFilter(l.GetFilter())
		if err != nil {
			return c, fmt.Errorf("filter: %w", err)
		}
		c.Filter = f
	}
	a := l.GetTypedConfig()
	if a == nil {
		return c, fmt.Errorf("typed_config: missing")
	}
	var format *corev3.SubstitutionFormatString
	switch {
	case a.MessageIs((*filev3.FileAccessLog)(nil)):
		var f filev3.FileAccessLog
		if err := a.UnmarshalTo(&f); err != nil {
			return c, err
		}
		if f.GetPath() == "" {
			return c, fmt.Errorf("path: empty")
		}
		c.Path = f.GetPath()
		switch lf := f.GetAccessLogFormat().(type) {
		case nil:
		case *filev3.FileAccessLog_LogFormat:
			format = lf.LogFormat
		case *filev3.FileAccessLog_Format:
			format = &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormat{TextFormat: lf.Format}}
		case *filev3.FileAccessLog_JsonFormat:
			format = &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: lf.JsonFormat}}
		default:
			return c, fmt.Errorf("access_log_format typed_json_format: not supported")
		}
	case a.MessageIs((*streamv3.StdoutAccessLog)(nil)):
		var s streamv3.StdoutAccessLog
		if err := a.UnmarshalTo(&s); err != nil {
			return c, err
		}
		c.Path, format = "/dev/stdout", s.GetLogFormat()
	case a.MessageIs((*streamv3.StderrAccessLog)(nil)):
		var s streamv3.StderrAccessLog
		if err := a.UnmarshalTo(&s); err != nil {
			return c, err
		}
		c.Path, format = "/dev/stderr", s.GetLogFormat()
	default:
		return c, fmt.Errorf("typed_config %s: not supported", a.GetTypeUrl())
	}
	f, err := generatedLogFormat(format)
	if err != nil {
		return c, err
	}
	c.Format = f
	return c, nil
}

func generatedLogFormat(s *corev3.SubstitutionFormatString) (*accesslog.Format, error) {
	if s == nil {
		return accesslog.ParseText(envoyDefaultFormat)
	}
	switch {
	case s.GetOmitEmptyValues():
		return nil, fmt.Errorf("log_format.omit_empty_values: not supported")
	case s.GetContentType() != "":
		return nil, fmt.Errorf("log_format.content_type: not supported")
	case len(s.GetFormatters()) > 0:
		return nil, fmt.Errorf("log_format.formatters: not supported")
	case s.GetJsonFormatOptions().GetSortProperties():
		// Keys are always written sorted.
	}
	switch f := s.GetFormat().(type) {
	case *corev3.SubstitutionFormatString_TextFormat:
		return wrapFormat(accesslog.ParseText(f.TextFormat))
	case *corev3.SubstitutionFormatString_TextFormatSource:
		in, ok := f.TextFormatSource.GetSpecifier().(*corev3.DataSource_InlineString)
		if !ok {
			return nil, fmt.Errorf("log_format.text_format_source: only inline_string is supported")
		}
		return wrapFormat(accesslog.ParseText(in.InlineString))
	case *corev3.SubstitutionFormatString_JsonFormat:
		fields := map[string]string{}
		for _, k := range slices.Sorted(maps.Keys(f.JsonFormat.GetFields())) {
			sv, ok := f.JsonFormat.GetFields()[k].GetKind().(*structpb.Value_StringValue)
			if !ok {
				return nil, fmt.Errorf("log_format.json_format %q: only string values (command operators) are supported", k)
			}
			fields[k] = sv.StringValue
		}
		return wrapFormat(accesslog.ParseJSON(fields))
	default:
		return nil, fmt.Errorf("log_format: no format (text_format, text_format_source or json_format)")
	}
}

// generatedAccessLogFilter parses Envoy's access log filters that decide on
// what a record holds: status_code_filter, duration_filter,
// response_flag_filter, header_filter, and and_filter / or_filter of them
// (what mastd compiles the Telemetry API's CEL filters into).
func generatedAccessLogFilter(f *accesslogv3.AccessLogFilter) (func(*telemetry.Record) bool, error) {
	switch s := f.GetFilterSpecifier().(type) {
	case *accesslogv3.AccessLogFilter_StatusCodeFilter:
		cmp, err := generatedComparison(s.StatusCodeFilter.GetComparison())
		if err != nil {
			return nil, fmt.Errorf("status_code_filter: %w", err)
		}
		return func(r *telemetry.Record) bool { return cmp(int64(r.ResponseCode)) }, nil
	case *accesslogv3.AccessLogFilter_DurationFilter:
		cmp, err := generatedComparison(s.DurationFilter.GetComparison())
		if err != nil {
			return nil, fmt.Errorf("duration_filter: %w", err)
		}
		return func(r *telemetry.Record) bool { return cmp(r.Duration.Milliseconds()) }, nil
	case *accesslogv3.AccessLogFilter_ResponseFlagFilter:
		var want telemetry.Flags
		for i, code := range s.ResponseFlagFilter.GetFlags() {
			fl, ok := telemetry.ParseFlag(code)
			if !ok {
				return nil, fmt.Errorf("response_flag_filter.flags[%d] %q: unknown flag", i, code)
			}
			want |= fl
		}
		if want == 0 {
			return func(r *telemetry.Record) bool { return r.Flags != 0 }, nil
		}
		return func(r *telemetry.Record) bool { return r.Flags&want != 0 }, nil
	case *accesslogv3.AccessLogFilter_AndFilter, *accesslogv3.AccessLogFilter_OrFilter:
		var subs []*accesslogv3.AccessLogFilter
		and := false
		if a, ok := s.(*accesslogv3.AccessLogFilter_AndFilter); ok {
			subs, and = a.AndFilter.GetFilters(), true
		} else {
			subs = s.(*accesslogv3.AccessLogFilter_OrFilter).OrFilter.GetFilters()
		}
		var fs []func(*telemetry.Record) bool
		for i, sub := range subs {
			fn, err := generatedAccessLogFilter(sub)
			if err != nil {
				return nil, fmt.Errorf("filters[%d]: %w", i, err)
			}
			fs = append(fs, fn)
		}
		return func(r *telemetry.Record) bool {
			for _, fn := range fs {
				if fn(r) != and {
					return !and
				}
			}
			return and
		}, nil
	case *accesslogv3.AccessLogFilter_HeaderFilter:
		m, err := matchgen.ParseHeader(s.HeaderFilter.GetHeader())
		if err != nil {
			return nil, fmt.Errorf("header_filter: %w", err)
		}
		return func(r *telemetry.Record) bool {
			var v string
			var ok bool
			if m.Name == "host" {
				v, ok = r.Authority, r.Authority != ""
			} else {
				v, ok = r.RequestHeaders.Get(m.Name)
			}
			return m.MatchValue(v, ok)
		}, nil
	case *accesslogv3.AccessLogFilter_ExtensionFilter:
		return generatedExtensionFilter(s.ExtensionFilter)
	case nil:
		return nil, fmt.Errorf("filter_specifier: missing")
	default:
		name := strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%T", s), "*accesslogv3.AccessLogFilter_"), "")
		return nil, fmt.Errorf("%s: not supported", snakeCase(name))
	}
}

func generatedComparison(c *accesslogv3.ComparisonFilter) (func(int64) bool, error) {
	if c.GetValue().GetRuntimeKey() != "" {
		return nil, fmt.Errorf("comparison.value.runtime_key: not supported")
	}
	v := int64(c.GetValue().GetDefaultValue())
	switch c.GetOp() {
	case accesslogv3.ComparisonFilter_EQ:
		return func(x int64) bool { return x == v }, nil
	case accesslogv3.ComparisonFilter_GE:
		return func(x int64) bool { return x >= v }, nil
	case accesslogv3.ComparisonFilter_LE:
		return func(x int64) bool { return x <= v }, nil
	case accesslogv3.ComparisonFilter_NE:
		return func(x int64) bool { return x != v }, nil
	}
	return nil, fmt.Errorf("comparison.op %v: not supported", c.GetOp())
}

// generatedExtensionFilter parses an access log extension filter. CEL
// expression filters (what Istio's Telemetry API filter.expression becomes)
// are not evaluated by mast-proxy yet: they are NACKed by name.
func generatedExtensionFilter(e *accesslogv3.ExtensionFilter) (func(*telemetry.Record) bool, error) {
	return nil, fmt.Errorf("extension_filter %q (%s): not supported", e.GetName(), e.GetTypedConfig().GetTypeUrl())
}

func generatedXFCC(h *hcmv3.HttpConnectionManager, m *HTTPManager) error {
	switch h.GetForwardClientCertDetails() {
	case hcmv3.HttpConnectionManager_SANITIZE:
		m.ForwardClientCert = FCCSanitize
	case hcmv3.HttpConnectionManager_FORWARD_ONLY:
		m.ForwardClientCert = FCCForwardOnly
	case hcmv3.HttpConnectionManager_APPEND_FORWARD:
		m.ForwardClientCert = FCCAppendForward
	case hcmv3.HttpConnectionManager_SANITIZE_SET:
		m.ForwardClientCert = FCCSanitizeSet
	case hcmv3.HttpConnectionManager_ALWAYS_FORWARD_ONLY:
		m.ForwardClientCert = FCCAlwaysForwardOnly
	default:
		return fmt.Errorf("forward_client_cert_details %v: not supported", h.GetForwardClientCertDetails())
	}
	if d := h.GetSetCurrentClientCertDetails(); d != nil {
		if d.GetCert() || d.GetChain() {
			return fmt.Errorf("set_current_client_cert_details: cert and chain are not supported (subject, uri and dns are)")
		}
		m.ClientCertDetails = ClientCertDetails{Subject: d.GetSubject().GetValue(), URI: d.GetUri(), DNS: d.GetDns()}
	}
	return nil
}
