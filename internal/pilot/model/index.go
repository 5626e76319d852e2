package model

import (
	"cmp"
	"slices"
	"sort"
	"strings"
	"sync"

	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/registry"
)

// MeshGateway is the gateway name that binds a VirtualService to sidecars.
const MeshGateway = "mesh"

// VirtualService is a VirtualService with its hosts and gateways resolved
// against its namespace.
type VirtualService struct {
	config.Resource
	Spec     *networking.VirtualService
	Hosts    []string // FQDNs or wildcards
	Gateways []string // "mesh" or "namespace/name"
}

// BoundTo reports whether the VirtualService applies to gateway gw ("mesh" or "ns/name").
func (v *VirtualService) BoundTo(gw string) bool {
	for _, g := range v.Gateways {
		if g == gw {
			return true
		}
	}
	return false
}

// DestinationRule is a DestinationRule with its host resolved.
type DestinationRule struct {
	config.Resource
	Spec *networking.DestinationRule
	Host string
}

// Gateway is a Gateway resource with its "namespace/name" key.
type Gateway struct {
	config.Resource
	Spec *networking.Gateway
	Key  string
}

// Sidecar is a Sidecar resource.
type Sidecar struct {
	config.Resource
	Spec *networking.Sidecar
}

// ResolveGatewayName turns a gateway reference in a VirtualService in
// namespace ns into "mesh" or "namespace/name".
func ResolveGatewayName(name, ns string) string {
	if name == MeshGateway || strings.IndexByte(name, '/') >= 0 {
		return name
	}
	return ns + "/" + name
}

type hostPort struct {
	host string
	port uint32
}

type nsRules struct {
	exact     map[string][]*DestinationRule
	wildcards []*DestinationRule // sorted by specificity (longest host first), then namespace/name
}

// index holds everything derived from the push context's inputs once per
// push. nextIndex derives it from the previous push's: each part whose
// inputs are the previous part's own (the same resource list, the same
// registry snapshot or services) is shared, and the registry's maps are
// patched for the hosts whose services or endpoints changed.
type index struct {
	in indexInputs

	meshVS    []*VirtualService
	gatewayVS map[string][]*VirtualService
	drByNS    map[string]*nsRules
	gateways  []*Gateway
	sidecars  map[string][]*Sidecar
	endpoints *cowMap[hostPort, []*registry.Endpoint]
	byAddress *cowMap[string, []*registry.Endpoint]
	services  *cowMap[string, *registry.Service] // the first service of each hostname
	networks  *networkIndex

	scopes sync.Map // scopeKey -> *scopeEntry

	memo sync.Map // per-push results of generators, see PushContext.Memo
}

// indexInputs are what an index was built from.
type indexInputs struct {
	domainSuffix              string
	vs, dr, gateways, sidecar []config.Resource
	meshNetworks              *meshconfig.MeshNetworks
	reg                       *registry.Snapshot
}

func buildIndex(mesh MeshConfig, cfg *config.Snapshot, reg *registry.Snapshot) *index {
	return nextIndex(nil, mesh, cfg, reg)
}

