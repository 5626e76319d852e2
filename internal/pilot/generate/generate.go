// Package generate builds Envoy xDS v3 resources for one proxy from a push
// context: listeners, routes, clusters and endpoints for sidecars (with and
// without traffic capture), gateways and proxyless gRPC clients. Every
// function is a pure function of its inputs; output is sorted by name.
package generate

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// The xDS v3 type URLs Generate understands.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// Well-known cluster names, as in Istio.
const (
	BlackHoleCluster          = "BlackHoleCluster"
	PassthroughCluster        = "PassthroughCluster"
	InboundPassthroughCluster = "InboundPassthroughCluster"
)

// Generate returns the resources of type typeURL for proxy p, restricted to
// names when names is not empty. It implements model.GenerateFunc.
func Generate(pc *model.PushContext, p *model.Proxy, typeURL string, names []string) ([]model.XDSResource, error) {
	return generate(pc, p, typeURL, names, nil)
}

func generate(pc *model.PushContext, p *model.Proxy, typeURL string, names []string, cache *Cache) ([]model.XDSResource, error) {
	if pc == nil || p == nil {
		return nil, fmt.Errorf("generate %s: nil push context or proxy", typeURL)
	}
	g := newGen(pc, p)
	g.cache = cache
	var out []model.XDSResource
	switch typeURL {
	case ListenerType:
		out = g.withTelemetry(g.listeners(names))
		g.applyListenerFilters(out)
	case RouteType:
		out = g.withDecorators(g.routes(names))
	case ClusterType:
		out = g.clusters(names)
	case EndpointType:
		out = g.endpoints(names)
	case VirtualHostType:
		out = g.virtualHosts(names)
	default:
		return nil, fmt.Errorf("generate for proxy %s: unsupported type URL %q", p.ID, typeURL)
	}
	out = filterNames(out, names)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

var _ model.GenerateFunc = Generate

// filterNames keeps only the resources whose names are in names; all when names is empty.
func filterNames(rs []model.XDSResource, names []string) []model.XDSResource {
	if len(names) == 0 {
		return rs
	}
	want := make(map[string]struct{}, len(names))
	for _, n := range names {
		want[n] = struct{}{}
	}
	out := rs[:0]
	for _, r := range rs {
		if _, ok := want[r.Name]; ok {
			out = append(out, r)
		}
	}
	return out
}

// ClusterName returns Istio's outbound cluster name outbound|PORT|SUBSET|HOST.
func ClusterName(direction string, port uint32, subset, host string) string {
	return direction + "|" + strconv.FormatUint(uint64(port), 10) + "|" + subset + "|" + host
}

// InboundClusterName returns the inbound cluster name for a workload port: inbound|PORT||.
func InboundClusterName(port uint32) string {
	return "inbound|" + strconv.FormatUint(uint64(port), 10) + "||"
}

// ClusterHost parses an Istio cluster name outbound|PORT|SUBSET|HOST (or
// inbound|PORT|SUBSET|HOST) and returns HOST. ok is false for other names
// (BlackHoleCluster, inbound|PORT|| without a host, malformed names).
func ClusterHost(clusterName string) (host string, ok bool) {
	dir, rest, found := strings.Cut(clusterName, "|")
	if !found || (dir != "outbound" && dir != "inbound") {
		return "", false
	}
	port, rest, found := strings.Cut(rest, "|")
	if !found {
		return "", false
	}
	if n, err := strconv.ParseUint(port, 10, 32); err != nil || n == 0 {
		return "", false
	}
	_, host, found = strings.Cut(rest, "|")
	if !found || host == "" || strings.IndexByte(host, '|') >= 0 {
		return "", false
	}
	return host, true
}

// parseCluster splits an outbound cluster name into its parts.
func parseCluster(name string) (port uint32, subset, host string, ok bool) {
	// Cut, not Split: an endpoint push parses every cluster it sends to
	// every proxy, and Split allocated a slice each time.
	rest, ok := strings.CutPrefix(name, "outbound|")
	if !ok {
		return 0, "", "", false
	}
	ps, rest, ok1 := strings.Cut(rest, "|")
	subset, host, ok2 := strings.Cut(rest, "|")
	if !ok1 || !ok2 || host == "" || strings.Contains(host, "|") {
		return 0, "", "", false
	}
	n, err := strconv.ParseUint(ps, 10, 32)
	if err != nil || n == 0 {
		return 0, "", "", false
	}
	return uint32(n), subset, host, true
}

// gen carries the inputs of one generation call.
type gen struct {
	pc    *model.PushContext
	p     *model.Proxy
	scope *model.SidecarScope
	grpc  bool
	cache *Cache // nil: generate everything afresh
	// onDemandMemo caches onDemand's answer for this generation: 0 not yet
	// asked, 1 no, 2 yes (it looks up the proxy's EnvoyFilters).
	onDemandMemo int8
}

func newGen(pc *model.PushContext, p *model.Proxy) *gen {
	return &gen{pc: pc, p: p, scope: pc.Scope(p), grpc: p.IsGRPC()}
}

func (g *gen) listeners(names []string) []model.XDSResource {
	switch {
	case g.grpc:
		return g.grpcListeners(names)
	case g.p.Type == model.Router:
		return g.gatewayListeners()
	case g.p.InterceptionNone():
		return g.noneListeners()
	default:
		return g.sidecarListeners()
	}
}

func (g *gen) routes(names []string) []model.XDSResource {
	switch {
	case g.grpc:
		return g.grpcRoutes(names)
	case g.p.Type == model.Router:
		return g.gatewayRoutes(names)
	default:
		return g.sidecarRoutes(names)
	}
}
