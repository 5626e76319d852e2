package xdsparse

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/telemetry"
	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
)

// generatedHTTPManagerBytes is the old path: proto.Unmarshal into
// go-control-plane's HttpConnectionManager, then generatedHTTPManager.
func generatedHTTPManagerBytes(b []byte) (*HTTPManager, error) {
	var h hcmv3.HttpConnectionManager
	if err := proto.Unmarshal(b, &h); err != nil {
		return nil, err
	}
	return generatedHTTPManager(&h)
}

// decodeTCPProxy is the wire path of a tcp_proxy typed_config's value.
func decodeTCPProxy(b []byte) (*TCPProxy, error) {
	t, err := unpackTyped(descTCPProxy, b)
	if err != nil {
		return nil, err
	}
	return parseTCPProxyWire(t)
}

func generatedTCPProxyBytes(b []byte) (*TCPProxy, error) {
	var t tcpv3.TcpProxy
	if err := proto.Unmarshal(b, &t); err != nil {
		return nil, err
	}
	return generatedTCPProxy(&t)
}

// sampleRecords are what access log filters are compared on (functions
// cannot be compared).
var sampleRecords = func() []telemetry.Record {
	var out []telemetry.Record
	for _, code := range []int{200, 399, 400, 401, 503} {
		for _, d := range []time.Duration{0, 99 * time.Millisecond, 100 * time.Millisecond, time.Second} {
			for _, fl := range []telemetry.Flags{0, telemetry.Flags(1), telemetry.Flags(1 << 3)} {
				r := telemetry.Record{ResponseCode: code, Duration: d, Flags: fl, Authority: []string{"", "reviews"}[code%2]}
				if code%3 == 0 {
					r.RequestHeaders = headers.List{{Name: "x-user", Value: "jason"}}
				}
				out = append(out, r)
			}
		}
	}
	return out
}()

// sameLogs compares access log configurations, their filters by what
// they decide on sampleRecords; it clears the filters of copies.
func sameLogs(g, w []accesslog.Config) ([]accesslog.Config, []accesslog.Config, bool) {
	if len(g) != len(w) {
		return g, w, false
	}
	g, w = append([]accesslog.Config(nil), g...), append([]accesslog.Config(nil), w...)
	for i := range g {
		if (g[i].Filter == nil) != (w[i].Filter == nil) {
			return g, w, false
		}
		if g[i].Filter != nil {
			for j := range sampleRecords {
				if g[i].Filter(&sampleRecords[j]) != w[i].Filter(&sampleRecords[j]) {
					return g, w, false
				}
			}
		}
		g[i].Filter, w[i].Filter = nil, nil
	}
	return g, w, true
}

// compareHTTPManagers decodes b both ways and reports a difference (see
// compareRoutes).
func compareHTTPManagers(t *testing.T, b []byte) {
	t.Helper()
	g, gErr := generatedHTTPManagerBytes(b)
	w, wErr := DecodeHTTPManager(b)
	if !sameError(gErr, wErr) {
		t.Fatalf("generated: %v\nwire:      %v\nbytes %x", gErr, wErr, b)
	}
	if g == nil || w == nil {
		if g != w {
			t.Fatalf("generated: %+v\nwire:      %+v", g, w)
		}
		return
	}
	gc, wc := *g, *w
	var ok bool
	if gc.AccessLogs, wc.AccessLogs, ok = sameLogs(g.AccessLogs, w.AccessLogs); !ok {
		t.Fatalf("access logs differ\ngenerated: %+v\nwire:      %+v\nbytes %x", g.AccessLogs, w.AccessLogs, b)
	}
	if !reflect.DeepEqual(gc, wc) {
		t.Fatalf("generated: %+v\nwire:      %+v\nbytes %x", gc, wc, b)
	}
}