// nextIndex builds the index of (mesh, cfg, reg), sharing what it can with
// prev (nil: build everything). The result equals buildIndex's.
func nextIndex(prev *index, mesh MeshConfig, cfg *config.Snapshot, reg *registry.Snapshot) *index {
	in := indexInputs{
		domainSuffix: mesh.DomainSuffix,
		vs:           cfg.List(config.VirtualService),
		dr:           cfg.List(config.DestinationRule),
		gateways:     cfg.List(config.Gateway),
		sidecar:      cfg.List(config.Sidecar),
		meshNetworks: mesh.MeshNetworks,
		reg:          reg,
	}
	ix := &index{in: in}
	suffixSame := prev != nil && prev.in.domainSuffix == in.domainSuffix
	if suffixSame && sameList(prev.in.vs, in.vs) {
		ix.meshVS, ix.gatewayVS = prev.meshVS, prev.gatewayVS
	} else {
		ix.meshVS, ix.gatewayVS = indexVirtualServices(in.vs, mesh.DomainSuffix)
	}
	if suffixSame && sameList(prev.in.dr, in.dr) {
		ix.drByNS = prev.drByNS
	} else {
		ix.drByNS = indexDestinationRules(in.dr, mesh.DomainSuffix)
	}
	if prev != nil && sameList(prev.in.gateways, in.gateways) {
		ix.gateways = prev.gateways
	} else {
		for _, r := range in.gateways {
			if spec, ok := r.Spec.(*networking.Gateway); ok {
				ix.gateways = append(ix.gateways, &Gateway{Resource: r, Spec: spec, Key: r.Namespace + "/" + r.Name})
			}
		}
	}
	sidecarsSame := prev != nil && sameList(prev.in.sidecar, in.sidecar)
	if sidecarsSame {
		ix.sidecars = prev.sidecars
	} else {
		ix.sidecars = map[string][]*Sidecar{}
		for _, r := range in.sidecar {
			if spec, ok := r.Spec.(*networking.Sidecar); ok {
				ix.sidecars[r.Namespace] = append(ix.sidecars[r.Namespace], &Sidecar{Resource: r, Spec: spec})
			}
		}
	}
	var prevReg *registry.Snapshot
	if prev != nil {
		prevReg = prev.in.reg
	}
	servicesSame := prev != nil && samePointers(servicesOf(prevReg), servicesOf(reg))
	switch {
	case prev != nil && prevReg == reg:
		ix.services, ix.endpoints, ix.byAddress = prev.services, prev.endpoints, prev.byAddress
	case prev == nil || prevReg == nil || reg == nil || !ix.patchRegistry(prev, reg):
		ix.indexRegistry(reg)
	}
	if prev != nil && servicesSame && prev.in.meshNetworks == in.meshNetworks {
		ix.networks = prev.networks
	} else {
		ix.networks = buildNetworkIndex(mesh.MeshNetworks, servicesOf(reg))
	}
	if prev != nil && sidecarsSame && servicesSame {
		// Scopes read the services, the Sidecars and the mesh
		// VirtualServices: carry the previous push's over, with their
		// VirtualServices redone when those changed.
		vsSame := sameVirtualServices(prev.meshVS, ix.meshVS)
		prev.scopes.Range(func(k, v any) bool {
			e := v.(*scopeEntry)
			s := e.get()
			if s == nil {
				return true // being built
			}
			if !vsSame {
				s = s.withVirtualServices(ix.meshVS)
			}
			ix.scopes.Store(k, doneScope(s))
			return true
		})
	}
	return ix
}

func servicesOf(reg *registry.Snapshot) []*registry.Service {
	if reg == nil {
		return nil
	}
	return reg.Services
}

// sameList reports whether two resource lists of config snapshots are the
// same list: snapshots are immutable, and an update copies only the lists of
// the kinds it touches.
func sameList(a, b []config.Resource) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func samePointers[T any](a, b []*T) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sameVirtualServices(a, b []*VirtualService) bool { return samePointers(a, b) }

func indexVirtualServices(vss []config.Resource, domainSuffix string) (meshVS []*VirtualService, gatewayVS map[string][]*VirtualService) {
	gatewayVS = map[string][]*VirtualService{}
	for _, r := range mergeDelegates(vss, domainSuffix) {
		spec, ok := r.Spec.(*networking.VirtualService)
		if !ok {
			continue
		}
		vs := &VirtualService{Resource: r, Spec: spec}
		for _, h := range spec.GetHosts() {
			vs.Hosts = append(vs.Hosts, ResolveHost(h, r.Namespace, domainSuffix))
		}
		if len(spec.GetGateways()) == 0 {
			vs.Gateways = []string{MeshGateway}
		}
		for _, g := range spec.GetGateways() {
			vs.Gateways = append(vs.Gateways, ResolveGatewayName(g, r.Namespace))
		}
		for _, g := range vs.Gateways {
			if g == MeshGateway {
				meshVS = append(meshVS, vs)
			} else {
				gatewayVS[g] = append(gatewayVS[g], vs)
			}
		}
	}
	return meshVS, gatewayVS
}

func indexDestinationRules(drs []config.Resource, domainSuffix string) map[string]*nsRules {
	byNS := map[string]*nsRules{}
	for _, r := range drs {
		spec, ok := r.Spec.(*networking.DestinationRule)
		if !ok || spec.GetHost() == "" {
			continue
		}
		dr := &DestinationRule{Resource: r, Spec: spec, Host: ResolveHost(spec.GetHost(), r.Namespace, domainSuffix)}
		rules := byNS[r.Namespace]
		if rules == nil {
			rules = &nsRules{exact: map[string][]*DestinationRule{}}
			byNS[r.Namespace] = rules
		}
		if strings.HasPrefix(dr.Host, "*") {
			rules.wildcards = append(rules.wildcards, dr)
		} else {
			rules.exact[dr.Host] = append(rules.exact[dr.Host], dr)
		}
	}
	for _, rules := range byNS {
		sort.SliceStable(rules.wildcards, func(i, j int) bool {
			return len(rules.wildcards[i].Host) > len(rules.wildcards[j].Host)
		})
	}
	return byNS
}

