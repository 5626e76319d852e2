package generate

import (
	"sort"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

func clusterResource(c *clusterv3.Cluster) model.XDSResource {
	return model.XDSResource{Name: c.Name, Resource: c}
}

// clusters returns the proxy's clusters: for every visible service port the
// default cluster and one per DestinationRule subset, then the well-known
// clusters and, for sidecars, the inbound clusters.
func (g *gen) clusters(names []string) []model.XDSResource {
	var out []model.XDSResource
	if len(names) > 0 {
		for _, n := range names {
			if c, enc := g.clusterByName(n); c != nil {
				out = append(out, model.XDSResource{Name: c.Name, Resource: c, Encoded: enc})
			}
		}
		return out
	}
	for _, svc := range g.scope.Services {
		dr := g.pc.DestinationRule(g.p, svc.Hostname)
		for _, port := range svc.Ports {
			if c, enc := g.cluster(svc, port, "", dr); c != nil {
				out = append(out, model.XDSResource{Name: c.Name, Resource: c, Encoded: enc})
			}
			if dr == nil {
				continue
			}
			for _, s := range dr.Spec.GetSubsets() {
				if s.GetName() == "" {
					continue
				}
				if c, enc := g.cluster(svc, port, s.GetName(), dr); c != nil {
					out = append(out, model.XDSResource{Name: c.Name, Resource: c, Encoded: enc})
				}
			}
		}
	}
	if g.grpc {
		return out
	}
	out = append(out, g.sniDNATClusters()...)
	out = append(out, clusterResource(blackHoleCluster()), clusterResource(passthroughCluster(PassthroughCluster)))
	if g.p.Type != model.Router {
		if !g.p.InterceptionNone() {
			out = append(out, clusterResource(passthroughCluster(InboundPassthroughCluster)))
		}
		for _, in := range g.inboundPorts() {
			out = append(out, clusterResource(inboundCluster(in)))
		}
	}
	return dedupe(out)
}

// dedupe drops later resources with a name already seen (two DestinationRule
// subsets with the same name, say), keeping output valid for Envoy.
func dedupe(rs []model.XDSResource) []model.XDSResource {
	seen := make(map[string]struct{}, len(rs))
	out := rs[:0]
	for _, r := range rs {
		if _, dup := seen[r.Name]; dup {
			continue
		}
		seen[r.Name] = struct{}{}
		out = append(out, r)
	}
	return out
}

// clusterByName builds one named cluster, or nil when the proxy has no such cluster.
func (g *gen) clusterByName(name string) (*clusterv3.Cluster, *model.Encoded) {
	switch name {
	case BlackHoleCluster:
		if !g.grpc {
			return blackHoleCluster(), nil
		}
		return nil, nil
	case PassthroughCluster:
		if !g.grpc {
			return passthroughCluster(name), nil
		}
		return nil, nil
	case InboundPassthroughCluster:
		if !g.grpc && g.p.Type != model.Router && !g.p.InterceptionNone() {
			return passthroughCluster(name), nil
		}
		return nil, nil
	}
	if strings.HasPrefix(name, "inbound|") {
		if g.grpc || g.p.Type == model.Router {
			return nil, nil
		}
		for _, in := range g.inboundPorts() {
			if InboundClusterName(in.port) == name {
				return inboundCluster(in), nil
			}
		}
		return nil, nil
	}
	if strings.HasPrefix(name, "outbound_.") {
		if g.grpc {
			return nil, nil
		}
		return g.sniDNATClusterByName(name), nil
	}
	port, subset, host, ok := parseCluster(name)
	if !ok {
		return nil, nil
	}
	svc := g.scope.Service(host)
	if svc == nil {
		return nil, nil
	}
	sp, ok := svc.PortByNumber(port)
	if !ok {
		return nil, nil
	}
	dr := g.pc.DestinationRule(g.p, host)
	if subset != "" && findSubset(dr, subset) == nil {
		return nil, nil
	}
	return g.cluster(svc, sp, subset, dr)
}

func blackHoleCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 BlackHoleCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       dur(defaultConnectTimeout),
	}
}

func passthroughCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       dur(defaultConnectTimeout),
	}
}

// inboundCluster sends a workload port's traffic to the application.
func inboundCluster(in inboundPort) *clusterv3.Cluster {
	name := InboundClusterName(in.port)
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       dur(defaultConnectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: in.target}},
			}}}},
		},
	}
	if len(in.services) > 0 {
		// Istio's inbound cluster metadata: the services behind the port.
		svcs := make([]any, len(in.services))
		for i, svc := range in.services {
			name, _, _ := strings.Cut(svc.Hostname, ".")
			svcs[i] = map[string]any{"host": svc.Hostname, "name": name, "namespace": svc.Namespace}
		}
		if md, err := structpb.NewStruct(map[string]any{"services": svcs}); err == nil {
			c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": md}}
		}
	}
	h2 := in.protocol == registry.HTTP2 || in.protocol == registry.GRPC
	if in.pool != nil {
		// The Sidecar's ingress connectionPool or inboundConnectionPool:
		// circuit breakers and HTTP options of the inbound cluster, as
		// istiod applies them (HTTP settings on HTTP ports only).
		applyConnectionPool(c, in.pool, nil, in.protocol.IsHTTP(), h2, false)
		if h2 && c.TypedExtensionProtocolOptions != nil {
			return c
		}
	}
	if h2 {
		// gRPC and HTTP/2 applications are spoken to in HTTP/2, as Istio does.
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: toAny(&upstreamhttpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			}},
		})}
	}
	return c
}

