package generate

import (
	"sort"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tracingv3 "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// Istio's default tracing values (pilot/pkg/networking/core/tracing.go).
const (
	defaultMaxPathTagLength = 256
	defaultZipkinPath       = "/api/v2/spans"
)

// canonicalService and canonicalRevision are Istio's canonical names of
// the proxy's workload.
func (g *gen) canonicalService() string {
	for _, k := range []string{"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"} {
		if v := g.p.Labels[k]; v != "" {
			return v
		}
	}
	if w := g.p.Metadata["WORKLOAD_NAME"]; w != "" {
		return w
	}
	return g.p.Name
}

func (g *gen) canonicalRevision() string {
	for _, k := range []string{"service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"} {
		if v := g.p.Labels[k]; v != "" {
			return v
		}
	}
	return "latest"
}

// hcmTracing is the tracing of the proxy's HTTP connection managers on
// inbound (server) or outbound (client, gateways) listeners, as istiod
// builds it from the Telemetry API and MeshConfig; nil when the proxy
// does not trace there or the provider cannot be resolved (validation
// names why).
func (g *gen) hcmTracing(inbound bool) *hcmv3.HttpConnectionManager_Tracing {
	mode := telemetry.WorkloadMode_CLIENT
	if inbound {
		mode = telemetry.WorkloadMode_SERVER
	}
	tp := g.pc.Tracing(g.p, mode)
	if tp == nil {
		return nil
	}
	ep := g.pc.Mesh.ExtensionProvider(tp.Providers[0])
	if ep == nil {
		return nil
	}
	t := &hcmv3.HttpConnectionManager_Tracing{
		ClientSampling:   &typev3.Percent{Value: 100},
		RandomSampling:   &typev3.Percent{Value: tp.Sampling},
		OverallSampling:  &typev3.Percent{Value: 100},
		MaxPathTagLength: u32(defaultMaxPathTagLength),
	}
	svc := g.canonicalService()
	ns := g.p.Namespace
	switch {
	case ep.GetOpentelemetry() != nil:
		o := ep.GetOpentelemetry()
		host := providerHost(o.GetService())
		cfg := &tracev3.OpenTelemetryConfig{
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: ClusterName("outbound", uint32(o.GetPort()), "", host), Authority: host}}},
			ServiceName: svc + "." + ns,
		}
		if n := o.GetMaxTagLength(); n > 0 {
			t.MaxPathTagLength = u32(n)
		}
		t.Provider = &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: toAny(cfg)}}
	case ep.GetZipkin() != nil:
		z := ep.GetZipkin()
		host := providerHost(z.GetService())
		path := z.GetPath()
		if path == "" {
			path = defaultZipkinPath
		}
		cfg := &tracev3.ZipkinConfig{
			CollectorCluster: ClusterName("outbound", uint32(z.GetPort()), "", host), CollectorEndpoint: path,
			CollectorEndpointVersion: tracev3.ZipkinConfig_HTTP_JSON, TraceId_128Bit: !z.GetEnable_64BitTraceId(),
			SharedSpanContext: boolv(false), CollectorHostname: host,
		}
		if n := z.GetMaxTagLength(); n > 0 {
			t.MaxPathTagLength = u32(n)
		}
		t.Provider = &tracev3.Tracing_Http{Name: "envoy.tracers.zipkin", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: toAny(cfg)}}
	default:
		return nil
	}
	// Istio's tags naming the workload, then the Telemetry customTags.
	meshID := g.pc.Mesh.TrustDomain
	clusterID := g.p.Metadata["CLUSTER_ID"]
	if clusterID == "" {
		clusterID = "Kubernetes"
	}
	for _, kv := range [][2]string{{"istio.canonical_revision", g.canonicalRevision()}, {"istio.canonical_service", svc},
		{"istio.cluster_id", clusterID}, {"istio.mesh_id", meshID}, {"istio.namespace", ns}} {
		t.CustomTags = append(t.CustomTags, literalTag(kv[0], kv[1]))
	}
	names := make([]string, 0, len(tp.CustomTags))
	for k := range tp.CustomTags {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		ct := tp.CustomTags[k]
		switch {
		case ct.GetLiteral() != nil:
			t.CustomTags = append(t.CustomTags, literalTag(k, ct.GetLiteral().GetValue()))
		case ct.GetEnvironment() != nil:
			t.CustomTags = append(t.CustomTags, &tracingv3.CustomTag{Tag: k, Type: &tracingv3.CustomTag_Environment_{
				Environment: &tracingv3.CustomTag_Environment{Name: ct.GetEnvironment().GetName(), DefaultValue: ct.GetEnvironment().GetDefaultValue()}}})
		case ct.GetHeader() != nil:
			t.CustomTags = append(t.CustomTags, &tracingv3.CustomTag{Tag: k, Type: &tracingv3.CustomTag_RequestHeader{
				RequestHeader: &tracingv3.CustomTag_Header{Name: ct.GetHeader().GetName(), DefaultValue: ct.GetHeader().GetDefaultValue()}}})
		}
	}
	return t
}