// indexRegistry indexes every service and endpoint of reg.
func (ix *index) indexRegistry(reg *registry.Snapshot) {
	services := newCowMap[string, *registry.Service](hashString).edit()
	endpoints := newCowMap[hostPort, []*registry.Endpoint](hashHostPort).edit()
	byAddress := newCowMap[string, []*registry.Endpoint](hashString).edit()
	if reg != nil {
		for _, s := range reg.Services {
			if services.get(s.Hostname) == nil {
				services.set(s.Hostname, s)
			}
		}
		touched := map[string]struct{}{}
		for host, eps := range reg.Endpoints {
			addEndpoints(endpoints, byAddress, host, eps, touched)
		}
		sortByAddress(byAddress, touched)
	}
	ix.services, ix.endpoints, ix.byAddress = services.done(), endpoints.done(), byAddress.done()
}

// addEndpoints indexes host's endpoints by service port and by address,
// noting the addresses it added to.
func addEndpoints(endpoints *cowEdit[hostPort, []*registry.Endpoint], byAddress *cowEdit[string, []*registry.Endpoint], host string, eps []*registry.Endpoint, touched map[string]struct{}) {
	for _, e := range eps {
		k := hostPort{host, e.ServicePort}
		endpoints.set(k, append(endpoints.get(k), e))
		list := byAddress.get(e.Address)
		if _, ok := touched[e.Address]; !ok {
			// The list may be the previous index's: append to a copy.
			list = slices.Clip(list)
			touched[e.Address] = struct{}{}
		}
		byAddress.set(e.Address, append(list, e))
	}
}

// sortByAddress sorts the endpoint lists of the touched addresses by port,
// hostname and service port; the sort is stable, so that endpoints equal in
// these keep their order in their host's list.
func sortByAddress(byAddress *cowEdit[string, []*registry.Endpoint], touched map[string]struct{}) {
	for addr := range touched {
		slices.SortStableFunc(byAddress.get(addr), func(a, b *registry.Endpoint) int {
			return cmp.Or(cmp.Compare(a.Port, b.Port), strings.Compare(a.Hostname, b.Hostname), cmp.Compare(a.ServicePort, b.ServicePort))
		})
	}
}

// patchRegistry indexes reg by patching prev's registry indexes for the
// hosts whose services or endpoint lists are not prev's own. It returns
// false, having done nothing, when so many hosts changed that indexing
// everything is cheaper.
func (ix *index) patchRegistry(prev *index, reg *registry.Snapshot) bool {
	old := prev.in.reg
	svcHosts, epHosts := registry.ChangedHosts(old, reg)
	if limit := len(reg.Services)/4 + 8; len(svcHosts) > limit || len(epHosts) > limit {
		return false
	}
	services := prev.services.edit()
	for host := range svcHosts {
		if s := reg.Service(host); s != nil {
			services.set(host, s)
		} else {
			services.del(host)
		}
	}
	endpoints, byAddress := prev.endpoints.edit(), prev.byAddress.edit()
	gone := map[*registry.Endpoint]struct{}{}
	touched := map[string]struct{}{}
	for host := range epHosts {
		for _, e := range old.Endpoints[host] {
			endpoints.del(hostPort{host, e.ServicePort})
			gone[e] = struct{}{}
			touched[e.Address] = struct{}{}
		}
	}
	for addr := range touched {
		kept := slices.DeleteFunc(slices.Clone(byAddress.get(addr)), func(e *registry.Endpoint) bool {
			_, ok := gone[e]
			return ok
		})
		if len(kept) == 0 {
			byAddress.del(addr)
		} else {
			byAddress.set(addr, kept)
		}
	}
	for host := range epHosts {
		addEndpoints(endpoints, byAddress, host, reg.Endpoints[host], touched)
	}
	sortByAddress(byAddress, touched)
	ix.services, ix.endpoints, ix.byAddress = services.done(), endpoints.done(), byAddress.done()
	return true
}

// Memo returns the value stored under key for this push, calling build to
// produce it on first use. Generators use it to share work between proxies;
// the key must contain every input build reads besides the push context
// itself (which is immutable), and callers must treat the value as immutable.
// Safe for concurrent use: build runs once per key, and callers asking for a
// key while it is being built wait for it (a push wakes every connection at
// once, and each would otherwise build the same shared value). build must not
// ask for its own key.
func (pc *PushContext) Memo(key any, build func() any) any {
	m := &pc.ix().memo
	v, ok := m.Load(key)
	if !ok {
		v, _ = m.LoadOrStore(key, &memoEntry{})
	}
	e := v.(*memoEntry)
	e.once.Do(func() { e.v = build() })
	return e.v
}