func compareTCPProxies(t *testing.T, b []byte) {
	t.Helper()
	g, gErr := generatedTCPProxyBytes(b)
	w, wErr := decodeTCPProxy(b)
	if !sameError(gErr, wErr) {
		t.Fatalf("generated: %v\nwire:      %v\nbytes %x", gErr, wErr, b)
	}
	if g == nil || w == nil {
		if g != w {
			t.Fatalf("generated: %+v\nwire:      %+v", g, w)
		}
		return
	}
	gc, wc := *g, *w
	var ok bool
	if gc.AccessLogs, wc.AccessLogs, ok = sameLogs(g.AccessLogs, w.AccessLogs); !ok {
		t.Fatalf("access logs differ\nbytes %x", b)
	}
	if !reflect.DeepEqual(gc, wc) {
		t.Fatalf("generated: %+v\nwire:      %+v\nbytes %x", gc, wc, b)
	}
}

// gen holds a random source and whether this message is to be clean.
type gen struct {
	r     *rand.Rand
	clean bool
}

func (g *gen) p(pct int) bool   { return g.r.IntN(100) < pct }
func (g *gen) bad(pct int) bool { return !g.clean && g.p(pct) }
func (g *gen) pick(s ...string) string {
	if g.clean {
		return s[g.r.IntN(min(len(s), 2))]
	}
	return s[g.r.IntN(len(s))]
}

func (g *gen) duration() *durationpb.Duration {
	return durationpb.New(time.Duration(g.r.IntN(5000)-200*b2i(!g.clean)) * time.Millisecond)
}

// logFilter is a random access log filter, nested up to depth.
func (g *gen) logFilter(depth int) *accesslogv3.AccessLogFilter {
	cmp := func() *accesslogv3.ComparisonFilter {
		c := &accesslogv3.ComparisonFilter{Op: accesslogv3.ComparisonFilter_Op(g.r.IntN(4 + 2*b2i(!g.clean)))}
		if g.p(90) {
			c.Value = &corev3.RuntimeUInt32{DefaultValue: uint32(g.r.IntN(600))}
			if g.bad(10) {
				c.Value.RuntimeKey = "k"
			}
		}
		return c
	}
	f := &accesslogv3.AccessLogFilter{}
	switch n := g.r.IntN(10); {
	case n == 0:
		f.FilterSpecifier = &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: cmp()}}
	case n == 1:
		f.FilterSpecifier = &accesslogv3.AccessLogFilter_DurationFilter{DurationFilter: &accesslogv3.DurationFilter{Comparison: cmp()}}
	case n == 2:
		rf := &accesslogv3.ResponseFlagFilter{}
		for range g.r.IntN(3) {
			rf.Flags = append(rf.Flags, g.pick("NR", "UH", "XX"))
		}
		f.FilterSpecifier = &accesslogv3.AccessLogFilter_ResponseFlagFilter{ResponseFlagFilter: rf}
	case n <= 4 && depth > 0:
		var subs []*accesslogv3.AccessLogFilter
		for range g.r.IntN(3) {
			subs = append(subs, g.logFilter(depth-1))
		}
		if n == 3 {
			f.FilterSpecifier = &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{Filters: subs}}
		} else {
			f.FilterSpecifier = &accesslogv3.AccessLogFilter_OrFilter{OrFilter: &accesslogv3.OrFilter{Filters: subs}}
		}
	case n <= 6:
		hm := &routev3.HeaderMatcher{Name: g.pick("x-user", ":authority", "")}
		switch g.r.IntN(4) {
		case 0:
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "jason"}}}
		case 1:
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: g.p(50)}
		case 2:
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
				SafeRegex: &matcherv3.RegexMatcher{Regex: g.pick("rev.*", "j[a-z]+", "(")}}}}
		}
		hm.InvertMatch = g.p(20)
		f.FilterSpecifier = &accesslogv3.AccessLogFilter_HeaderFilter{HeaderFilter: &accesslogv3.HeaderFilter{Header: hm}}
	case n == 7 && !g.clean:
		f.FilterSpecifier = &accesslogv3.AccessLogFilter_ExtensionFilter{ExtensionFilter: &accesslogv3.ExtensionFilter{Name: "cel",
			ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/x.Cel"}}}}
	case n == 8 && !g.clean:
		f.FilterSpecifier = &accesslogv3.AccessLogFilter_TraceableFilter{TraceableFilter: &accesslogv3.TraceableFilter{}}
	case n == 9 && !g.clean:
		if g.p(50) {
			f.FilterSpecifier = &accesslogv3.AccessLogFilter_GrpcStatusFilter{GrpcStatusFilter: &accesslogv3.GrpcStatusFilter{}}
		}
	default:
		f.FilterSpecifier = &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: cmp()}}
	}
	return f
}

