package dashboard

import (
	"maps"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// resourceKey names a resource in the dashboard: Kind/namespace/name.
func resourceKey(kind, ns, name string) string { return kind + "/" + ns + "/" + name }

// proxyClass is the proxies that see the same configuration: same type,
// namespace and labels (the inputs of scoping, DestinationRule selection
// and workload policies).
type proxyClass struct {
	proxy *model.Proxy // a representative
	ids   []string
}

func classes(proxies []*model.Proxy) []*proxyClass {
	byKey := map[string]*proxyClass{}
	var out []*proxyClass
	for _, p := range proxies {
		var b strings.Builder
		b.WriteString(string(p.Type) + "|" + p.Namespace + "|" + p.Generator)
		for _, k := range slices.Sorted(maps.Keys(p.Labels)) {
			b.WriteString("|" + k + "=" + p.Labels[k])
		}
		c := byKey[b.String()]
		if c == nil {
			c = &proxyClass{proxy: p}
			byKey[b.String()] = c
			out = append(out, c)
		}
		c.ids = append(c.ids, p.ID)
	}
	return out
}

// proxySet is a set of connected proxies, by ID (sorted).
type proxySet struct{ ids []string }

func (s *proxySet) has(id string) bool {
	_, ok := slices.BinarySearch(s.ids, id)
	return ok
}

// affected maps a resource key to the disjoint sets of proxies it shapes.
// Sets are shared between resources: every proxy of a namespace sees most
// of the mesh's services, so listing proxies per resource would cost
// resources x proxies.
type affected map[string][]*proxySet

// count is how many proxies k shapes.
func (a affected) count(k string) int {
	n := 0
	for _, s := range a[k] {
		n += len(s.ids)
	}
	return n
}

// ids lists the proxies k shapes, sorted: all of them, or the first limit
// (the first limit of a union of sorted lists are among each one's first limit).
func (a affected) ids(k string, limit int) []string {
	out := []string{}
	for _, s := range a[k] {
		ids := s.ids
		if limit >= 0 {
			ids = ids[:min(len(ids), limit)]
		}
		out = append(out, ids...)
	}
	slices.Sort(out)
	if limit >= 0 {
		out = out[:min(len(out), limit)]
	}
	return out
}

// scopeGroup is the proxy classes that share what their Sidecar scope
// makes them see: the same scope, namespace and proxy type (and labels,
// when a DestinationRule selects workloads).
type scopeGroup struct {
	proxy *model.Proxy // a representative
	set   *proxySet
}

// affectedProxies maps each resource key to the connected proxies whose
// configuration it shapes: routing resources through what the proxy's
// Sidecar scope sees (mesh VirtualServices, services and their
// DestinationRules) or through the Gateways that select it; Sidecars,
// Gateways and workload policies through their selectors; WorkloadEntries
// through the proxy at their address and the proxies that see a service
// they serve. What a scope sees is computed once per scope group, not per
// proxy class.
func affectedProxies(pc *model.PushContext, proxies []*model.Proxy) affected {
	out := affected{}
	if pc == nil || pc.Config == nil {
		return out
	}
	seByHost := map[string][]string{} // "ns/host" -> ServiceEntry keys
	for _, r := range pc.Config.List(config.ServiceEntry) {
		for _, h := range r.Spec.(*networking.ServiceEntry).GetHosts() {
			seByHost[r.Namespace+"/"+h] = append(seByHost[r.Namespace+"/"+h], resourceKey("ServiceEntry", r.Namespace, r.Name))
		}
	}
	weByAddr := map[string][]config.Resource{}
	for _, r := range pc.Config.List(config.WorkloadEntry) {
		a := r.Spec.(*networking.WorkloadEntry).GetAddress()
		weByAddr[a] = append(weByAddr[a], r)
	}
	hostWE := map[string][]string{} // service host -> WorkloadEntry keys serving it
	for addr, rs := range weByAddr {
		for _, ep := range pc.EndpointsAt(addr) {
			for _, r := range rs {
				hostWE[ep.Hostname] = append(hostWE[ep.Hostname], resourceKey("WorkloadEntry", r.Namespace, r.Name))
			}
		}
	}
	drSelectsWorkloads := slices.ContainsFunc(pc.Config.List(config.DestinationRule), func(r config.Resource) bool {
		return r.Spec.(*networking.DestinationRule).GetWorkloadSelector() != nil
	})
	type groupKey struct {
		scope  *model.SidecarScope
		ns     string
		router bool
		class  *proxyClass // when DestinationRules select workloads
	}
	groups := map[groupKey]*scopeGroup{}
	var order []*scopeGroup
	classOf := map[string]*proxySet{}
	for _, c := range classes(proxies) {
		p := c.proxy
		slices.Sort(c.ids)
		cs := &proxySet{ids: c.ids}
		for _, id := range c.ids {
			classOf[id] = cs
		}
		keys := map[string]bool{}
		if p.Type == model.Router {
			for _, g := range pc.GatewaysFor(p) {
				keys[resourceKey("Gateway", g.Namespace, g.Name)] = true
				for _, vs := range pc.GatewayVirtualServices(g.Key, p.Namespace) {
					keys[resourceKey("VirtualService", vs.Namespace, vs.Name)] = true
				}
			}
		} else if sc := pc.SidecarFor(p); sc != nil {
			keys[resourceKey("Sidecar", sc.Namespace, sc.Name)] = true
		}
		for _, r := range pc.Config.List(config.PeerAuthentication) {
			pa := r.Spec.(*security.PeerAuthentication)
			if pc.PolicyApplies(p, r.Namespace, pa.GetSelector(), nil, nil) {
				keys[resourceKey("PeerAuthentication", r.Namespace, r.Name)] = true
			}
		}
		for _, r := range pc.Config.List(config.AuthorizationPolicy) {
			ap := r.Spec.(*security.AuthorizationPolicy)
			if pc.PolicyApplies(p, r.Namespace, ap.GetSelector(), ap.GetTargetRef(), ap.GetTargetRefs()) {
				keys[resourceKey("AuthorizationPolicy", r.Namespace, r.Name)] = true
			}
		}
		for _, r := range pc.Config.List(config.RequestAuthentication) {
			ra := r.Spec.(*security.RequestAuthentication)
			if pc.PolicyApplies(p, r.Namespace, ra.GetSelector(), ra.GetTargetRef(), ra.GetTargetRefs()) {
				keys[resourceKey("RequestAuthentication", r.Namespace, r.Name)] = true
			}
		}
		for k := range keys {
			out[k] = append(out[k], cs)
		}
		gk := groupKey{scope: pc.Scope(p), ns: p.Namespace, router: p.Type == model.Router}
		if drSelectsWorkloads {
			gk.class = c
		}
		g := groups[gk]
		if g == nil {
			g = &scopeGroup{proxy: p, set: &proxySet{}}
			groups[gk] = g
			order = append(order, g)
		}
		g.set.ids = append(g.set.ids, c.ids...)
	}
	// What a scope sees: its VirtualServices (sidecars; a gateway's come
	// through its Gateways), services, their ServiceEntries, the
	// WorkloadEntries serving them and the DestinationRules that apply.
	for _, g := range order {
		slices.Sort(g.set.ids)
		p := g.proxy
		keys := map[string]bool{}
		scope := pc.Scope(p)
		if p.Type != model.Router {
			for _, vs := range scope.VirtualServices {
				keys[resourceKey("VirtualService", vs.Namespace, vs.Name)] = true
			}
		}
		for _, s := range scope.Services {
			for _, k := range seByHost[s.Namespace+"/"+s.Hostname] {
				keys[k] = true
			}
			for _, k := range hostWE[s.Hostname] {
				keys[k] = true
			}
			if dr := pc.DestinationRule(p, s.Hostname); dr != nil {
				keys[resourceKey("DestinationRule", dr.Namespace, dr.Name)] = true
			}
		}
		for k := range keys {
			out[k] = append(out[k], g.set)
		}
	}
	// A WorkloadEntry also shapes the proxy at its own address.
	for _, p := range proxies {
		for _, ip := range p.IPAddresses {
			for _, r := range weByAddr[ip] {
				k := resourceKey("WorkloadEntry", r.Namespace, r.Name)
				if !slices.ContainsFunc(out[k], func(s *proxySet) bool { return s.has(p.ID) }) {
					out[k] = append(out[k], &proxySet{ids: []string{p.ID}})
				}
			}
		}
	}
	return out
}
