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

// affectedProxies maps each resource key to the connected proxies whose
// configuration it shapes: routing resources through what the proxy's
// Sidecar scope sees (mesh VirtualServices, services and their
// DestinationRules) or through the Gateways that select it; Sidecars,
// Gateways and workload policies through their selectors; WorkloadEntries
// through the proxy at their address and the proxies that see a service
// they serve.
func affectedProxies(pc *model.PushContext, proxies []*model.Proxy) map[string][]string {
	out := map[string][]string{}
	if pc == nil || pc.Config == nil {
		return out
	}
	add := func(key string, ids []string) { out[key] = append(out[key], ids...) }
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
	for _, c := range classes(proxies) {
		p := c.proxy
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
		scope := pc.Scope(p)
		for _, vs := range scope.VirtualServices {
			if p.Type != model.Router {
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
			add(k, c.ids)
		}
	}
	// A WorkloadEntry also shapes the proxy at its own address.
	for _, p := range proxies {
		for _, ip := range p.IPAddresses {
			for _, r := range weByAddr[ip] {
				k := resourceKey("WorkloadEntry", r.Namespace, r.Name)
				if !slices.Contains(out[k], p.ID) {
					add(k, []string{p.ID})
				}
			}
		}
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}
