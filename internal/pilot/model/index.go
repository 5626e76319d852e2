package model

import (
	"sort"
	"strings"
	"sync"

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

// index holds everything derived from the push context's inputs once per push.
type index struct {
	meshVS    []*VirtualService
	gatewayVS map[string][]*VirtualService
	drByNS    map[string]*nsRules
	gateways  []*Gateway
	sidecars  map[string][]*Sidecar
	endpoints map[hostPort][]*registry.Endpoint
	byAddress map[string][]*registry.Endpoint
	services  map[string]*registry.Service
	networks  *networkIndex

	mu     sync.Mutex
	scopes map[scopeKey]*SidecarScope

	memo sync.Map // per-push results of generators, see PushContext.Memo
}

func buildIndex(mesh MeshConfig, cfg *config.Snapshot, reg *registry.Snapshot) *index {
	ix := &index{
		gatewayVS: map[string][]*VirtualService{},
		drByNS:    map[string]*nsRules{},
		sidecars:  map[string][]*Sidecar{},
		endpoints: map[hostPort][]*registry.Endpoint{},
		byAddress: map[string][]*registry.Endpoint{},
		services:  map[string]*registry.Service{},
		scopes:    map[scopeKey]*SidecarScope{},
	}
	for _, r := range mergeDelegates(cfg.List(config.VirtualService), mesh.DomainSuffix) {
		spec, ok := r.Spec.(*networking.VirtualService)
		if !ok {
			continue
		}
		vs := &VirtualService{Resource: r, Spec: spec}
		for _, h := range spec.GetHosts() {
			vs.Hosts = append(vs.Hosts, ResolveHost(h, r.Namespace, mesh.DomainSuffix))
		}
		if len(spec.GetGateways()) == 0 {
			vs.Gateways = []string{MeshGateway}
		}
		for _, g := range spec.GetGateways() {
			vs.Gateways = append(vs.Gateways, ResolveGatewayName(g, r.Namespace))
		}
		for _, g := range vs.Gateways {
			if g == MeshGateway {
				ix.meshVS = append(ix.meshVS, vs)
			} else {
				ix.gatewayVS[g] = append(ix.gatewayVS[g], vs)
			}
		}
	}
	for _, r := range cfg.List(config.DestinationRule) {
		spec, ok := r.Spec.(*networking.DestinationRule)
		if !ok || spec.GetHost() == "" {
			continue
		}
		dr := &DestinationRule{Resource: r, Spec: spec, Host: ResolveHost(spec.GetHost(), r.Namespace, mesh.DomainSuffix)}
		rules := ix.drByNS[r.Namespace]
		if rules == nil {
			rules = &nsRules{exact: map[string][]*DestinationRule{}}
			ix.drByNS[r.Namespace] = rules
		}
		if strings.HasPrefix(dr.Host, "*") {
			rules.wildcards = append(rules.wildcards, dr)
		} else {
			rules.exact[dr.Host] = append(rules.exact[dr.Host], dr)
		}
	}
	for _, rules := range ix.drByNS {
		sort.SliceStable(rules.wildcards, func(i, j int) bool {
			return len(rules.wildcards[i].Host) > len(rules.wildcards[j].Host)
		})
	}
	for _, r := range cfg.List(config.Gateway) {
		if spec, ok := r.Spec.(*networking.Gateway); ok {
			ix.gateways = append(ix.gateways, &Gateway{Resource: r, Spec: spec, Key: r.Namespace + "/" + r.Name})
		}
	}
	for _, r := range cfg.List(config.Sidecar) {
		if spec, ok := r.Spec.(*networking.Sidecar); ok {
			ix.sidecars[r.Namespace] = append(ix.sidecars[r.Namespace], &Sidecar{Resource: r, Spec: spec})
		}
	}
	if reg != nil {
		for _, s := range reg.Services {
			if _, dup := ix.services[s.Hostname]; !dup {
				ix.services[s.Hostname] = s
			}
		}
		for host, eps := range reg.Endpoints {
			for _, e := range eps {
				k := hostPort{host, e.ServicePort}
				ix.endpoints[k] = append(ix.endpoints[k], e)
				ix.byAddress[e.Address] = append(ix.byAddress[e.Address], e)
			}
		}
		for _, eps := range ix.byAddress {
			sort.Slice(eps, func(i, j int) bool {
				if eps[i].Port != eps[j].Port {
					return eps[i].Port < eps[j].Port
				}
				if eps[i].Hostname != eps[j].Hostname {
					return eps[i].Hostname < eps[j].Hostname
				}
				return eps[i].ServicePort < eps[j].ServicePort
			})
		}
	}
	var services []*registry.Service
	if reg != nil {
		services = reg.Services
	}
	ix.networks = buildNetworkIndex(mesh.MeshNetworks, services)
	return ix
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
	return pc.ix().services[host]
}

// Endpoints returns the endpoints of host's service port, sorted by address and port.
// Callers must not modify the result.
func (pc *PushContext) Endpoints(host string, port uint32) []*registry.Endpoint {
	return pc.ix().endpoints[hostPort{host, port}]
}

// EndpointsAt returns every endpoint whose address is addr (the workloads
// running at one IP), sorted by port, hostname and service port.
func (pc *PushContext) EndpointsAt(addr string) []*registry.Endpoint {
	return pc.ix().byAddress[addr]
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
	if s := pc.ix().services[host]; s != nil {
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