func (g *gen) logFormat() *corev3.SubstitutionFormatString {
	s := &corev3.SubstitutionFormatString{}
	switch g.r.IntN(4) {
	case 0:
		s.Format = &corev3.SubstitutionFormatString_TextFormat{TextFormat: g.pick("[%START_TIME%] %RESPONSE_CODE%\n", "%REQ(:PATH)% %HOSTNAME%\n", "%BOGUS%")}
	case 1:
		fields := map[string]*structpb.Value{"code": structpb.NewStringValue("%RESPONSE_CODE%"), "path": structpb.NewStringValue("%REQ(:PATH)%")}
		if g.bad(20) {
			fields["n"], fields["b"] = structpb.NewNumberValue(1), structpb.NewBoolValue(true)
		}
		s.Format = &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: &structpb.Struct{Fields: fields}}
	case 2:
		ds := &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "%DURATION%\n"}}
		if g.bad(30) {
			ds.Specifier = &corev3.DataSource_Filename{Filename: "/f"}
		}
		s.Format = &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: ds}
	}
	if g.bad(5) {
		s.OmitEmptyValues = true
	}
	if g.bad(5) {
		s.ContentType = "text/plain"
	}
	if g.bad(5) {
		s.Formatters = []*corev3.TypedExtensionConfig{{Name: "x"}}
	}
	if g.p(10) {
		s.JsonFormatOptions = &corev3.JsonFormatOptions{SortProperties: true}
	}
	return s
}

func (g *gen) accessLogs() []*accesslogv3.AccessLog {
	var out []*accesslogv3.AccessLog
	for range g.r.IntN(3) {
		l := &accesslogv3.AccessLog{Name: g.pick("envoy.access_loggers.file", "envoy.access_loggers.stdout", "")}
		var cfg proto.Message
		switch g.r.IntN(6) {
		case 0, 1:
			f := &filev3.FileAccessLog{Path: g.pick("/dev/stdout", "/tmp/access.log", "")}
			switch g.r.IntN(5) {
			case 0:
				f.AccessLogFormat = &filev3.FileAccessLog_LogFormat{LogFormat: g.logFormat()}
			case 1:
				f.AccessLogFormat = &filev3.FileAccessLog_Format{Format: "%RESPONSE_CODE%\n"}
			case 2:
				f.AccessLogFormat = &filev3.FileAccessLog_JsonFormat{JsonFormat: &structpb.Struct{Fields: map[string]*structpb.Value{"c": structpb.NewStringValue("%RESPONSE_CODE%")}}}
			case 3:
				if g.bad(50) {
					f.AccessLogFormat = &filev3.FileAccessLog_TypedJsonFormat{TypedJsonFormat: &structpb.Struct{}}
				}
			}
			cfg = f
		case 2:
			s := &streamv3.StdoutAccessLog{}
			if g.p(70) {
				s.AccessLogFormat = &streamv3.StdoutAccessLog_LogFormat{LogFormat: g.logFormat()}
			}
			cfg = s
		case 3:
			s := &streamv3.StderrAccessLog{}
			if g.p(70) {
				s.AccessLogFormat = &streamv3.StderrAccessLog_LogFormat{LogFormat: g.logFormat()}
			}
			cfg = s
		case 4:
			if g.clean {
				cfg = &streamv3.StdoutAccessLog{}
			} else {
				cfg = &typev3.Percent{}
			}
		}
		if cfg != nil {
			l.ConfigType = &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(cfg)}
		}
		if g.p(40) {
			l.Filter = g.logFilter(2)
		}
		out = append(out, l)
	}
	return out
}

