package generate

import (
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	telemetry "istio.io/api/telemetry/v1alpha1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse/xdsparsetest"
	"github.com/mast-mesh/mast/internal/telemetry/tracing"
)

func tracingMesh() model.MeshConfig {
	m := model.DefaultMeshConfig()
	m.ExtensionProviders = []*meshconfig.MeshConfig_ExtensionProvider{
		{Name: "otel", Provider: &meshconfig.MeshConfig_ExtensionProvider_Opentelemetry{Opentelemetry: &meshconfig.MeshConfig_ExtensionProvider_OpenTelemetryTracingProvider{
			Service: "istio-system/jaeger-collector.istio-system.svc.cluster.local", Port: 4317}}},
		{Name: "zipkin", Provider: &meshconfig.MeshConfig_ExtensionProvider_Zipkin{Zipkin: &meshconfig.MeshConfig_ExtensionProvider_ZipkinTracingProvider{
			Service: "zipkin.istio-system.svc.cluster.local", Port: 9411}}},
	}
	m.DefaultTracingProviders = []string{"otel"}
	return m
}

// httpManagers parses every HCM of the listeners with mast-proxy's parser,
// by traffic direction.
func httpManagers(t *testing.T, ls []model.XDSResource) (in, out []*xdsparse.HTTPManager) {
	t.Helper()
	for _, r := range ls {
		l := r.Resource.(*listenerv3.Listener)
		for _, fc := range append(l.GetFilterChains(), l.GetDefaultFilterChain()) {
			for _, f := range fc.GetFilters() {
				var h hcmv3.HttpConnectionManager
				if f.GetTypedConfig().UnmarshalTo(&h) != nil {
					continue
				}
				m, err := xdsparsetest.ParseHTTPManager(&h)
				if err != nil {
					t.Fatalf("listener %s: mast-proxy rejects: %v", l.Name, err)
				}
				if l.GetTrafficDirection().String() == "INBOUND" {
					in = append(in, m)
				} else {
					out = append(out, m)
				}
			}
		}
	}
	return in, out
}

