package generate

import (
	"math"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

// Split-horizon EDS (istiod's EndpointsByNetworkFilter): in a mesh where
// some network has a gateway, a proxy sees the endpoints of its own network
// (and those of networks without a gateway, which istiod takes to be
// directly reachable) as they are; the endpoints of every other network are
// replaced, locality by locality, by that network's gateways, each carrying
// an even share of the endpoints' summed weights (scaled first by the least
// common multiple of the gateway counts). Cross-network traffic needs mTLS
// (the gateway routes it by SNI without terminating it): a remote endpoint
// that does not take mTLS is dropped. The gateway endpoints are marked
// tlsMode istio, so auto mTLS speaks mTLS to them with the cluster's SNI,
// outbound_.PORT_.SUBSET_.HOST, which the other network's AUTO_PASSTHROUGH
// gateway routes to its SNI-DNAT cluster of the same name.

// splitHorizon returns la as the proxy's network sees it; la itself in a
// single-network mesh or for a proxy without a network.
func (g *gen) splitHorizon(la *endpointv3.ClusterLoadAssignment, svc *registry.Service, port registry.Port) *endpointv3.ClusterLoadAssignment {
	if g.grpc || !g.pc.MultiNetwork() || g.p.Network() == "" || len(la.GetEndpoints()) == 0 {
		return la
	}
	// Every proxy of one network sees the same assignment: shared per push.
	key := splitKey{la: la, network: g.p.Network()}
	return g.pc.Memo(key, func() any { return splitByNetwork(g.pc, la, svc, port, g.p) }).(*endpointv3.ClusterLoadAssignment)
}

type splitKey struct {
	la      *endpointv3.ClusterLoadAssignment
	network string
}

func splitByNetwork(pc *model.PushContext, la *endpointv3.ClusterLoadAssignment, svc *registry.Service, port registry.Port, p *model.Proxy) *endpointv3.ClusterLoadAssignment {
	networkOf := map[string]string{}
	for _, ep := range pc.Endpoints(svc.Hostname, port.Number) {
		k := ep.Address + ":" + strconv.FormatUint(uint64(cmpOr(ep.Port, port.TargetPort, port.Number)), 10)
		if _, ok := networkOf[k]; !ok {
			networkOf[k] = pc.EndpointNetwork(ep)
		}
	}
	scale := pc.GatewayWeightScale()
	out := &endpointv3.ClusterLoadAssignment{ClusterName: la.ClusterName, Policy: la.Policy, NamedEndpoints: la.NamedEndpoints}
	for _, lle := range la.Endpoints {
		part := &endpointv3.LocalityLbEndpoints{Locality: lle.Locality, Priority: lle.Priority}
		var gws []model.NetworkGateway
		gwWeight := map[model.NetworkGateway]uint32{}
		for _, e := range lle.LbEndpoints {
			w := scaleWeight(e.GetLoadBalancingWeight().GetValue(), scale)
			a := e.GetEndpoint().GetAddress().GetSocketAddress()
			nw := networkOf[a.GetAddress()+":"+strconv.FormatUint(uint64(a.GetPortValue()), 10)]
			remote := pc.NetworkGateways(nw)
			if p.InNetwork(nw) || len(remote) == 0 {
				if w != e.GetLoadBalancingWeight().GetValue() {
					e = proto.Clone(e).(*endpointv3.LbEndpoint)
					e.LoadBalancingWeight = u32(w)
				}
				part.LbEndpoints = append(part.LbEndpoints, e)
				continue
			}
			if !endpointTakesMTLS(e) {
				continue
			}
			for _, gw := range remote {
				if _, ok := gwWeight[gw]; !ok {
					gws = append(gws, gw)
				}
				gwWeight[gw] += w / uint32(len(remote))
			}
		}
		sortGateways(gws)
		for _, gw := range gws {
			e := lbEndpoint(gw.Address, gw.Port, max(gwWeight[gw], 1))
			e.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
				transportSocketMatchMD: {Fields: map[string]*structpb.Value{tlsModeKey: structpb.NewStringValue(tlsModeIstio)}},
			}}
			part.LbEndpoints = append(part.LbEndpoints, e)
		}
		if len(part.LbEndpoints) == 0 {
			continue
		}
		var sum uint64
		for _, e := range part.LbEndpoints {
			sum += uint64(e.GetLoadBalancingWeight().GetValue())
		}
		part.LoadBalancingWeight = u32(uint32(min(sum, math.MaxUint32)))
		out.Endpoints = append(out.Endpoints, part)
	}
	return out
}

