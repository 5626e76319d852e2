package generate

import (
	"net"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

// boundEgress is a Sidecar egress listener with a port that gets a
// listener of its own bound to BIND:PORT: every such listener of a proxy
// without traffic capture, and those with captureMode NONE in any mode (as
// Istio does). An application reaches an upstream by connecting to the
// local port, without HTTP_PROXY and without capture.
type boundEgress struct {
	*model.EgressListener
	bind     string
	protocol registry.Protocol // the listener's protocol, or its first service's when unset
}

// name is the listener name BIND_PORT.
func (b boundEgress) name() string { return listenerName(b.bind, b.Port) }

// routeName is the RDS name of an HTTP bound listener, "BIND:PORT" as in Istio.
func (b boundEgress) routeName() string { return b.bind + ":" + itoa(b.Port) }

// services are the listener's services that serve its port.
func (b boundEgress) services() []*registry.Service {
	var out []*registry.Service
	for _, svc := range b.Services {
		if _, ok := svc.PortByNumber(b.Port); ok {
			out = append(out, svc)
		}
	}
	return out
}

// boundEgresses lists the proxy's bound egress listeners in Sidecar order;
// a listener whose name is taken by an earlier one, or by the workload's
// inbound or forward-proxy listener, is left out.
func (g *gen) boundEgresses() []boundEgress {
	if len(g.scope.Egress) == 0 || g.p.Type == model.Router || g.grpc {
		return nil
	}
	none := g.p.InterceptionNone()
	def := "127.0.0.1"
	if none && g.p.IP() != "" {
		// Without capture each workload has an address of its own.
		def = g.p.IP()
	}
	// The workload's own listeners (no capture) keep their addresses.
	seen := map[string]bool{}
	if none && g.p.IP() != "" {
		seen[listenerName(g.p.IP(), outboundCapturePort)] = true
	}
	for _, b := range g.boundInbounds() {
		seen[b.name()] = true
	}
	var out []boundEgress
	for _, e := range g.scope.Egress {
		if !none && !e.CaptureNone() {
			continue
		}
		bind := e.Bind(def)
		if net.ParseIP(bind) == nil {
			continue // unix:// binds are not served
		}
		b := boundEgress{EgressListener: e, bind: bind, protocol: e.Protocol}
		if b.protocol == registry.Unknown {
			for _, svc := range b.services() {
				sp, _ := svc.PortByNumber(b.Port)
				b.protocol = sp.Protocol
				break
			}
		}
		if seen[b.name()] {
			continue
		}
		seen[b.name()] = true
		out = append(out, b)
	}
	return out
}

// boundEgressListeners builds the listeners of the bound egress listeners:
// HTTP ports get a connection manager whose routes cover only that
// listener's hosts; TLS and HTTPS ports route by SNI among them; other
// ports proxy TCP to the listener's one service (the first by hostname).
func (g *gen) boundEgressListeners() []model.XDSResource {
	var out []model.XDSResource
	for _, b := range g.boundEgresses() {
		name := b.name()
		l := &listenerv3.Listener{
			Name:             name,
			Address:          socketAddress(b.bind, b.Port),
			BindToPort:       boolv(true),
			TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		}
		svcs := b.services()
		stat := "outbound_" + name
		switch {
		case b.protocol.IsHTTP():
			l.FilterChains = []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcm(stat, b.routeName(), nil, false)}}}
		case isTLSProtocol(b.protocol):
			l.FilterChains = g.sniChains(svcs, b.Port, stat)
			l.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspector()}
		case len(svcs) > 0:
			l.FilterChains = g.tcpChains(svcs[0], b.Port, stat, nil)
		}
		if len(l.FilterChains) == 0 {
			continue
		}
		out = append(out, listenerResource(l))
	}
	return out
}

// boundEgressRoute is the route config "BIND:PORT" of an HTTP bound egress
// listener: one virtual host per service of the listener that serves its
// port, with the usual domains. When there is exactly one, its virtual host
// also takes any Host ("*"): an application calling http://BIND:PORT/
// reaches it whatever Host it sends.
func (g *gen) boundEgressRoute(name string) *routev3.RouteConfiguration {
	for _, b := range g.boundEgresses() {
		if b.routeName() != name || !b.protocol.IsHTTP() {
			continue
		}
		rc := sidecarRouteConfig(name)
		ds := domainSet{}
		for _, svc := range b.services() {
			domains := g.vhostDomains(ds, svc)
			if len(domains) == 0 {
				continue
			}
			rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
				Name:    svc.Hostname + ":" + itoa(b.Port),
				Domains: domains,
				Routes:  g.serviceRoutes(svc, b.Port),
			})
		}
		if len(rc.VirtualHosts) == 1 {
			rc.VirtualHosts[0].Domains = ds.add(rc.VirtualHosts[0].Domains, "*")
		}
		return rc
	}
	return nil
}

// boundEgressRouteNames are the RDS names of the HTTP bound egress listeners.
func (g *gen) boundEgressRouteNames() []string {
	var out []string
	for _, b := range g.boundEgresses() {
		if b.protocol.IsHTTP() {
			out = append(out, b.routeName())
		}
	}
	return out
}

// sniChains routes TLS connections on port by SNI among services: the
// matching tls routes of each service's VirtualServices (sniHosts of matches
// for this port, restricted to their destinationSubnets as istiod's
// buildSidecarOutboundTLSFilterChainOpts does), then each service's own
// hostname to its cluster. An SNI within given destination subnets is
// claimed once, by the first chain that names it; connections with other
// SNIs match no chain. As in Envoy, a connection to an address in a
// route's destinationSubnets is matched among the chains of those subnets
// only.
func (g *gen) sniChains(services []*registry.Service, port uint32, stat string) []*listenerv3.FilterChain {
	taken := map[string]bool{}
	var out []*listenerv3.FilterChain
	add := func(dst []*corev3.CidrRange, snis []string, cs []weightedCluster) {
		var free []string
		for _, s := range snis {
			s = strings.ToLower(s)
			if k := subnetSNIKey(dst, s); s != "" && !taken[k] {
				taken[k] = true
				free = append(free, s)
			}
		}
		if len(free) == 0 || len(cs) == 0 {
			return
		}
		sort.Strings(free)
		out = append(out, &listenerv3.FilterChain{
			FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: free, PrefixRanges: dst},
			Filters:          []*listenerv3.Filter{g.tcpProxy(stat, cs)},
		})
	}
	for _, svc := range services {
		for _, vs := range g.scope.VirtualServicesFor(svc.Hostname) {
			for _, r := range vs.Spec.GetTls() {
				for _, m := range r.GetMatch() {
					if m.GetPort() != 0 && m.GetPort() != port {
						continue
					}
					if !g.sourceApplies(m.GetSourceLabels(), m.GetSourceNamespace(), m.GetGateways(), vs.Namespace, model.MeshGateway) {
						continue
					}
					add(cidrRanges(m.GetDestinationSubnets()), m.GetSniHosts(), g.routeDestinations(r.GetRoute(), vs.Namespace, port))
				}
			}
		}
	}
	for _, svc := range services {
		if strings.HasPrefix(svc.Hostname, "*") {
			continue
		}
		add(nil, []string{svc.Hostname}, []weightedCluster{{name: ClusterName("outbound", port, "", svc.Hostname), weight: 1}})
	}
	return out
}

// subnetSNIKey identifies an SNI within destination subnets, the unit a
// TLS filter chain claims.
func subnetSNIKey(dst []*corev3.CidrRange, sni string) string {
	return chainMatchKey(&listenerv3.FilterChainMatch{PrefixRanges: dst}) + "|" + sni
}