// MeshConfig's default provider traces every HCM at 1 % (Istio's default),
// as mast-proxy understands it, with Istio's tags and span names; Telemetry
// resources override the provider, the sampling, add tags, and turn span
// reporting off per workload.
func TestTracingFromMeshAndTelemetry(t *testing.T) {
	p := productpageProxy()
	pc := model.NewPushContext("v1", tracingMesh(), configSnapshot(bookinfoConfig()), bookinfoRegistry())
	ls, err := Generate(pc, p, ListenerType, nil)
	if err != nil {
		t.Fatal(err)
	}
	in, out := httpManagers(t, ls)
	if len(in) == 0 || len(out) == 0 {
		t.Fatalf("%d inbound, %d outbound HCMs", len(in), len(out))
	}
	for _, m := range append(in, out...) {
		tc := m.Tracing
		if tc == nil {
			t.Fatal("an HCM without tracing")
		}
		want := tracing.Provider{Kind: tracing.OpenTelemetry, Cluster: "outbound|4317||jaeger-collector.istio-system.svc.cluster.local",
			Authority: "jaeger-collector.istio-system.svc.cluster.local", ServiceName: "productpage.default", TraceID128: true}
		if tc.Provider != want || tc.RandomSampling != 1 {
			t.Fatalf("tracing %+v", tc)
		}
		tags := map[string]string{}
		for _, ct := range tc.CustomTags {
			tags[ct.Tag] = ct.Literal
		}
		if tags["istio.canonical_service"] != "productpage" || tags["istio.namespace"] != "default" || tags["istio.canonical_revision"] != "v1" {
			t.Errorf("tags %v", tags)
		}
	}
	// The inbound route names its spans HOST:PORT/*.
	if r := in[0].Routes; r == nil || r.Match(&xdsparse.Input{Authority: "x", Method: "GET", Path: "/"}).Operation != "productpage.default.svc.cluster.local:9080/*" {
		t.Errorf("inbound span name: %+v", in[0].Routes)
	}
	rs, err := Generate(pc, p, RouteType, nil)
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for _, r := range rs {
		for _, vh := range r.Resource.(*routev3.RouteConfiguration).GetVirtualHosts() {
			for _, rt := range vh.GetRoutes() {
				if op := rt.GetDecorator().GetOperation(); op == "details.default.svc.cluster.local:9080/*" {
					named++
				}
			}
		}
	}
	if named == 0 {
		t.Error("no outbound route named details.default.svc.cluster.local:9080/*")
	}

	// Telemetry: zipkin mesh-wide at 100 % with a tag; nothing for ratings.
	cfg := append(bookinfoConfig(),
		res(config.Telemetry, "istio-system", "mesh", &telemetry.Telemetry{Tracing: []*telemetry.Tracing{{
			Providers: []*telemetry.ProviderRef{{Name: "zipkin"}}, RandomSamplingPercentage: wrapperspb.Double(100),
			CustomTags: map[string]*telemetry.Tracing_CustomTag{"team": {Type: &telemetry.Tracing_CustomTag_Literal{Literal: &telemetry.Tracing_Literal{Value: "books"}}}},
		}}}),
		res(config.Telemetry, "default", "pp-server-only", &telemetry.Telemetry{
			Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "productpage"}},
			Tracing: []*telemetry.Tracing{
				{Match: &telemetry.Tracing_TracingSelector{Mode: telemetry.WorkloadMode_CLIENT}, DisableSpanReporting: wrapperspb.Bool(true)},
				{Match: &telemetry.Tracing_TracingSelector{Mode: telemetry.WorkloadMode_SERVER}, RandomSamplingPercentage: wrapperspb.Double(50)},
			}}),
		res(config.Telemetry, "default", "quiet", &telemetry.Telemetry{
			Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "details"}},
			Tracing:  []*telemetry.Tracing{{DisableSpanReporting: wrapperspb.Bool(true)}}}))
	pc = model.NewPushContext("v2", tracingMesh(), configSnapshot(cfg), bookinfoRegistry())
	ls, _ = Generate(pc, p, ListenerType, nil)
	in, out = httpManagers(t, ls)
	tc := in[0].Tracing
	if tc == nil || tc.Provider.Kind != tracing.Zipkin || tc.Provider.Cluster != "outbound|9411||zipkin.istio-system.svc.cluster.local" ||
		tc.Provider.Path != "/api/v2/spans" || tc.RandomSampling != 50 {
		t.Fatalf("Telemetry tracing %+v", tc)
	}
	found := false
	for _, ct := range tc.CustomTags {
		found = found || ct.Tag == "team" && ct.Literal == "books"
	}
	if !found {
		t.Errorf("custom tag team=books missing: %+v", tc.CustomTags)
	}
	for _, m := range out {
		if m.Tracing != nil {
			t.Fatal("an outbound HCM traced with client-side span reporting disabled")
		}
	}
	// An entry for one side leaves the other as the levels above set it.
	reviews := &model.Proxy{ID: "sidecar~10.1.0.2~reviews-v1.default~default.svc.cluster.local", Type: model.SidecarProxy,
		IPAddresses: []string{"10.1.0.2"}, Name: "reviews-v1", Namespace: "default", Labels: map[string]string{"app": "reviews", "version": "v1"},
		Metadata: map[string]string{}}
	cfgSides := append(bookinfoConfig(),
		res(config.Telemetry, "default", "reviews-server-otel", &telemetry.Telemetry{
			Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "reviews"}},
			Tracing: []*telemetry.Tracing{{Match: &telemetry.Tracing_TracingSelector{Mode: telemetry.WorkloadMode_SERVER},
				Providers: []*telemetry.ProviderRef{{Name: "zipkin"}}}}}))
	pcSides := model.NewPushContext("v3", tracingMesh(), configSnapshot(cfgSides), bookinfoRegistry())
	ls, _ = Generate(pcSides, reviews, ListenerType, nil)
	in, out = httpManagers(t, ls)
	if len(in) == 0 || len(out) == 0 {
		t.Fatalf("reviews: %d inbound, %d outbound HCMs", len(in), len(out))
	}
	for _, m := range in {
		if m.Tracing == nil || m.Tracing.Provider.Kind != tracing.Zipkin {
			t.Fatalf("reviews inbound: %+v, want the server-side zipkin provider", m.Tracing)
		}
	}
	for _, m := range out {
		if m.Tracing == nil || m.Tracing.Provider.Kind != tracing.OpenTelemetry {
			t.Fatalf("reviews outbound: %+v, want the mesh default otel provider", m.Tracing)
		}
	}
	details := &model.Proxy{ID: "sidecar~10.1.0.5~details-v1.default~default.svc.cluster.local", Type: model.SidecarProxy,
		IPAddresses: []string{"10.1.0.5"}, Name: "details-v1", Namespace: "default", Labels: map[string]string{"app": "details", "version": "v1"},
		Metadata: map[string]string{}}
	ls, _ = Generate(pc, details, ListenerType, nil)
	in, out = httpManagers(t, ls)
	for _, m := range append(in, out...) {
		if m.Tracing != nil {
			t.Fatal("disableSpanReporting: the details proxy still traces")
		}
	}
}
