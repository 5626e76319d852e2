package xdsparse

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	metadatav3 "github.com/envoyproxy/go-control-plane/envoy/type/metadata/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/telemetry/tracing"
)

func tracingHCM(t *hcmv3.HttpConnectionManager_Tracing) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{Tracing: t,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "r"}},
		HttpFilters:    []*hcmv3.HttpFilter{{Name: RouterFilterName}}}
}

// istioOTel is the tracing istiod (and mastd) writes for an opentelemetry
// extension provider.
func istioOTel(t *testing.T) *hcmv3.HttpConnectionManager_Tracing {
	return &hcmv3.HttpConnectionManager_Tracing{
		ClientSampling: &typev3.Percent{Value: 100}, RandomSampling: &typev3.Percent{Value: 1}, OverallSampling: &typev3.Percent{Value: 100},
		MaxPathTagLength: wrapperspb.UInt32(256),
		CustomTags: []*tracingv3.CustomTag{
			{Tag: "istio.canonical_service", Type: &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: "productpage"}}},
			{Tag: "env", Type: &tracingv3.CustomTag_Environment_{Environment: &tracingv3.CustomTag_Environment{Name: "POD", DefaultValue: "x"}}},
			{Tag: "hdr", Type: &tracingv3.CustomTag_RequestHeader{RequestHeader: &tracingv3.CustomTag_Header{Name: "x-user", DefaultValue: "-"}}},
		},
		Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(&tracev3.OpenTelemetryConfig{
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: "outbound|4317||jaeger-collector.istio-system.svc.cluster.local", Authority: "jaeger-collector.istio-system.svc.cluster.local"}}},
			ServiceName: "productpage.default",
		})}},
	}
}

func TestTracingParsed(t *testing.T) {
	m, err := parseHCM(tracingHCM(istioOTel(t)))
	if err != nil {
		t.Fatal(err)
	}
	c := m.Tracing
	if c == nil || c.RandomSampling != 1 || c.ClientSampling != 100 || c.OverallSampling != 100 || c.MaxPathTagLength != 256 {
		t.Fatalf("parsed %+v", c)
	}
	want := tracing.Provider{Kind: tracing.OpenTelemetry, Cluster: "outbound|4317||jaeger-collector.istio-system.svc.cluster.local",
		Authority: "jaeger-collector.istio-system.svc.cluster.local", ServiceName: "productpage.default", TraceID128: true}
	if c.Provider != want {
		t.Errorf("provider %+v, want %+v", c.Provider, want)
	}
	if len(c.CustomTags) != 3 || c.CustomTags[0].Literal != "productpage" || c.CustomTags[1].Env != "POD" || c.CustomTags[2].Header != "x-user" {
		t.Errorf("custom tags %+v", c.CustomTags)
	}

	z := &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.zipkin", ConfigType: &tracev3.Tracing_Http_TypedConfig{
		TypedConfig: mustAny(&tracev3.ZipkinConfig{CollectorCluster: "outbound|9411||zipkin", CollectorEndpoint: "/api/v2/spans",
			CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON, TraceId_128Bit: true, SharedSpanContext: wrapperspb.Bool(false), CollectorHostname: "zipkin"})}}}
	m, err = parseHCM(tracingHCM(z))
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Tracing.Provider; p.Kind != tracing.Zipkin || p.Path != "/api/v2/spans" || p.Authority != "zipkin" || m.Tracing.RandomSampling != 100 {
		t.Errorf("zipkin %+v", m.Tracing)
	}
	if m, err := parseHCM(tracingHCM(nil)); err != nil || m.Tracing != nil {
		t.Fatalf("without tracing: %v %+v", err, m)
	}
}

// What mast-proxy cannot carry out is refused, naming the field.
func TestTracingNACKsNameTheField(t *testing.T) {
	otel := func(f func(*tracev3.OpenTelemetryConfig)) *hcmv3.HttpConnectionManager_Tracing {
		tr := istioOTel(t)
		var o tracev3.OpenTelemetryConfig
		tr.Provider.GetTypedConfig().UnmarshalTo(&o)
		f(&o)
		tr.Provider.ConfigType = &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(&o)}
		return tr
	}
	zipkin := func(z *tracev3.ZipkinConfig) *hcmv3.HttpConnectionManager_Tracing {
		return &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "z", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(z)}}}
	}
	for _, tc := range []struct {
		name string
		tr   *hcmv3.HttpConnectionManager_Tracing
		want string
	}{
		{"verbose", func() *hcmv3.HttpConnectionManager_Tracing { tr := istioOTel(t); tr.Verbose = true; return tr }(), "verbose"},
		{"spawn", func() *hcmv3.HttpConnectionManager_Tracing {
			tr := istioOTel(t)
			tr.SpawnUpstreamSpan = wrapperspb.Bool(true)
			return tr
		}(), "spawn_upstream_span"},
		{"metadata tag", func() *hcmv3.HttpConnectionManager_Tracing {
			tr := istioOTel(t)
			tr.CustomTags = append(tr.CustomTags, &tracingv3.CustomTag{Tag: "m", Type: &tracingv3.CustomTag_Metadata_{Metadata: &tracingv3.CustomTag_Metadata{Kind: &metadatav3.MetadataKind{}}}})
			return tr
		}(), "custom_tags[3].metadata"},
		{"no provider", &hcmv3.HttpConnectionManager_Tracing{}, "tracing.provider: required"},
		{"sampling", func() *hcmv3.HttpConnectionManager_Tracing {
			tr := istioOTel(t)
			tr.RandomSampling.Value = 101
			return tr
		}(), "not within 0-100"},
		{"otel http", otel(func(o *tracev3.OpenTelemetryConfig) { o.HttpService = &corev3.HttpService{} }), "http_service"},
		{"otel sampler", otel(func(o *tracev3.OpenTelemetryConfig) { o.Sampler = &corev3.TypedExtensionConfig{Name: "s"} }), "sampler"},
		{"otel google grpc", otel(func(o *tracev3.OpenTelemetryConfig) {
			o.GrpcService = &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: "x"}}}
		}), "google_grpc"},
		{"zipkin shared", zipkin(&tracev3.ZipkinConfig{CollectorCluster: "c", CollectorEndpoint: "/", CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON}), "shared_span_context"},
		{"zipkin proto", zipkin(&tracev3.ZipkinConfig{CollectorCluster: "c", CollectorEndpoint: "/", CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_PROTO, SharedSpanContext: wrapperspb.Bool(false)}), "HTTP_PROTO"},
		{"zipkin split", zipkin(&tracev3.ZipkinConfig{CollectorCluster: "c", CollectorEndpoint: "/", SplitSpansForRequest: true}), "split_spans_for_request"},
		{"datadog", &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "dd", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(&tracev3.DatadogConfig{})}}}, "DatadogConfig"},
	} {
		_, err := parseHCM(tracingHCM(tc.tr))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %q", tc.name, err, tc.want)
		}
	}
}