func cmpOr(v ...uint32) uint32 {
	for _, x := range v {
		if x != 0 {
			return x
		}
	}
	return 0
}

func scaleWeight(w, scale uint32) uint32 {
	if w == 0 {
		return scale
	}
	if uint64(w)*uint64(scale) > math.MaxUint32 {
		return math.MaxUint32
	}
	return w * scale
}

func sortGateways(gws []model.NetworkGateway) {
	for i := 1; i < len(gws); i++ {
		for j := i; j > 0 && gatewayLess(gws[j], gws[j-1]); j-- {
			gws[j], gws[j-1] = gws[j-1], gws[j]
		}
	}
}

func gatewayLess(a, b model.NetworkGateway) bool {
	if a.Network != b.Network {
		return a.Network < b.Network
	}
	if a.Address != b.Address {
		return a.Address < b.Address
	}
	return a.Port < b.Port
}

// endpointTakesMTLS reports whether an endpoint is marked tlsMode istio.
func endpointTakesMTLS(e *endpointv3.LbEndpoint) bool {
	return e.GetMetadata().GetFilterMetadata()[transportSocketMatchMD].GetFields()[tlsModeKey].GetStringValue() == tlsModeIstio
}

// SNI-DNAT clusters: a gateway with an AUTO_PASSTHROUGH server routes each
// connection by its SNI, outbound_.PORT_.SUBSET_.HOST, to the cluster of that
// name: the service's outbound cluster without TLS origination (the client's
// mTLS passes through to the endpoint), whose endpoints are those that take
// mTLS (istiod's EndpointsWithMTLSFilter).

// sniDNATName is the SNI-DNAT cluster of a service port and subset.
func sniDNATName(port uint32, subset, host string) string { return istioSNI(port, subset, host) }

// parseSNIDNAT splits outbound_.PORT_.SUBSET_.HOST.
func parseSNIDNAT(name string) (port uint32, subset, host string, ok bool) {
	rest, ok := strings.CutPrefix(name, "outbound_.")
	if !ok {
		return 0, "", "", false
	}
	ps, rest, ok := strings.Cut(rest, "_.")
	if !ok {
		return 0, "", "", false
	}
	subset, host, ok = strings.Cut(rest, "_.")
	if !ok || host == "" {
		return 0, "", "", false
	}
	n, err := strconv.ParseUint(ps, 10, 32)
	if err != nil || n == 0 {
		return 0, "", "", false
	}
	return uint32(n), subset, host, true
}

// autoPassthroughServers are the proxy's gateway servers in AUTO_PASSTHROUGH mode.
func (g *gen) autoPassthroughServers() []gwServer {
	if g.p.Type != model.Router {
		return nil
	}
	var out []gwServer
	ports, byPort := g.gatewayPorts()
	for _, port := range ports {
		for _, s := range byPort[port] {
			if s.isPassthrough() && s.tlsMode() == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
				out = append(out, s)
			}
		}
	}
	return out
}

// autoPassthroughHost reports whether an AUTO_PASSTHROUGH server exposes svc.
func autoPassthroughHost(servers []gwServer, svc *registry.Service) bool {
	for _, s := range servers {
		if anyHostMatches(s.hosts(), svc.Namespace, svc.Hostname) {
			return true
		}
	}
	return false
}