func (g *gen) tracing() *hcmv3.HttpConnectionManager_Tracing {
	t := &hcmv3.HttpConnectionManager_Tracing{}
	pct := func() *typev3.Percent {
		if g.p(50) {
			return nil
		}
		return &typev3.Percent{Value: float64(g.r.IntN(101+20*b2i(!g.clean))) - 5*float64(b2i(!g.clean))}
	}
	t.ClientSampling, t.RandomSampling, t.OverallSampling = pct(), pct(), pct()
	if g.p(30) {
		t.MaxPathTagLength = wrapperspb.UInt32(uint32(g.r.IntN(512)))
	}
	for range g.r.IntN(4) {
		ct := &tracingv3.CustomTag{Tag: g.pick("istio.canonical_service", "env", "")}
		switch g.r.IntN(4) {
		case 0:
			ct.Type = &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: "v"}}
		case 1:
			ct.Type = &tracingv3.CustomTag_Environment_{Environment: &tracingv3.CustomTag_Environment{Name: "POD", DefaultValue: "d"}}
		case 2:
			ct.Type = &tracingv3.CustomTag_RequestHeader{RequestHeader: &tracingv3.CustomTag_Header{Name: "x-user"}}
		case 3:
			if g.bad(50) {
				ct.Type = &tracingv3.CustomTag_Value{Value: "x"}
			}
		}
		t.CustomTags = append(t.CustomTags, ct)
	}
	if g.bad(10) {
		t.SpawnUpstreamSpan = wrapperspb.Bool(g.p(50))
	}
	if g.bad(5) {
		t.Verbose = true
	}
	var cfg *anypb.Any
	switch g.r.IntN(5) {
	case 0, 1:
		o := &tracev3.OpenTelemetryConfig{ServiceName: g.pick("productpage.default", "")}
		if g.p(90) {
			o.GrpcService = &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: g.pick("outbound|4317||otel", ""), Authority: "otel"}}}
			if g.p(20) {
				o.GrpcService.Timeout = durationpb.New(time.Second)
			}
		}
		if g.bad(10) {
			o.MaxCacheSize = wrapperspb.UInt32(3)
		}
		cfg = mustAny(o)
	case 2, 3:
		z := &tracev3.ZipkinConfig{CollectorCluster: g.pick("zipkin", ""), CollectorEndpoint: g.pick("/api/v2/spans", ""),
			CollectorEndpointVersion: tracev3.ZipkinConfig_CollectorEndpointVersion(1 + g.r.IntN(1+3*b2i(!g.clean))),
			TraceId_128Bit:           g.p(50), CollectorHostname: g.pick("zipkin.istio-system", "")}
		if g.p(90) {
			z.SharedSpanContext = wrapperspb.Bool(!g.clean && g.p(30))
		}
		if g.bad(10) {
			z.SplitSpansForRequest = true
		}
		cfg = mustAny(z)
	case 4:
		if !g.clean {
			cfg = &anypb.Any{TypeUrl: "type.googleapis.com/envoy.config.trace.v3.DatadogConfig"}
		}
	}
	if g.p(90) {
		t.Provider = &tracev3.Tracing_Http{Name: g.pick("envoy.tracers.opentelemetry", "z")}
		if cfg != nil {
			t.Provider.ConfigType = &tracev3.Tracing_Http_TypedConfig{TypedConfig: cfg}
		}
	}
	return t
}

