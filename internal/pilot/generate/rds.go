package generate

import (
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

func routeResource(rc *routev3.RouteConfiguration) model.XDSResource {
	return model.XDSResource{Name: rc.Name, Resource: rc}
}

// sidecarRoutes returns the route configs a sidecar's listeners name: "PORT"
// for each outbound HTTP port (capture mode) or "http_proxy" (no capture),
// and "BIND:PORT" for each HTTP egress listener bound to a local port.
func (g *gen) sidecarRoutes(names []string) []model.XDSResource {
	if len(names) == 0 {
		if g.p.InterceptionNone() {
			names = append([]string{httpProxyRouteName}, g.boundEgressRouteNames()...)
		} else {
			names = g.boundEgressRouteNames()
			seen := map[uint32]bool{}
			for _, svc := range g.scope.Services {
				for _, p := range svc.Ports {
					if p.Protocol.IsHTTP() && !seen[p.Number] {
						seen[p.Number] = true
						names = append(names, itoa(p.Number))
					}
				}
			}
		}
	}
	var out []model.XDSResource
	for _, n := range names {
		if n == httpProxyRouteName && g.onDemand() {
			if rc, enc := g.vhdsStub(n); rc != nil {
				out = append(out, model.XDSResource{Name: rc.Name, Resource: rc, Encoded: enc})
			}
			continue
		}
		if n == httpProxyRouteName {
			rc, enc := g.sidecarRoute(n, g.httpProxyRoute)
			out = append(out, model.XDSResource{Name: rc.Name, Resource: rc, Encoded: enc})
			continue
		}
		if strings.IndexByte(n, ':') >= 0 {
			if rc := g.boundEgressRoute(n); rc != nil {
				out = append(out, routeResource(rc))
			}
			continue
		}
		port, err := strconv.ParseUint(n, 10, 32)
		if err != nil || port == 0 || port > 65535 {
			continue
		}
		if g.onDemand() {
			if rc, enc := g.vhdsStub(n); rc != nil {
				out = append(out, model.XDSResource{Name: rc.Name, Resource: rc, Encoded: enc})
			}
			continue
		}
		rc, enc := g.portRouteConfig(n, uint32(port))
		out = append(out, model.XDSResource{Name: rc.Name, Resource: rc, Encoded: enc})
	}
	return out
}

// domainSet keeps virtual host domains unique within one route configuration:
// Envoy rejects a route configuration with a domain in two virtual hosts.
type domainSet map[string]struct{}

func (d domainSet) add(list []string, ds ...string) []string {
	for _, s := range ds {
		if _, dup := d[s]; dup {
			continue
		}
		d[s] = struct{}{}
		list = append(list, s)
	}
	return list
}

// shortNames returns the names a service host can be reached by from the
// proxy's namespace: name.ns.svc and name.ns always, name only from the
// service's own namespace. Hosts outside the mesh domain have none.
func (g *gen) shortNames(host string) []string {
	base, name, withName, ok := g.shortNameParts(host)
	if !ok {
		return nil
	}
	out := []string{base + ".svc", base}
	if withName {
		out = append(out, name)
	}
	return out
}

// shortNameParts returns what shortNames are made of: base (name.ns; the
// short names are base + ".svc", base and, withName, name) or ok false for
// a host with none.
func (g *gen) shortNameParts(host string) (base, name string, withName, ok bool) {
	// Two cuts: no ".svc." + suffix string to allocate.
	rest, ok := strings.CutSuffix(host, g.pc.Mesh.DomainSuffix)
	if !ok {
		return "", "", false, false
	}
	if base, ok = strings.CutSuffix(rest, ".svc."); !ok {
		return "", "", false, false
	}
	name, ns, ok := strings.Cut(base, ".")
	if !ok || strings.IndexByte(ns, '.') >= 0 {
		return "", "", false, false
	}
	return base, name, ns == g.p.Namespace, true
}

// isVhostDomain reports whether the lower-case host (an authority without
// its port, as a route configuration that ignores the port matches it) is,
// lower-cased, one of vhostDomains(svc) without a wildcard, without
// building them.
func (g *gen) isVhostDomain(svc *registry.Service, host string) bool {
	is := func(d, suffix string) bool {
		if strings.IndexByte(d, '*') >= 0 {
			return false
		}
		d = strings.ToLower(d) // no copy when already lower-case ASCII
		return concatIs(d, suffix, host)
	}
	if is(svc.Hostname, "") {
		return true
	}
	if base, name, withName, ok := g.shortNameParts(svc.Hostname); ok {
		if is(base, ".svc") || is(base, "") || (withName && is(name, "")) {
			return true
		}
	}
	for _, vip := range svc.Addresses {
		if strings.IndexByte(vip, '/') >= 0 || vip == wildcardIP {
			continue
		}
		if strings.IndexByte(vip, ':') < 0 {
			if is(vip, "") {
				return true
			}
			continue
		}
		if bracketedIs(strings.ToLower(vip), host) { // vipDomain's "[" + vip + "]", not built
			return true
		}
	}
	return false
}

// bracketedIs reports whether s is "[" + a + "]".
func bracketedIs(a, s string) bool {
	return len(s) == len(a)+2 && s[0] == '[' && s[len(s)-1] == ']' && s[1:len(s)-1] == a
}

// vipDomain is a VIP as Host and :authority carry it: an IPv6 address in
// brackets (RFC 3986's IP-literal, as Istio's domains have it), others as
// they are. An unbracketed IPv6 domain matches no well-formed authority.
func vipDomain(vip string) string {
	if strings.IndexByte(vip, ':') >= 0 {
		return "[" + vip + "]"
	}
	return vip
}

// concatIs reports whether s is a + b.
func concatIs(a, b, s string) bool {
	return len(s) == len(a)+len(b) && s[:len(a)] == a && s[len(a):] == b
}

// vhostDomains are istiod's sidecar domains for a service port, for Envoy
// and mast-proxy: the FQDN, the short names valid from the proxy's
// namespace and the VIPs (vipDomain), without ":PORT". The route
// configurations that carry them ignore the authority's port
// (sidecarRouteConfig), as istiod's have since Istio 1.15; proxyless gRPC
// has its own (grpcRoutes, with the port).
func (g *gen) vhostDomains(ds domainSet, svc *registry.Service) []string {
	var out []string
	out = ds.add(out, svc.Hostname)
	for _, s := range g.shortNames(svc.Hostname) {
		out = ds.add(out, s)
	}
	for _, vip := range svc.Addresses {
		if strings.IndexByte(vip, '/') >= 0 || vip == wildcardIP {
			continue
		}
		out = ds.add(out, vipDomain(vip))
	}
	return out
}

// sidecarRouteConfig is a sidecar's route configuration name whose virtual
// hosts have vhostDomains ("PORT", "BIND:PORT"), without them: virtual
// hosts are selected by the authority without its port
// (ignore_port_in_host_matching), as istiod sets it on a sidecar's outbound
// route configurations, so that "svc" is also "svc:8080", and "svc:9090"
// on port 8080's route configuration selects svc too, as in Istio.
func sidecarRouteConfig(name string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, ValidateClusters: boolv(false), IgnorePortInHostMatching: true}
}