// sniDNATCluster is c, the outbound cluster, as its SNI-DNAT twin.
func sniDNATCluster(c *clusterv3.Cluster, port uint32, subset, host string) *clusterv3.Cluster {
	name := sniDNATName(port, subset, host)
	out := proto.Clone(c).(*clusterv3.Cluster)
	out.Name = name
	out.TransportSocket = nil
	out.TransportSocketMatches = nil
	if out.EdsClusterConfig != nil {
		out.EdsClusterConfig.ServiceName = name
	}
	if out.LoadAssignment != nil {
		out.LoadAssignment.ClusterName = name
	}
	return out
}

// sniDNATClusters are the SNI-DNAT clusters of the proxy's AUTO_PASSTHROUGH servers.
func (g *gen) sniDNATClusters() []model.XDSResource {
	servers := g.autoPassthroughServers()
	if len(servers) == 0 {
		return nil
	}
	var out []model.XDSResource
	for _, svc := range g.scope.Services {
		if !autoPassthroughHost(servers, svc) {
			continue
		}
		dr := g.pc.DestinationRule(g.p, svc.Hostname)
		for _, port := range svc.Ports {
			for _, subset := range subsetNames(dr) {
				if c, _ := g.cluster(svc, port, subset, dr); c != nil {
					out = append(out, clusterResource(sniDNATCluster(c, port.Number, subset, svc.Hostname)))
				}
			}
		}
	}
	return out
}

// subsetNames is "" (the default cluster) and the DestinationRule's named subsets.
func subsetNames(dr *model.DestinationRule) []string {
	out := []string{""}
	if dr != nil {
		for _, s := range dr.Spec.GetSubsets() {
			if s.GetName() != "" {
				out = append(out, s.GetName())
			}
		}
	}
	return out
}

// sniDNATClusterByName builds one SNI-DNAT cluster, nil when the proxy has none of that name.
func (g *gen) sniDNATClusterByName(name string) *clusterv3.Cluster {
	port, subset, host, ok := parseSNIDNAT(name)
	if !ok {
		return nil
	}
	svc := g.scope.Service(host)
	if svc == nil || !autoPassthroughHost(g.autoPassthroughServers(), svc) {
		return nil
	}
	sp, ok := svc.PortByNumber(port)
	if !ok {
		return nil
	}
	dr := g.pc.DestinationRule(g.p, host)
	if subset != "" && findSubset(dr, subset) == nil {
		return nil
	}
	c, _ := g.cluster(svc, sp, subset, dr)
	if c == nil {
		return nil
	}
	return sniDNATCluster(c, port, subset, host)
}

// sniDNATAssignment is the load assignment of an SNI-DNAT cluster: the
// outbound cluster's endpoints that take mTLS, as the proxy's network sees
// them.
func (g *gen) sniDNATAssignment(svc *registry.Service, port registry.Port, subset string, dr *model.DestinationRule) *endpointv3.ClusterLoadAssignment {
	var labels map[string]string
	if s := findSubset(dr, subset); s != nil {
		labels = s.GetLabels()
	}
	if subset == "" {
		dr = nil
	}
	la, _ := g.loadAssignmentFor(ClusterName("outbound", port.Number, subset, svc.Hostname), svc, port, labels, dr)
	la = g.splitHorizon(la, svc, port)
	out := &endpointv3.ClusterLoadAssignment{ClusterName: sniDNATName(port.Number, subset, svc.Hostname)}
	for _, lle := range la.GetEndpoints() {
		part := &endpointv3.LocalityLbEndpoints{Locality: lle.Locality, Priority: lle.Priority}
		var sum uint64
		for _, e := range lle.LbEndpoints {
			if endpointTakesMTLS(e) {
				part.LbEndpoints = append(part.LbEndpoints, e)
				sum += uint64(e.GetLoadBalancingWeight().GetValue())
			}
		}
		if len(part.LbEndpoints) > 0 {
			part.LoadBalancingWeight = u32(uint32(min(sum, math.MaxUint32)))
			out.Endpoints = append(out.Endpoints, part)
		}
	}
	return out
}