func (g *gen) httpFilter() *hcmv3.HttpFilter {
	f := &hcmv3.HttpFilter{Name: g.pick("envoy.filters.http.fault", "envoy.filters.http.cors", "envoy.filters.http.lua", StatsFilterName, "istio.metadata_exchange", RouterFilterName)}
	switch g.r.IntN(6) {
	case 0:
		f.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})}
	case 1:
		f.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&corsv3.Cors{})}
	case 2:
		if !g.clean {
			f.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"}}
		}
	case 3:
		if !g.clean {
			f.ConfigType = &hcmv3.HttpFilter_ConfigDiscovery{ConfigDiscovery: &corev3.ExtensionConfigSource{}}
		}
	case 4:
		if !g.clean {
			f.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{MaxActiveFaults: wrapperspb.UInt32(2)})}
		}
	}
	f.IsOptional = g.p(20)
	f.Disabled = g.bad(5)
	return f
}

func routerFilter(g *gen) *hcmv3.HttpFilter {
	f := &hcmv3.HttpFilter{Name: RouterFilterName}
	if g.p(70) {
		f.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}
	}
	return f
}

// randomHCM builds a connection manager using what DecodeHTTPManager reads,
// with now and then a field it refuses or a value it rejects.
func randomHCM(r *rand.Rand) *hcmv3.HttpConnectionManager {
	g := &gen{r: r, clean: r.IntN(100) < 50}
	h := &hcmv3.HttpConnectionManager{StatPrefix: g.pick("inbound_0.0.0.0_9080", "outbound_0.0.0.0_80", "")}
	h.CodecType = hcmv3.HttpConnectionManager_CodecType(r.IntN(3 + 2*b2i(!g.clean)))
	if g.p(30) {
		h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction(r.IntN(5 + 2*b2i(!g.clean)))
	}
	if g.bad(5) {
		h.PathNormalizationOptions = &hcmv3.HttpConnectionManager_PathNormalizationOptions{}
	}
	if g.p(30) {
		h.ForwardClientCertDetails = hcmv3.HttpConnectionManager_ForwardClientCertDetails(r.IntN(5 + 2*b2i(!g.clean)))
	}
	if g.p(30) {
		h.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Uri: g.p(50), Dns: g.p(50), Cert: g.bad(20), Chain: g.bad(10)}
		if g.p(50) {
			h.SetCurrentClientCertDetails.Subject = wrapperspb.Bool(g.p(50))
		}
	}
	if g.p(20) {
		iac := &hcmv3.HttpConnectionManager_InternalAddressConfig{}
		for range r.IntN(3) {
			c := &corev3.CidrRange{AddressPrefix: g.pick("10.0.0.0", "::ffff:192.168.0.0", "bad")}
			if g.p(60) {
				c.PrefixLen = wrapperspb.UInt32(uint32(r.IntN(33 + 100*b2i(!g.clean))))
			}
			iac.CidrRanges = append(iac.CidrRanges, c)
		}
		h.InternalAddressConfig = iac
	}
	switch n := r.IntN(10); {
	case n < 6:
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: g.pick("80", "r", ""),
			ConfigSource: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}}
	case n < 9:
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: randomRouteConfiguration(r)}
	case n == 9 && !g.clean:
		if g.p(50) {
			h.RouteSpecifier = &hcmv3.HttpConnectionManager_ScopedRoutes{ScopedRoutes: &hcmv3.ScopedRoutes{Name: "s"}}
		}
	default:
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "r"}}
	}
	if g.p(20) {
		h.MaxRequestHeadersKb = wrapperspb.UInt32(uint32(r.IntN(100 + 9000*b2i(!g.clean))))
	}
	if g.p(30) {
		o := &corev3.HttpProtocolOptions{}
		if g.p(50) {
			o.IdleTimeout = g.duration()
		}
		if g.p(50) {
			o.MaxHeadersCount = wrapperspb.UInt32(uint32(r.IntN(200)))
		}
		if g.p(50) {
			o.MaxConnectionDuration = g.duration()
		}
		if g.bad(10) {
			o.MaxStreamDuration = g.duration()
		}
		h.CommonHttpProtocolOptions = o
	}
	if g.p(20) {
		h.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{}
		if g.p(70) {
			h.Http2ProtocolOptions.MaxConcurrentStreams = wrapperspb.UInt32(uint32(r.IntN(300)))
		}
	}
	for _, d := range []**durationpb.Duration{&h.StreamIdleTimeout, &h.RequestTimeout, &h.RequestHeadersTimeout, &h.DrainTimeout} {
		if g.p(20) {
			*d = g.duration()
		}
	}
	if g.p(30) {
		h.GenerateRequestId = wrapperspb.Bool(g.p(50))
	}
	if g.p(30) {
		h.UseRemoteAddress = wrapperspb.Bool(g.p(50))
	}
	if g.p(30) {
		h.NormalizePath = wrapperspb.Bool(g.p(50))
	}
	h.MergeSlashes, h.SkipXffAppend, h.PreserveExternalRequestId = g.p(30), g.p(20), g.p(20)
	h.XffNumTrustedHops = uint32(r.IntN(3))
	h.ServerName = g.pick("", "istio-envoy")
	for range r.IntN(3) {
		u := &hcmv3.HttpConnectionManager_UpgradeConfig{UpgradeType: g.pick("websocket", "CONNECT", "")}
		if g.p(30) {
			u.Enabled = wrapperspb.Bool(g.p(50))
		}
		for range r.IntN(2) {
			if g.p(50) {
				u.Filters = append(u.Filters, routerFilter(g))
			} else {
				u.Filters = append(u.Filters, g.httpFilter())
			}
		}
		h.UpgradeConfigs = append(h.UpgradeConfigs, u)
	}
	for range r.IntN(4) {
		h.HttpFilters = append(h.HttpFilters, g.httpFilter())
	}
	if !g.bad(10) {
		h.HttpFilters = append(h.HttpFilters, routerFilter(g))
	}
	h.AccessLog = g.accessLogs()
	if g.p(30) {
		h.Tracing = g.tracing()
	}
	if g.bad(5) {
		h.Via = "mast"
	}
	if g.bad(5) {
		h.Proxy_100Continue = true
	}
	return h
}

