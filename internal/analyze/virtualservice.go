package analyze

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/mast-mesh/mast/internal/config"
)

// destination is a route destination with where it sits in its VirtualService.
type destination struct {
	rule string // tcp, tls, http, http.mirror, http.mirrors
	d    *networking.Destination
}

func routeDestinations(vs *networking.VirtualService) []destination {
	var out []destination
	for _, r := range vs.GetTcp() {
		for _, rd := range r.GetRoute() {
			out = append(out, destination{"tcp", rd.GetDestination()})
		}
	}
	for _, r := range vs.GetTls() {
		for _, rd := range r.GetRoute() {
			out = append(out, destination{"tls", rd.GetDestination()})
		}
	}
	for _, r := range vs.GetHttp() {
		for _, rd := range r.GetRoute() {
			out = append(out, destination{"http", rd.GetDestination()})
		}
	}
	return out
}

func mirrorDestinations(vs *networking.VirtualService) []destination {
	var out []destination
	for _, r := range vs.GetHttp() {
		if m := r.GetMirror(); m != nil {
			out = append(out, destination{"http.mirror", m})
		}
		for _, m := range r.GetMirrors() {
			out = append(out, destination{"http.mirrors", m.GetDestination()})
		}
	}
	return out
}

// analyzeDestinationHosts: every destination and mirror host must name a
// known service (IST0101); its port must exist, or be given when the service
// has several (IST0112); a route without subset on a gateway is not steered
// by subsets other VirtualServices define (IST0140).
func analyzeDestinationHosts(c *context) {
	idx := c.hostIndex()
	// VirtualServices with a subset destination for one of their own hosts.
	subsetDests := map[string][]*networking.Destination{}
	var subsetVS []string
	for _, r := range c.in.Config.List(config.VirtualService) {
		vs := r.Spec.(*networking.VirtualService)
		name := r.Namespace + "/" + r.Name
		for _, h := range vs.GetHttp() {
			for _, rd := range h.GetRoute() {
				if rd.GetDestination().GetSubset() == "" {
					continue
				}
				for _, host := range vs.GetHosts() {
					if rd.GetDestination().GetHost() == host {
						if len(subsetDests[name]) == 0 {
							subsetVS = append(subsetVS, name)
						}
						subsetDests[name] = append(subsetDests[name], rd.GetDestination())
					}
				}
			}
		}
	}
	for _, r := range c.in.Config.List(config.VirtualService) {
		vs := r.Spec.(*networking.VirtualService)
		ref := refOf(r)
		for _, d := range routeDestinations(vs) {
			s := idx.lookup(r.Namespace, vs.GetExportTo(), d.d.GetHost())
			if s == nil {
				c.report(newMessage(ReferencedResourceNotFound, ref, "host", d.d.GetHost()))
				continue
			}
			c.checkPorts(ref, d, s)
		}
		for _, d := range mirrorDestinations(vs) {
			s := idx.lookup(r.Namespace, vs.GetExportTo(), d.d.GetHost())
			if s == nil {
				c.report(newMessage(ReferencedResourceNotFound, ref, "mirror host", d.d.GetHost()))
				continue
			}
			c.checkPorts(ref, d, s)
		}
		if len(vs.GetGateways()) == 0 {
			continue
		}
		for _, h := range vs.GetHttp() {
			for _, rd := range h.GetRoute() {
				if rd.GetDestination().GetSubset() != "" {
					continue
				}
				for _, other := range subsetVS {
					for _, d := range subsetDests[other] {
						if d.GetHost() == rd.GetDestination().GetHost() {
							c.report(newMessage(IngressRouteRulesNotAffected, ref, other, r.Namespace+"/"+r.Name))
						}
					}
				}
			}
		}
	}
}

func (c *context) checkPorts(ref Ref, d destination, s *service) {
	if d.d.GetPort() == nil {
		if len(s.ports) > 1 {
			var ports []int
			for _, p := range s.ports {
				ports = append(ports, int(p.GetNumber()))
			}
			c.report(newMessage(VirtualServiceDestinationPortSelectorRequired, ref, d.d.GetHost(), ports))
		}
		return
	}
	for _, p := range s.ports {
		if p.GetNumber() == d.d.GetPort().GetNumber() {
			return
		}
	}
	c.report(newMessage(ReferencedResourceNotFound, ref, "host:port", fmt.Sprintf("%s:%d", d.d.GetHost(), d.d.GetPort().GetNumber())))
}