// serviceCluster builds outbound|PORT|SUBSET|HOST with the DestinationRule's
// policy for that port and subset. It returns nil when the client cannot use
// such a cluster (proxyless gRPC and original-destination clusters).
func (g *gen) serviceCluster(svc *registry.Service, port registry.Port, subset string, dr *model.DestinationRule) *clusterv3.Cluster {
	name := ClusterName("outbound", port.Number, subset, svc.Hostname)
	c := &clusterv3.Cluster{Name: name}
	pol := effectivePolicy(dr, port.Number, subset)
	var subsetLabels map[string]string
	if s := findSubset(dr, subset); s != nil {
		subsetLabels = s.GetLabels()
	}
	eds := func() {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name}
	}
	switch svc.Resolution {
	case registry.ResolutionDNS, registry.ResolutionDNSRoundRobin:
		la := g.loadAssignment(name, svc, port, subsetLabels)
		if len(la.Endpoints) == 0 && !strings.HasPrefix(svc.Hostname, "*") {
			// a DNS service without endpoints resolves its own hostname, as ServiceEntry does
			la.Endpoints = []*endpointv3.LocalityLbEndpoints{{
				LoadBalancingWeight: u32(1),
				LbEndpoints:         []*endpointv3.LbEndpoint{lbEndpoint(svc.Hostname, port.Number, 1)},
			}}
		}
		if len(la.Endpoints) == 0 {
			return nil
		}
		t := clusterv3.Cluster_STRICT_DNS
		if svc.Resolution == registry.ResolutionDNSRoundRobin || g.grpc {
			// LOGICAL_DNS takes exactly one endpoint; grpc-go only knows LOGICAL_DNS
			t = clusterv3.Cluster_LOGICAL_DNS
			first := la.Endpoints[0]
			first.LbEndpoints = first.LbEndpoints[:1]
			first.LoadBalancingWeight = nil
			la.Endpoints = la.Endpoints[:1]
		}
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: t}
		c.DnsLookupFamily = clusterv3.Cluster_V4_ONLY
		c.LoadAssignment = la
	case registry.ResolutionNone:
		if len(g.pc.Endpoints(svc.Hostname, port.Number)) > 0 {
			eds()
		} else {
			if g.grpc {
				return nil
			}
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
			c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
		}
	default:
		eds()
	}
	if c.LbPolicy != clusterv3.Cluster_CLUSTER_PROVIDED && !applyLB(c, pol.lb, g.grpc) {
		if g.grpc {
			return nil
		}
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
		c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
		c.EdsClusterConfig = nil
		c.LoadAssignment = nil
		c.LbConfig = nil
	}
	applyConnectionPool(c, pol.cp, pol.od, port.Protocol.IsHTTP(), port.Protocol == registry.HTTP2 || port.Protocol == registry.GRPC, g.grpc)
	if !g.grpc {
		applyRetryBudget(c, pol.rb)
	}
	applyOutlier(c, pol.od)
	if c.OutlierDetection != nil && dr != nil {
		applyLatencyOutlier(c, dr.Annotations[config.LatencyOutlierAnnotation])
	}
	if c.GetEdsClusterConfig() != nil {
		applyLocalityWeighted(c, pol)
	}
	if pol.tls != nil {
		var sans []string
		if pol.tls.GetMode() == networking.ClientTLSSettings_ISTIO_MUTUAL {
			sans = g.serviceIdentities(svc, port.Number)
		}
		c.TransportSocket = g.upstreamTLS(pol.tls, port.Number, subset, svc.Hostname, sans)
	} else {
		g.applyAutoMTLS(c, svc, port, subset)
	}
	applyProxyProtocol(c, pol.pp)
	return c
}

// serviceIdentities are the SPIFFE IDs a service's workloads may present.
func (g *gen) serviceIdentities(svc *registry.Service, port uint32) []string {
	set := map[string]struct{}{}
	add := func(sa string) {
		if sa == "" {
			return
		}
		if !strings.HasPrefix(sa, "spiffe://") {
			sa = "spiffe://" + g.pc.Mesh.TrustDomain + "/ns/" + svc.Namespace + "/sa/" + sa
		}
		set[sa] = struct{}{}
	}
	for _, sa := range svc.ServiceAccounts {
		add(sa)
	}
	for _, ep := range g.pc.Endpoints(svc.Hostname, port) {
		add(ep.ServiceAccount)
	}
	out := make([]string, 0, len(set))
	for sa := range set {
		out = append(out, sa)
	}
	sort.Strings(out)
	return out
}
