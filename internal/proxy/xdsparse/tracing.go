package xdsparse

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/mast-mesh/mast/internal/proxy/pbwire"
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

// Field numbers of the connection manager's Tracing, the custom tags and
// the tracers' configs.
const (
	trClientSampling, trRandomSampling, trOverallSampling = 3, 4, 5
	trMaxPathTagLength, trCustomTags, trProvider, trSpawn = 7, 8, 9, 10

	ctTag, ctLiteral, ctEnvironment, ctRequestHeader = 1, 2, 3, 4
	ctLiteralValue, ctName, ctDefault                = 1, 1, 2

	provName, provTypedConfig = 1, 3
	// percentValue: clusterwire.go

	otelGrpcService, otelServiceName = 1, 2
	grpcEnvoyGrpc                    = 1
	egClusterName, egAuthority       = 1, 2

	zkCollectorCluster, zkCollectorEndpoint, zkTraceID128 = 1, 2, 3
	zkSharedSpanContext, zkEndpointVersion, zkHostname    = 4, 5, 6
	zkHTTPJSON                                            = 1
)

// parseTracingWire turns an HCM's tracing into the proxy's.
func parseTracingWire(t *pbwire.Msg) (*tracing.Config, error) {
	if err := checkWire(t, tracingRules); err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if wireBool(t, trSpawn, false) {
		return nil, fmt.Errorf("tracing.spawn_upstream_span: true is not supported (one span per request and proxy)")
	}
	c := &tracing.Config{RandomSampling: 100, ClientSampling: 100, OverallSampling: 100, MaxPathTagLength: 256}
	percent := func(num protowire.Number, def float64) float64 {
		if !t.Has(num) {
			return def
		}
		return math.Float64frombits(t.Sub(num).U64(percentValue))
	}
	c.RandomSampling = percent(trRandomSampling, c.RandomSampling)
	c.ClientSampling = percent(trClientSampling, c.ClientSampling)
	c.OverallSampling = percent(trOverallSampling, c.OverallSampling)
	for _, v := range []float64{c.RandomSampling, c.ClientSampling, c.OverallSampling} {
		if v < 0 || v > 100 {
			return nil, fmt.Errorf("tracing: sampling percentage %v: not within 0-100", v)
		}
	}
	if t.Has(trMaxPathTagLength) {
		c.MaxPathTagLength = int(wrapperU32(t, trMaxPathTagLength, 0))
	}
	for i, ct := range t.Subs(trCustomTags) {
		tag := tracing.CustomTag{Tag: ct.Str(ctTag)}
		switch {
		case ct.Has(ctLiteral):
			tag.Literal = ct.Sub(ctLiteral).Str(ctLiteralValue)
		case ct.Has(ctEnvironment):
			e := ct.Sub(ctEnvironment)
			tag.Env, tag.Default = e.Str(ctName), e.Str(ctDefault)
		case ct.Has(ctRequestHeader):
			h := ct.Sub(ctRequestHeader)
			tag.Header, tag.Default = h.Str(ctName), h.Str(ctDefault)
		}
		if tag.Tag == "" {
			return nil, fmt.Errorf("tracing.custom_tags[%d].tag: empty", i)
		}
		c.CustomTags = append(c.CustomTags, tag)
	}
	if !t.Has(trProvider) {
		return nil, fmt.Errorf("tracing.provider: required (mast-proxy has no default tracer)")
	}
	prov := t.Sub(trProvider)
	name := prov.Str(provName)
	url, value := "", []byte(nil)
	if a := typedConfig(prov, provTypedConfig); a != nil {
		url, value = a.GetTypeUrl(), a.GetValue()
	}
	switch url {
	case openTelemetryConfigType:
		o, err := unpackTyped(descOpenTelemetryConfig, value)
		if err != nil {
			return nil, fmt.Errorf("tracing.provider %q: %w", name, err)
		}
		if err := checkWire(o, otelRules); err != nil {
			return nil, fmt.Errorf("tracing.provider %q: %w", name, err)
		}
		eg := o.Sub(otelGrpcService).Sub(grpcEnvoyGrpc)
		if eg.Str(egClusterName) == "" {
			return nil, fmt.Errorf("tracing.provider %q: grpc_service.envoy_grpc.cluster_name: required", name)
		}
		c.Provider = tracing.Provider{Kind: tracing.OpenTelemetry, Cluster: eg.Str(egClusterName), Authority: eg.Str(egAuthority),
			ServiceName: o.Str(otelServiceName), TraceID128: true}
	case zipkinConfigType:
		z, err := unpackTyped(descZipkinConfig, value)
		if err != nil {
			return nil, fmt.Errorf("tracing.provider %q: %w", name, err)
		}
		if err := checkWire(z, zipkinRules); err != nil {
			return nil, fmt.Errorf("tracing.provider %q: %w", name, err)
		}
		if v := int32(z.U64(zkEndpointVersion)); v != zkHTTPJSON {
			return nil, fmt.Errorf("tracing.provider %q: collector_endpoint_version %s: only HTTP_JSON is supported", name, enumName(z, zkEndpointVersion, v))
		}
		if wireBool(z, zkSharedSpanContext, true) {
			return nil, fmt.Errorf("tracing.provider %q: shared_span_context: must be false (each proxy reports its own span)", name)
		}
		if z.Str(zkCollectorCluster) == "" || z.Str(zkCollectorEndpoint) == "" {
			return nil, fmt.Errorf("tracing.provider %q: collector_cluster and collector_endpoint: required", name)
		}
		c.Provider = tracing.Provider{Kind: tracing.Zipkin, Cluster: z.Str(zkCollectorCluster), Authority: z.Str(zkHostname),
			Path: z.Str(zkCollectorEndpoint), TraceID128: z.U64(zkTraceID128) != 0}
	default:
		return nil, fmt.Errorf("tracing.provider %q (%s): not supported (opentelemetry, zipkin)", name, url)
	}
	return c, nil
}