// randomTCPProxy builds a tcp_proxy the same way.
func randomTCPProxy(r *rand.Rand) *tcpv3.TcpProxy {
	g := &gen{r: r, clean: r.IntN(100) < 50}
	t := &tcpv3.TcpProxy{StatPrefix: g.pick("tcp", "")}
	switch r.IntN(4) {
	case 0, 1:
		t.ClusterSpecifier = &tcpv3.TcpProxy_Cluster{Cluster: g.pick("outbound|3306||mysql", "c", "")}
	case 2:
		w := &tcpv3.TcpProxy_WeightedCluster{}
		for range r.IntN(3) {
			cw := &tcpv3.TcpProxy_WeightedCluster_ClusterWeight{Name: g.pick("a", "b", ""), Weight: uint32(r.IntN(100))}
			if g.bad(10) {
				cw.MetadataMatch = &corev3.Metadata{}
			}
			w.Clusters = append(w.Clusters, cw)
		}
		t.ClusterSpecifier = &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: w}
	}
	if g.p(30) {
		t.IdleTimeout = g.duration()
	}
	if g.p(30) {
		t.MaxDownstreamConnectionDuration = g.duration()
	}
	if g.p(20) {
		t.TunnelingConfig = &tcpv3.TcpProxy_TunnelingConfig{Hostname: g.pick("reviews:9080", "h:1", "%DOWNSTREAM_LOCAL_ADDRESS%", "nohost"),
			UsePost: g.p(30), PostPath: g.pick("", "/tunnel", "rel")}
	}
	t.AccessLog = g.accessLogs()
	if g.bad(5) {
		t.MaxConnectAttempts = wrapperspb.UInt32(3)
	}
	if g.bad(5) {
		t.HashPolicy = []*typev3.HashPolicy{{}}
	}
	return t
}

func TestDecodeHTTPManagerMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 3))
	accepted := 0
	seen := map[string]int{}
	for range 1500 {
		b, err := proto.Marshal(randomHCM(r))
		if err != nil {
			t.Fatal(err)
		}
		compareHTTPManagers(t, b)
		if m, _ := DecodeHTTPManager(b); m != nil {
			accepted++
			for name, ok := range map[string]bool{"inline routes": m.Routes != nil, "filters": m.Filters != nil, "access logs": len(m.AccessLogs) > 0,
				"log filter": len(m.AccessLogs) > 0 && m.AccessLogs[0].Filter != nil, "tracing": m.Tracing != nil, "upgrades": len(m.Upgrades) > 0,
				"internal cidrs": len(m.InternalCIDRs) > 0, "xfcc": m.ForwardClientCert != FCCSanitize, "client cert details": m.ClientCertDetails != ClientCertDetails{},
				"escaped slashes": m.PathNorm.EscapedSlashes != 0, "http1 only": m.CodecHTTP1Only, "stats": m.Stats != nil} {
				if ok {
					seen[name]++
				}
			}
		}
		b2, _ := proto.Marshal(randomHCM(r))
		compareHTTPManagers(t, append(b[:len(b):len(b)], b2...))
	}
	if accepted < 250 {
		t.Fatalf("only %d of 1500 random connection managers accepted", accepted)
	}
	for _, name := range []string{"inline routes", "filters", "access logs", "log filter", "tracing", "upgrades", "internal cidrs", "xfcc", "client cert details", "escaped slashes", "http1 only"} {
		if seen[name] < 5 {
			t.Errorf("%s: in %d accepted connection managers, want at least 5", name, seen[name])
		}
	}
	t.Logf("accepted %d of 1500: %v", accepted, seen)
}

func TestDecodeTCPProxyMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 5))
	accepted := 0
	for range 1000 {
		b, err := proto.Marshal(randomTCPProxy(r))
		if err != nil {
			t.Fatal(err)
		}
		compareTCPProxies(t, b)
		if p, _ := decodeTCPProxy(b); p != nil {
			accepted++
		}
		b2, _ := proto.Marshal(randomTCPProxy(r))
		compareTCPProxies(t, append(b[:len(b):len(b)], b2...))
	}
	if accepted < 200 {
		t.Fatalf("only %d of 1000 random tcp proxies accepted", accepted)
	}
}

// TestDecodeHTTPManagerWire covers what go-control-plane never encodes.
func TestDecodeHTTPManagerWire(t *testing.T) {
	base, _ := proto.Marshal(istioLikeHCM())
	bytesField := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	varint := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	cases := map[string][]byte{
		"plain":                        base,
		"truncated":                    base[:len(base)-1],
		"route_config after rds":       cat(base, bytesField(hcmRouteConfig, nil)),
		"rds merged":                   cat(base, bytesField(hcmRds, bytesField(rdsRouteConfigName, []byte("r2")))),
		"tracing merged":               cat(base, bytesField(hcmTracing, bytesField(trRandomSampling, nil))),
		"codec 2^32+1":                 cat(base, varint(hcmCodecType, 1<<32+1)),
		"codec as bytes":               cat(base, bytesField(hcmCodecType, []byte("x"))),
		"invalid utf-8 in server name": cat(base, bytesField(hcmServerName, []byte{0xff})),
		"invalid utf-8 in a log name":  cat(base, bytesField(hcmAccessLog, bytesField(alName, []byte{0xff}))),
		"unknown field":                cat(base, varint(1000, 1)),
		"xfcc out of range":            cat(base, varint(hcmForwardClientCert, 9)),
		"filter config_discovery last": cat(base, bytesField(hcmHTTPFilters, cat(bytesField(hfTypedConfig, nil), bytesField(hfConfigDiscovery, nil)))),
	}
	for n, b := range cases {
		t.Run(n, func(t *testing.T) { compareHTTPManagers(t, b) })
	}
}

