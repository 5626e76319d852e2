package generate

import (
	"net"
	"strconv"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

// grpcTarget resolves a proxyless gRPC listener name "HOST:PORT" (HOST an
// FQDN or a short name valid from the client's namespace) to a visible service port.
func (g *gen) grpcTarget(name string) (*registry.Service, registry.Port, bool) {
	host, portStr, err := net.SplitHostPort(name)
	if err != nil {
		host, portStr = name, ""
	}
	suffix := g.pc.Mesh.DomainSuffix
	candidates := [...]string{
		host,
		host + "." + g.p.Namespace + ".svc." + suffix, // name
		host + ".svc." + suffix,                       // name.ns
		host + "." + suffix,                           // name.ns.svc
	}
	var svc *registry.Service
	for _, c := range candidates {
		if svc = g.scope.Service(c); svc != nil {
			break
		}
	}
	if svc == nil || len(svc.Ports) == 0 {
		return nil, registry.Port{}, false
	}
	if portStr == "" {
		if len(svc.Ports) != 1 {
			return nil, registry.Port{}, false
		}
		return svc, svc.Ports[0], true
	}
	n, err := strconv.ParseUint(portStr, 10, 32)
	if err != nil {
		return nil, registry.Port{}, false
	}
	p, ok := svc.PortByNumber(uint32(n))
	return svc, p, ok
}

// grpcListenerNames are the listener names of a wildcard request: HOST:PORT for every visible service port.
func (g *gen) grpcListenerNames() []string {
	var names []string
	for _, svc := range g.scope.Services {
		for _, p := range svc.Ports {
			names = append(names, svc.Hostname+":"+itoa(p.Number))
		}
	}
	return names
}

// grpcListeners are API listeners as grpc-go expects: an HttpConnectionManager
// fetching the route config of the same name over ADS, with the router filter last.
func (g *gen) grpcListeners(names []string) []model.XDSResource {
	if len(names) == 0 {
		names = g.grpcListenerNames()
	}
	var out []model.XDSResource
	for _, n := range names {
		if _, _, ok := g.grpcTarget(n); !ok {
			continue
		}
		m := &hcmv3.HttpConnectionManager{
			StatPrefix:     n,
			RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: adsSource(), RouteConfigName: n}},
			HttpFilters:    []*hcmv3.HttpFilter{httpFilter(routerFilterName, routerAny())},
		}
		out = append(out, listenerResource(&listenerv3.Listener{
			Name:        n,
			ApiListener: &listenerv3.ApiListener{ApiListener: toAny(m)},
		}))
	}
	return out
}

// grpcRoutes are the route configs of API listeners: one virtual host whose
// domains include the name the client dialled.
func (g *gen) grpcRoutes(names []string) []model.XDSResource {
	if len(names) == 0 {
		names = g.grpcListenerNames()
	}
	var out []model.XDSResource
	for _, n := range names {
		svc, port, ok := g.grpcTarget(n)
		if !ok {
			continue
		}
		ds := domainSet{}
		domains := ds.add(nil, n)
		domains = append(domains, g.proxyDomains(ds, svc, port.Number)...)
		out = append(out, routeResource(&routev3.RouteConfiguration{
			Name: n,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    svc.Hostname + ":" + itoa(port.Number),
				Domains: domains,
				Routes:  g.serviceRoutes(svc, port.Number),
			}},
		}))
	}
	return out
}
