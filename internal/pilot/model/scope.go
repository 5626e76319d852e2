package model

import (
	"strings"
	"sync"
	"sync/atomic"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/registry"
)

// SidecarScope is what one class of proxies can see: the services and the
// mesh-bound VirtualServices visible from a namespace through exportTo and the
// Sidecar resource that applies. It is computed once per (namespace, Sidecar)
// per push and shared by every proxy with the same inputs.
type SidecarScope struct {
	Namespace string
	// Sidecar is the Sidecar resource in effect; nil when none applies.
	Sidecar *Sidecar
	// Services are the visible services, sorted by hostname.
	Services []*registry.Service
	// VirtualServices are the visible mesh-bound VirtualServices, sorted by namespace and name.
	VirtualServices []*VirtualService
	// Egress are the Sidecar's egress listeners that name a port, each
	// scoped to its own hosts, in the Sidecar's order.
	Egress []*EgressListener

	byHost map[string]*registry.Service
	vsFor  map[string][]*VirtualService
}

type scopeKey struct {
	namespace string
	sidecar   *Sidecar // the Sidecar in effect, nil when none
}

// scopeEntry is one scope of a push context, built once.
type scopeEntry struct {
	once sync.Once
	s    atomic.Pointer[SidecarScope]
}

func (e *scopeEntry) get() *SidecarScope { return e.s.Load() }

// doneScope is an entry holding s.
func doneScope(s *SidecarScope) *scopeEntry {
	e := &scopeEntry{}
	e.once.Do(func() { e.s.Store(s) })
	return e
}

// Service returns the visible service with the given hostname.
func (s *SidecarScope) Service(host string) *registry.Service { return s.byHost[host] }

// VirtualServicesFor returns the visible mesh VirtualServices whose hosts
// match the service host, in namespace/name order.
func (s *SidecarScope) VirtualServicesFor(host string) []*VirtualService { return s.vsFor[host] }

// RegistryOnly reports whether the Sidecar restricts outbound traffic to known services.
func (s *SidecarScope) RegistryOnly() bool {
	if s.Sidecar == nil || s.Sidecar.Spec.GetOutboundTrafficPolicy() == nil {
		return false // mesh default: ALLOW_ANY
	}
	return s.Sidecar.Spec.GetOutboundTrafficPolicy().GetMode() == networking.OutboundTrafficPolicy_REGISTRY_ONLY
}

// SidecarFor returns the Sidecar resource that applies to a proxy: one in its
// namespace whose workloadSelector matches its labels, else the namespace's
// Sidecar without selector, else the root namespace's Sidecar without selector.
func (pc *PushContext) SidecarFor(p *Proxy) *Sidecar {
	var nsDefault *Sidecar
	for _, sc := range pc.ix().sidecars[p.Namespace] {
		sel := sc.Spec.GetWorkloadSelector().GetLabels()
		if len(sel) == 0 {
			if nsDefault == nil {
				nsDefault = sc
			}
			continue
		}
		if LabelsMatch(sel, p.Labels) {
			return sc
		}
	}
	if nsDefault != nil {
		return nsDefault
	}
	for _, sc := range pc.ix().sidecars[pc.Mesh.RootNamespace] {
		if len(sc.Spec.GetWorkloadSelector().GetLabels()) == 0 {
			return sc
		}
	}
	return nil
}

// Scope returns the proxy's SidecarScope. Gateways (router proxies) are not
// scoped by Sidecar resources, as in Istio. The result is cached in the push
// context under exactly its inputs: the proxy's namespace and the Sidecar in
// effect (the services and mesh VirtualServices are the push context's); a
// push context made by NextPushContext starts with the previous one's scopes
// whose inputs did not change.
func (pc *PushContext) Scope(p *Proxy) *SidecarScope {
	var sc *Sidecar
	if p.Type != Router {
		sc = pc.SidecarFor(p)
	}
	key := scopeKey{namespace: p.Namespace, sidecar: sc}
	scopes := &pc.ix().scopes
	v, ok := scopes.Load(key)
	if !ok {
		v, _ = scopes.LoadOrStore(key, &scopeEntry{})
	}
	e := v.(*scopeEntry)
	e.once.Do(func() { e.s.Store(pc.buildScope(p.Namespace, sc)) })
	return e.get()
}