// analyzeDestinationSubsets: a destination's subset must be defined by a
// DestinationRule for its host (IST0101).
func analyzeDestinationSubsets(c *context) {
	type hostSubset struct{ ns, name, subset string }
	known := map[hostSubset]bool{}
	for _, r := range c.in.Config.List(config.DestinationRule) {
		dr := r.Spec.(*networking.DestinationRule)
		ns, name := nameFromHost(r.Namespace, dr.GetHost())
		for _, ss := range dr.GetSubsets() {
			known[hostSubset{ns, name, ss.GetName()}] = true
		}
	}
	for _, r := range c.in.Config.List(config.VirtualService) {
		vs := r.Spec.(*networking.VirtualService)
		check := func(d destination, what string) {
			if d.d.GetSubset() == "" {
				return
			}
			ns, name := nameFromHost(r.Namespace, d.d.GetHost())
			if !known[hostSubset{ns, name, d.d.GetSubset()}] {
				c.report(newMessage(ReferencedResourceNotFound, refOf(r), what, d.d.GetHost()+"+"+d.d.GetSubset()))
			}
		}
		for _, d := range routeDestinations(vs) {
			check(d, "host+subset in destinationrule")
		}
		for _, d := range mirrorDestinations(vs) {
			check(d, "mirror+subset in destinationrule")
		}
	}
}

// analyzeVSGateways: every gateway a VirtualService names must exist
// (IST0101) and serve at least one of its hosts (IST0132).
func analyzeVSGateways(c *context) {
	for _, r := range c.in.Config.List(config.VirtualService) {
		vs := r.Spec.(*networking.VirtualService)
		for _, g := range vs.GetGateways() {
			if g == "mesh" {
				continue
			}
			if _, n, ok := strings.Cut(g, "/"); (ok && strings.Contains(n, "~istio-autogenerated-k8s-gateway~")) ||
				(!ok && strings.Contains(g, "~istio-autogenerated-k8s-gateway~")) {
				c.report(newMessage(ReferencedInternalGateway, refOf(r), r.Namespace+"/"+r.Name, g))
				continue
			}
			gns, gname := shortOrFullName(r.Namespace, g)
			gw, exists := c.in.Config.Get(config.Key{Kind: config.Gateway, Namespace: gns, Name: gname})
			var kgw *KubeGateway
			if !exists {
				for _, k := range c.in.KubeGateways {
					if k.Namespace == gns && k.Name == gname {
						kgw = k
					}
				}
			}
			if !exists && kgw == nil {
				c.report(newMessage(ReferencedResourceNotFound, refOf(r), "gateway", g))
			}
			match := false
			if kgw != nil {
				match = vsHostInKubeGateway(kgw, vs.GetHosts())
			} else {
				match = vsHostInGateway(gw, exists, vs.GetHosts(), r.Namespace)
			}
			if !match {
				c.report(newMessage(VirtualServiceHostNotFoundInGateway, refOf(r), vs.GetHosts(), r.Namespace+"/"+r.Name, gns+"/"+gname))
			}
		}
	}
}

func vsHostInKubeGateway(g *KubeGateway, vsHosts []string) bool {
	for _, h := range g.Hostnames {
		if h == "" {
			return true
		}
	}
	for _, h := range g.Hostnames {
		for _, vh := range vsHosts {
			if hostMatches(h, vh) {
				return true
			}
		}
	}
	return false
}

func vsHostInGateway(gw config.Resource, exists bool, vsHosts []string, vsNS string) bool {
	if !exists {
		return false
	}
	var hosts []string
	for _, s := range gw.Spec.(*networking.Gateway).GetServers() {
		sh := make([]string, 0, len(s.GetHosts()))
		for _, h := range s.GetHosts() {
			if ns, name, ok := strings.Cut(h, "/"); ok {
				switch ns {
				case ".":
					h = gw.Namespace + "/" + name
				case "*":
					if name == "*" {
						sh = []string{"*"}
						goto done
					}
					h = name
				}
			}
			sh = append(sh, h)
		}
	done:
		hosts = append(hosts, sh...)
	}
	for _, h := range hosts {
		if ns, name, ok := strings.Cut(h, "/"); ok {
			if ns != vsNS && ns != "*" {
				continue
			}
			h = name
		}
		for _, vh := range vsHosts {
			if hostMatches(h, vh) {
				return true
			}
		}
	}
	return false
}