// proxyDomains are the forward-proxy domains: "HOST:PORT" and short forms
// with the port, plus the bare names when the port is 80.
func (g *gen) proxyDomains(ds domainSet, svc *registry.Service, port uint32) []string {
	p := ":" + itoa(port)
	names := append([]string{svc.Hostname}, g.shortNames(svc.Hostname)...)
	var out []string
	for _, n := range names {
		out = ds.add(out, n+p)
		if port == 80 {
			out = ds.add(out, n)
		}
	}
	return out
}

// serviceRoutes are the routes of a service port: its VirtualServices'
// routes, or one default route to the service's cluster.
func (g *gen) serviceRoutes(svc *registry.Service, port uint32) []*routev3.Route {
	if vss := g.scope.VirtualServicesFor(svc.Hostname); len(vss) > 0 {
		if rs := g.httpRoutes(vss, routeOpts{gateway: model.MeshGateway, port: port}); len(rs) > 0 {
			return rs
		}
	}
	return []*routev3.Route{g.defaultRoute(svc.Hostname, port)}
}

// defaultRoute sends everything to outbound|PORT||HOST with Istio's defaults.
func (g *gen) defaultRoute(host string, port uint32) *routev3.Route {
	ra := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ClusterName("outbound", port, "", host)}}
	if g.grpc {
		ra.RetryPolicy = grpcRetryPolicy(nil)
	} else {
		ra.Timeout = dur(0)
		ra.RetryPolicy = defaultRetryPolicy()
		ra.HashPolicy = g.hashPolicyFor(host, port, "")
	}
	return &routev3.Route{
		Name:   "default",
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: ra},
	}
}

// vhostKey identifies the virtual host of a service port without
// VirtualServices in a sidecar's "PORT" route config within one push (no
// cache): its domains depend on the proxy's namespace, its route on the
// DestinationRule (hash policy), its decorators on tracing.
type vhostKey struct {
	host      string
	port      uint32
	namespace string
	dr        *model.DestinationRule
	traced    bool
}

// defaultVhostKey is every input of a default virtual host, for
// generate.Cache: it is kept across pushes, so that a change rebuilds only
// the virtual hosts it touches and route configurations are assembled from
// the others. The service's identity stands for its hostname and addresses
// (registry.Reuse keeps unchanged services).
type defaultVhostKey struct {
	svc          *registry.Service
	port         uint32
	namespace    string // short names reachable from the proxy's namespace
	domainSuffix string // the mesh's, for short names
	dr           drID   // hash policy
	grpc         bool   // retry policy
	traced       bool   // decorators
}