// istioLikeHCM is a sidecar's inbound connection manager as istiod writes
// it, with a zipkin tracer and a filtered access log.
func istioLikeHCM() *hcmv3.HttpConnectionManager {
	h := tracingHCM(&hcmv3.HttpConnectionManager_Tracing{RandomSampling: &typev3.Percent{Value: 1},
		Provider: &tracev3.Tracing_Http{Name: "zipkin", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(&tracev3.ZipkinConfig{
			CollectorCluster: "zipkin", CollectorEndpoint: "/api/v2/spans", CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON,
			SharedSpanContext: wrapperspb.Bool(false), TraceId_128Bit: true})}}})
	h.StatPrefix = "inbound_0.0.0.0_9080"
	h.ForwardClientCertDetails = hcmv3.HttpConnectionManager_APPEND_FORWARD
	h.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Subject: wrapperspb.Bool(true), Uri: true, Dns: true}
	h.UseRemoteAddress = wrapperspb.Bool(false)
	h.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}}
	h.AccessLog = []*accesslogv3.AccessLog{fileLog(&filev3.FileAccessLog{Path: "/dev/stdout"}, &accesslogv3.AccessLogFilter{
		FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
			Comparison: &accesslogv3.ComparisonFilter{Op: accesslogv3.ComparisonFilter_GE, Value: &corev3.RuntimeUInt32{DefaultValue: 400}}}}})}
	return h
}

// TestDecodeHTTPManagerGeneratedCorpus: every connection manager and
// tcp_proxy in the listeners Mast's generators produce for Bookinfo and
// Istio's samples decodes the same both ways.
func TestDecodeHTTPManagerGeneratedCorpus(t *testing.T) {
	hcms, tcps := 0, 0
	for _, b := range generatedCorpus(t, ListenerType) {
		l := generatedListenerMessage(t, b)
		for _, fc := range append(l.GetFilterChains(), l.GetDefaultFilterChain()) {
			for _, f := range fc.GetFilters() {
				a := f.GetTypedConfig()
				switch {
				case anyIs(a.GetTypeUrl(), hcmConfigName):
					compareHTTPManagers(t, a.GetValue())
					if _, err := DecodeHTTPManager(a.GetValue()); err != nil {
						t.Errorf("%s: %v", l.GetName(), err)
					}
					hcms++
				case anyIs(a.GetTypeUrl(), tcpProxyConfigName):
					compareTCPProxies(t, a.GetValue())
					if _, err := decodeTCPProxy(a.GetValue()); err != nil {
						t.Errorf("%s: %v", l.GetName(), err)
					}
					tcps++
				}
			}
		}
	}
	if hcms < 5 {
		t.Fatalf("%d connection managers in the corpus, want at least 5", hcms)
	}
	t.Logf("%d connection managers, %d tcp proxies", hcms, tcps)
}

// FuzzDecodeHTTPManager: any bytes decode as go-control-plane's types
// would (compareHTTPManagers).
func FuzzDecodeHTTPManager(f *testing.F) {
	r := rand.New(rand.NewPCG(7, 17))
	for range 16 {
		b, _ := proto.Marshal(randomHCM(r))
		f.Add(b)
	}
	b, _ := proto.Marshal(istioLikeHCM())
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) { compareHTTPManagers(t, b) })
}

// FuzzDecodeTCPProxy: the same for tcp_proxy.
func FuzzDecodeTCPProxy(f *testing.F) {
	r := rand.New(rand.NewPCG(7, 19))
	for range 16 {
		b, _ := proto.Marshal(randomTCPProxy(r))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { compareTCPProxies(t, b) })
}

func generatedListenerMessage(t *testing.T, b []byte) *listenerv3.Listener {
	t.Helper()
	var l listenerv3.Listener
	if err := proto.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	return &l
}