// analyzeConflictingMeshHosts: two VirtualServices bound to the mesh gateway
// must not define the same host for the same namespaces (IST0109).
func analyzeConflictingMeshHosts(c *context) {
	byHost := map[string][]config.Resource{}
	for _, r := range c.in.Config.List(config.VirtualService) {
		vs := r.Spec.(*networking.VirtualService)
		mesh := len(vs.GetGateways()) == 0
		for _, g := range vs.GetGateways() {
			mesh = mesh || g == "mesh"
		}
		if !mesh {
			continue
		}
		scopes := []string{"*"}
		if !exportToAll(vs.GetExportTo()) {
			seen := map[string]bool{}
			scopes = nil
			for _, e := range vs.GetExportTo() {
				if e == "." {
					e = r.Namespace
				}
				if !seen[e] {
					seen[e] = true
					scopes = append(scopes, e)
				}
			}
		}
		for _, scope := range scopes {
			for _, h := range vs.GetHosts() {
				k := scoped(scope, r.Namespace, h)
				byHost[k] = append(byHost[k], r)
			}
		}
	}
	reported := map[config.Key]bool{}
	for _, k := range sortedKeys(byHost) {
		list := byHost[k]
		scope, host, _ := strings.Cut(k, "/")
		if scope != "*" {
			for _, other := range sortedKeys(byHost) {
				oscope, ohost, _ := strings.Cut(other, "/")
				if oscope == "*" && hostMatches(host, ohost) {
					list = append(list, byHost[other]...)
				}
			}
		}
		if len(list) < 2 {
			continue
		}
		names := make([]string, 0, len(list))
		for _, r := range list {
			names = append(names, r.Namespace+"/"+r.Name)
		}
		sort.Strings(names)
		for _, r := range list {
			if reported[r.Key()] {
				continue
			}
			reported[r.Key()] = true
			c.report(newMessage(ConflictingMeshGatewayVirtualServiceHosts, refOf(r), strings.Join(names, ","), k))
		}
	}
}

// analyzeJWTClaimRoutes: routing on a JWT claim through a gateway needs a
// RequestAuthentication that selects the gateway's pods (IST0149).
func analyzeJWTClaimRoutes(c *context) {
	raByNS := map[string][]selector{}
	for _, r := range c.in.Config.List(config.RequestAuthentication) {
		raByNS[r.Namespace] = append(raByNS[r.Namespace], selector(r.Spec.(*security.RequestAuthentication).GetSelector().GetMatchLabels()))
	}
	for _, r := range c.in.Config.List(config.VirtualService) {
		vs := r.Spec.(*networking.VirtualService)
		key := jwtClaimKey(vs)
		if key == "" {
			continue
		}
		for _, g := range vs.GetGateways() {
			if g == "mesh" {
				continue
			}
			gns, gname := shortOrFullName(r.Namespace, g)
			gw, ok := c.in.Config.Get(config.Key{Kind: config.Gateway, Namespace: gns, Name: gname})
			if !ok {
				continue
			}
			sel := selector(gw.Spec.(*networking.Gateway).GetSelector())
			for _, p := range c.in.Pods {
				if !sel.matches(p.Labels) {
					continue
				}
				found := false
				for _, ras := range append(append([]selector(nil), raByNS["istio-system"]...), raByNS[p.Namespace]...) {
					if ras.matches(p.Labels) {
						found = true
						break
					}
				}
				if !found {
					c.report(newMessage(JwtClaimBasedRoutingWithoutRequestAuthN, refOf(r), key, gns+"/"+gname, p.Name))
				}
			}
		}
	}
}

// jwtClaimKey returns the first header match key that routes on a JWT claim.
func jwtClaimKey(vs *networking.VirtualService) string {
	for _, h := range vs.GetHttp() {
		for _, m := range h.GetMatch() {
			for _, k := range sortedKeys(m.GetHeaders()) {
				if isClaimKey(k) {
					return k
				}
			}
			for _, k := range sortedKeys(m.GetWithoutHeaders()) {
				if isClaimKey(k) {
					return k
				}
			}
		}
	}
	return ""
}

func isClaimKey(k string) bool {
	rest, ok := strings.CutPrefix(k, "@request.auth.claims")
	return ok && (strings.HasPrefix(rest, ".") || strings.HasPrefix(rest, "[")) && len(rest) > 1
}

// analyzeDelegates reports VirtualService delegation without effect as
// validation warnings (IST0133): a VirtualService without hosts that no
// root delegates to, and a delegate route whose target is missing, has
// hosts or is not exported to the root's namespace.
func analyzeDelegates(c *context) {
	for _, p := range config.DelegateProblems(c.in.Config) {
		ref := Ref{Kind: p.Resource.Kind.Kind, Namespace: p.Resource.Namespace, Name: p.Resource.Name, File: p.Source.File, Line: p.Source.Line}
		c.report(newMessage(SchemaWarning, ref, p.Field+": "+p.Message))
	}
}