type egressHost struct {
	ns   string // "*", a namespace, or "" for none ("~")
	host string
}

func parseEgressHosts(sc *Sidecar, proxyNS string) []egressHost {
	var out []egressHost
	for _, l := range sc.Spec.GetEgress() {
		out = append(out, parseListenerHosts(l, proxyNS)...)
	}
	return out
}

// parseListenerHosts parses one egress listener's "ns/host" entries.
func parseListenerHosts(l *networking.IstioEgressListener, proxyNS string) []egressHost {
	var out []egressHost
	for _, h := range l.GetHosts() {
		ns, host, ok := strings.Cut(h, "/")
		if !ok {
			ns, host = "*", h
		}
		switch ns {
		case ".":
			ns = proxyNS
		case "~":
			continue
		}
		out = append(out, egressHost{ns: ns, host: host})
	}
	return out
}

func egressAllows(hosts []egressHost, ns, host string) bool {
	for _, h := range hosts {
		if (h.ns == "*" || h.ns == ns) && HostMatches(h.host, host) {
			return true
		}
	}
	return false
}

func (pc *PushContext) buildScope(ns string, sc *Sidecar) *SidecarScope {
	s := &SidecarScope{Namespace: ns, Sidecar: sc, byHost: map[string]*registry.Service{}}
	var egress []egressHost
	scoped := sc != nil && len(sc.Spec.GetEgress()) > 0
	if scoped {
		egress = parseEgressHosts(sc, ns)
	}
	if pc.Registry != nil {
		for _, svc := range pc.Registry.Services {
			if _, dup := s.byHost[svc.Hostname]; dup {
				continue
			}
			if !ExportedTo(svc.ExportTo, svc.Namespace, ns) {
				continue
			}
			if scoped && !egressAllows(egress, svc.Namespace, svc.Hostname) {
				continue
			}
			s.Services = append(s.Services, svc)
			s.byHost[svc.Hostname] = svc
		}
	}
	if scoped {
		s.Egress = buildEgressListeners(sc, ns, s.Services)
	}
	s.addVirtualServices(pc.ix().meshVS)
	return s
}

// withVirtualServices returns a copy of s, which must not be shared yet,
// with the mesh VirtualServices meshVS instead of its own: its services are
// shared.
func (s *SidecarScope) withVirtualServices(meshVS []*VirtualService) *SidecarScope {
	n := &SidecarScope{Namespace: s.Namespace, Sidecar: s.Sidecar, Services: s.Services, Egress: s.Egress, byHost: s.byHost}
	n.addVirtualServices(meshVS)
	return n
}

// addVirtualServices sets the scope's VirtualServices: those of meshVS
// visible from its namespace through exportTo and its Sidecar's egress hosts.
func (s *SidecarScope) addVirtualServices(meshVS []*VirtualService) {
	s.vsFor = map[string][]*VirtualService{}
	var egress []egressHost
	scoped := s.Sidecar != nil && len(s.Sidecar.Spec.GetEgress()) > 0
	if scoped {
		egress = parseEgressHosts(s.Sidecar, s.Namespace)
	}
	for _, vs := range meshVS {
		if !ExportedTo(vs.Spec.GetExportTo(), vs.Namespace, s.Namespace) {
			continue
		}
		if scoped {
			ok := false
			for _, h := range vs.Hosts {
				if egressAllows(egress, vs.Namespace, h) {
					ok = true
					break
				}
			}
			if !ok {
				continue
			}
		}
		s.VirtualServices = append(s.VirtualServices, vs)
		for _, h := range vs.Hosts {
			if !strings.HasPrefix(h, "*") {
				if _, ok := s.byHost[h]; ok {
					s.vsFor[h] = appendVS(s.vsFor[h], vs)
				}
				continue
			}
			for _, svc := range s.Services {
				if HostMatches(h, svc.Hostname) {
					s.vsFor[svc.Hostname] = appendVS(s.vsFor[svc.Hostname], vs)
				}
			}
		}
	}
}

func appendVS(list []*VirtualService, vs *VirtualService) []*VirtualService {
	if n := len(list); n > 0 && list[n-1] == vs {
		return list
	}
	return append(list, vs)
}