// memoEntry is one Memo value, built once.
type memoEntry struct {
	once sync.Once
	v    any
}

// Service returns the service with the given hostname, regardless of visibility.
func (pc *PushContext) Service(host string) *registry.Service {
	return pc.ix().services.get(host)
}

// Endpoints returns the endpoints of host's service port, sorted by address and port.
// Callers must not modify the result.
func (pc *PushContext) Endpoints(host string, port uint32) []*registry.Endpoint {
	return pc.ix().endpoints.get(hostPort{host, port})
}

// EndpointsAt returns every endpoint whose address is addr (the workloads
// running at one IP), sorted by port, hostname and service port.
func (pc *PushContext) EndpointsAt(addr string) []*registry.Endpoint {
	return pc.ix().byAddress.get(addr)
}

// Gateways returns every Gateway resource, sorted by namespace and name.
func (pc *PushContext) Gateways() []*Gateway { return pc.ix().gateways }

// GatewaysFor returns the Gateways whose selector matches the proxy's labels.
// As in Istio, a Gateway selects workloads in any namespace.
func (pc *PushContext) GatewaysFor(p *Proxy) []*Gateway {
	var out []*Gateway
	for _, g := range pc.ix().gateways {
		if LabelsMatch(g.Spec.GetSelector(), p.Labels) {
			out = append(out, g)
		}
	}
	return out
}

// GatewayVirtualServices returns the VirtualServices bound to the gateway
// "ns/name" and exported to namespace ns, sorted by namespace and name.
func (pc *PushContext) GatewayVirtualServices(gw, ns string) []*VirtualService {
	var out []*VirtualService
	for _, vs := range pc.ix().gatewayVS[gw] {
		if ExportedTo(vs.Spec.GetExportTo(), vs.Namespace, ns) {
			out = append(out, vs)
		}
	}
	return out
}

// DestinationRule returns the DestinationRule that applies to host for the
// proxy, following Istio's precedence: the proxy's namespace, then the
// service's namespace, then the root namespace. Within a namespace an exact
// host beats the most specific wildcard. exportTo and workloadSelector are honoured.
func (pc *PushContext) DestinationRule(p *Proxy, host string) *DestinationRule {
	return pc.destinationRule(p, host, false)
}

// InboundDestinationRule is the DestinationRule for host that applies to
// the proxy's inbound clusters: as istiod's SidecarScope.DestinationRule
// for the inbound direction, rules with a workloadSelector are left out
// (the Sidecar's connection pools are the per-workload form there).
func (pc *PushContext) InboundDestinationRule(p *Proxy, host string) *DestinationRule {
	return pc.destinationRule(p, host, true)
}

// destinationRule looks host up in the proxy's namespace, the service's
// namespace, then the root namespace, each once.
func (pc *PushContext) destinationRule(p *Proxy, host string, inbound bool) *DestinationRule {
	svcNS := ""
	if s := pc.ix().services.get(host); s != nil {
		svcNS = s.Namespace
	}
	for i, ns := range [3]string{p.Namespace, svcNS, pc.Mesh.RootNamespace} {
		if ns == "" || (i == 1 && ns == p.Namespace) || (i == 2 && (ns == p.Namespace || ns == svcNS)) {
			continue
		}
		if dr := pc.ix().drByNS[ns].lookup(p, host, inbound); dr != nil {
			return dr
		}
	}
	return nil
}

func (r *nsRules) lookup(p *Proxy, host string, inbound bool) *DestinationRule {
	if r == nil {
		return nil
	}
	applies := func(dr *DestinationRule) bool {
		if !ExportedTo(dr.Spec.GetExportTo(), dr.Namespace, p.Namespace) {
			return false
		}
		if sel := dr.Spec.GetWorkloadSelector(); sel != nil {
			return !inbound && dr.Namespace == p.Namespace && LabelsMatch(sel.GetMatchLabels(), p.Labels)
		}
		return true
	}
	// DestinationRules with a workload selector take precedence over ones without, as in Istio.
	var fallback *DestinationRule
	for _, dr := range r.exact[host] {
		if applies(dr) {
			if dr.Spec.GetWorkloadSelector() != nil {
				return dr
			}
			if fallback == nil {
				fallback = dr
			}
		}
	}
	if fallback != nil {
		return fallback
	}
	for _, dr := range r.wildcards {
		if HostMatches(dr.Host, host) && applies(dr) {
			return dr
		}
	}
	return nil
}