func literalTag(k, v string) *tracingv3.CustomTag {
	return &tracingv3.CustomTag{Tag: k, Type: &tracingv3.CustomTag_Literal_{Literal: &tracingv3.CustomTag_Literal{Value: v}}}
}

// providerHost is the hostname of an extension provider's service, which
// Istio writes "hostname" or "namespace/hostname".
func providerHost(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// routeOperation is Istio's decorator operation for a route: HOST:PORT
// and the route's path (prefix + "*", the exact path, or the regex) when
// it goes to one cluster of a service, else "" (the proxy then names the
// span after the request).
func routeOperation(r *routev3.Route) string {
	host, ok := ClusterHost(r.GetRoute().GetCluster())
	if !ok {
		return ""
	}
	port, _, _, _ := parseCluster(r.GetRoute().GetCluster())
	path := "/*"
	m := r.GetMatch()
	switch {
	case m.GetPrefix() != "":
		path = m.GetPrefix() + "*"
	case m.GetPath() != "":
		path = m.GetPath()
	case m.GetSafeRegex() != nil:
		path = m.GetSafeRegex().GetRegex()
	}
	return host + ":" + strconv.FormatUint(uint64(port), 10) + path
}

// decorate names the spans of every route of rc (Istio's route
// decorators); op names those whose cluster names no host (inbound).
func decorate(rc *routev3.RouteConfiguration, op func(cluster string) string) {
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if r.GetRoute() == nil || r.GetDecorator() != nil {
				continue
			}
			name := routeOperation(r)
			if name == "" && op != nil {
				name = op(r.GetRoute().GetCluster())
			}
			if name != "" {
				r.Decorator = &routev3.Decorator{Operation: name}
			}
		}
	}
}

// inboundOperation is Istio's operation for an inbound cluster
// (inbound|PORT||): the host and service port of a service the workload
// serves on that port.
func (g *gen) inboundOperation(cluster string) string {
	rest, ok := strings.CutPrefix(cluster, "inbound|")
	if !ok {
		return ""
	}
	ps, _, _ := strings.Cut(rest, "|")
	n, err := strconv.ParseUint(ps, 10, 32)
	if err != nil {
		return ""
	}
	port := uint32(n)
	for _, ip := range g.p.IPAddresses {
		for _, ep := range g.pc.EndpointsAt(ip) {
			p := ep.Port
			if svc := g.pc.Service(ep.Hostname); svc != nil && p == 0 {
				if sp, ok := svc.PortByNumber(ep.ServicePort); ok {
					p = sp.TargetPort
				}
			}
			if p == 0 {
				p = ep.ServicePort
			}
			if p == port {
				return ep.Hostname + ":" + strconv.FormatUint(uint64(ep.ServicePort), 10) + "/*"
			}
		}
	}
	return ""
}

// withDecorators names the spans of the routes of a proxy that traces.
func (g *gen) withDecorators(out []model.XDSResource) []model.XDSResource {
	if !g.pc.Traced(g.p) {
		return out
	}
	for i, r := range out {
		rc, ok := r.Resource.(*routev3.RouteConfiguration)
		if !ok || r.Encoded != nil {
			continue // from the cache: decorated already (sidecarRoute)
		}
		rc = proto.Clone(rc).(*routev3.RouteConfiguration)
		decorate(rc, nil)
		// Gateway, gRPC and bound-egress routes are named on a copy.
		out[i].Resource, out[i].Encoded = rc, nil
	}
	return out
}