// defaultVhost returns the shared virtual host of a service port without
// VirtualServices, or a private copy without the domains already taken.
// A tracing proxy's copy carries its decorators from the start: route
// configurations are decorated after they are built, which then finds
// nothing to write in a shared virtual host.
func (g *gen) defaultVhost(ds domainSet, svc *registry.Service, port uint32) *routev3.VirtualHost {
	vh, _ := g.sharedDefaultVhost(svc, port, g.pc.Traced(g.p))
	clash := false
	for _, d := range vh.Domains {
		if _, taken := ds[d]; taken {
			clash = true
			break
		}
	}
	if !clash {
		for _, d := range vh.Domains {
			ds[d] = struct{}{}
		}
		return vh
	}
	domains := g.vhostDomains(ds, svc)
	if len(domains) == 0 {
		return nil
	}
	own := proto.Clone(vh).(*routev3.VirtualHost)
	own.Domains = domains
	return own
}

// sharedDefaultVhost returns the virtual host of a service port without
// VirtualServices with all its domains, shared by every route configuration
// that has it whole, and its cache entry (nil without a cache), which holds
// its wire form. traced is whether the proxy traces (pc.Traced).
func (g *gen) sharedDefaultVhost(svc *registry.Service, port uint32, traced bool) (*routev3.VirtualHost, *cacheEntry) {
	dr := g.pc.DestinationRule(g.p, svc.Hostname)
	build := func() proto.Message {
		vh := &routev3.VirtualHost{
			Name:    svc.Hostname + ":" + itoa(port),
			Domains: g.vhostDomains(domainSet{}, svc),
			Routes:  []*routev3.Route{g.defaultRoute(svc.Hostname, port)},
		}
		return decoratedVhost(vh, traced)
	}
	if g.cache == nil {
		key := vhostKey{host: svc.Hostname, port: port, namespace: g.p.Namespace, dr: dr, traced: traced}
		return g.pc.Memo(key, func() any { return build() }).(*routev3.VirtualHost), nil
	}
	st := g.cache.state(g.pc)
	key := defaultVhostKey{svc: svc, port: port, namespace: g.p.Namespace, domainSuffix: g.pc.Mesh.DomainSuffix, dr: idOf(dr), grpc: g.grpc, traced: traced}
	e := entry(g.cache, st, key, func() (proto.Message, [][]byte) { return build(), nil }, build)
	return e.msg.(*routev3.VirtualHost), e
}

// portRoute is the route config "PORT" of a capturing sidecar.
func (g *gen) portRoute(port uint32) *routev3.RouteConfiguration {
	rc := sidecarRouteConfig(itoa(port))
	ds := make(domainSet, 10*len(g.scope.Services))
	for _, svc := range g.scope.Services {
		sp, ok := svc.PortByNumber(port)
		if !ok || !sp.Protocol.IsHTTP() {
			continue
		}
		if len(g.scope.VirtualServicesFor(svc.Hostname)) == 0 {
			if vh := g.defaultVhost(ds, svc, port); vh != nil {
				rc.VirtualHosts = append(rc.VirtualHosts, vh)
			}
			continue
		}
		domains := g.vhostDomains(ds, svc)
		if len(domains) == 0 {
			continue
		}
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
			Name:    svc.Hostname + ":" + itoa(port),
			Domains: domains,
			Routes:  g.serviceRoutes(svc, port),
		})
	}
	if _, taken := ds["*"]; !taken {
		rc.VirtualHosts = append(rc.VirtualHosts, g.catchAllVhost())
	}
	return rc
}

// catchAllVhost sends unknown hosts to PassthroughCluster or the Sidecar's
// egressProxy ("allow_any"), or
// answers 502 when the Sidecar allows registry services only ("block_all").
func (g *gen) catchAllVhost() *routev3.VirtualHost {
	if g.scope.RegistryOnly() {
		return &routev3.VirtualHost{
			Name:    "block_all",
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Name:   "block_all",
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 502}},
			}},
		}
	}
	return &routev3.VirtualHost{
		Name:    "allow_any",
		Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Name:  "allow_any",
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: g.passthroughName()},
				Timeout:          dur(0),
			}},
		}},
	}
}

// httpProxyRoute is the route config of the forward-proxy listener of a
// sidecar without capture: one virtual host per visible HTTP service port.
func (g *gen) httpProxyRoute() *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: httpProxyRouteName, ValidateClusters: boolv(false)}
	ds := domainSet{}
	for _, svc := range g.scope.Services {
		for _, sp := range svc.Ports {
			if !sp.Protocol.IsHTTP() {
				continue
			}
			domains := g.proxyDomains(ds, svc, sp.Number)
			if len(domains) == 0 {
				continue
			}
			rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
				Name:    svc.Hostname + ":" + itoa(sp.Number),
				Domains: domains,
				Routes:  g.serviceRoutes(svc, sp.Number),
			})
		}
	}
	if sc := g.scope.Sidecar; sc != nil && sc.Spec.GetOutboundTrafficPolicy() != nil {
		// A Sidecar's outboundTrafficPolicy decides unknown hosts, as in
		// istiod's http_proxy route: ALLOW_ANY forwards them to the
		// authority asked for (or the egressProxy), REGISTRY_ONLY answers
		// 502. Without one, unknown hosts have no route (404).
		if _, taken := ds["*"]; !taken {
			rc.VirtualHosts = append(rc.VirtualHosts, g.catchAllVhost())
		}
	}
	return rc
}
