package xdsparse

import (
	"fmt"

	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/mast-mesh/mast/internal/telemetry/tracing"
)

// Type URLs of the tracers mast-proxy reports to.
const (
	openTelemetryConfigType = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig"
	zipkinConfigType        = "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig"
)

// tracingRules are the HCM tracing fields mast-proxy carries out; any
// other set field is refused by name.
var tracingRules = rules(
	ruleRow{"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing", honoured,
		"client_sampling random_sampling overall_sampling max_path_tag_length custom_tags provider spawn_upstream_span"},
	ruleRow{"envoy.type.v3.Percent", honoured, "value"},
	ruleRow{"google.protobuf.UInt32Value", honoured, "value"},
	ruleRow{"google.protobuf.BoolValue", honoured, "value"},
	ruleRow{"envoy.type.tracing.v3.CustomTag", honoured, "tag literal environment request_header"},
	ruleRow{"envoy.type.tracing.v3.CustomTag.Literal", honoured, "value"},
	ruleRow{"envoy.type.tracing.v3.CustomTag.Environment", honoured, "name default_value"},
	ruleRow{"envoy.type.tracing.v3.CustomTag.Header", honoured, "name default_value"},
	ruleRow{"envoy.config.trace.v3.Tracing.Http", cosmetic, "name"},
	ruleRow{"envoy.config.trace.v3.Tracing.Http", parsedApart, "typed_config"},
)

var otelRules = rules(
	ruleRow{"envoy.config.trace.v3.OpenTelemetryConfig", honoured, "grpc_service service_name"},
	ruleRow{"envoy.config.core.v3.GrpcService", honoured, "envoy_grpc"},
	ruleRow{"envoy.config.core.v3.GrpcService", cosmetic, "timeout"},
	ruleRow{"envoy.config.core.v3.GrpcService.EnvoyGrpc", honoured, "cluster_name authority"},
)

var zipkinRules = rules(
	ruleRow{"envoy.config.trace.v3.ZipkinConfig", honoured,
		"collector_cluster collector_endpoint trace_id_128bit shared_span_context collector_endpoint_version collector_hostname"},
	ruleRow{"google.protobuf.BoolValue", honoured, "value"},
)

// parseTracing turns an HCM's tracing into the proxy's; nil when absent.
func parseTracing(t *hcmv3.HttpConnectionManager_Tracing) (*tracing.Config, error) {
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
