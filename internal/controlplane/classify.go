package controlplane

import (
	"cmp"
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/generate"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

// kindTypes says which xDS types a change to a kind can alter. A kind not
// listed here (ServiceEntry, Sidecar, DestinationRule, PeerAuthentication,
// and any kind added later) changes every type. The generators are the
// authority: TestPushCoversChange checks this table against them by
// generating before and after every change of every resource in testdata.
var kindTypes = map[config.Kind][]string{
	config.VirtualService:        {generate.ListenerType, generate.RouteType},
	config.Gateway:               {generate.ListenerType, generate.RouteType},
	config.AuthorizationPolicy:   {generate.ListenerType},
	config.RequestAuthentication: {generate.ListenerType},
	config.Telemetry:             {generate.ListenerType, generate.RouteType},
	config.RateLimit:             {generate.ListenerType},
}

// typesFor returns the xDS types a change of kinds from old to new can
// alter, nil meaning all. A VirtualService reaches listeners only through its
// tcp and tls routes (sidecar and gateway filter chains); a change of
// VirtualServices none of which has such routes, before or after, alters
// routes alone, and listeners are not even generated for it.
func typesFor(kinds map[config.Kind]struct{}, old, new *config.Snapshot) map[string]struct{} {
	if len(kinds) == 0 {
		return nil
	}
	out := map[string]struct{}{}
	for k := range kinds {
		ts, ok := kindTypes[k]
		if !ok {
			return nil
		}
		if k == config.VirtualService && !l4RoutesChanged(old, new) {
			ts = []string{generate.RouteType}
		}
		for _, t := range ts {
			out[t] = struct{}{}
			if t == generate.RouteType {
				// On-demand virtual hosts are parts of route configurations.
				out[generate.VirtualHostType] = struct{}{}
			}
		}
	}
	return out
}

// l4RoutesChanged reports whether a VirtualService that changed between old
// and new (added, removed or edited) has tcp or tls routes in either version.
// Unchanged resources keep their spec's identity across snapshots; an equal
// spec under a new identity counts as unchanged.
func l4RoutesChanged(old, new *config.Snapshot) bool {
	hasL4 := func(r *config.Resource) bool {
		if r == nil {
			return false
		}
		vs, ok := r.Spec.(*networking.VirtualService)
		return !ok || len(vs.GetTcp()) > 0 || len(vs.GetTls()) > 0
	}
	changed := false
	changedVirtualServices(old, new, func(o, n *config.Resource) bool {
		if (hasL4(o) || hasL4(n)) && (o == nil || n == nil || !proto.Equal(o.Spec, n.Spec)) {
			changed = true
		}
		return !changed
	})
	return changed
}

// routeHosts returns the hosts (resolved as the push context resolves
// VirtualService hosts) of every VirtualService that changed between old and
// new, in either version: the hosts whose HTTP routes a change of
// VirtualServices alone can alter (model.PushRequest.Hosts). It returns nil
// (unknown: everything) when a changed VirtualService names no host, as a
// delegate does: its routes reach whichever VirtualServices delegate to it.
func routeHosts(old, new *config.Snapshot, domainSuffix string) map[string]struct{} {
	if domainSuffix == "" {
		domainSuffix = model.DefaultMeshConfig().DomainSuffix
	}
	out := map[string]struct{}{}
	changedVirtualServices(old, new, func(o, n *config.Resource) bool {
		for _, r := range []*config.Resource{o, n} {
			if r == nil {
				continue
			}
			vs, ok := r.Spec.(*networking.VirtualService)
			if !ok || len(vs.GetHosts()) == 0 {
				out = nil
				return false
			}
			for _, h := range vs.GetHosts() {
				out[model.ResolveHost(h, r.Namespace, domainSuffix)] = struct{}{}
			}
		}
		return true
	})
	return out
}

// changedVirtualServices calls fn with the old and new version (nil when
// absent) of every VirtualService added, removed or edited from old to new,
// until fn returns false. A resource whose spec kept its identity is
// unchanged.
func changedVirtualServices(old, new *config.Snapshot, fn func(o, n *config.Resource) bool) {
	o, n := old.List(config.VirtualService), new.List(config.VirtualService)
	i, j := 0, 0
	for i < len(o) || j < len(n) {
		c := 0
		switch {
		case i == len(o):
			c = 1
		case j == len(n):
			c = -1
		default:
			c = cmp.Or(cmp.Compare(o[i].Namespace, n[j].Namespace), cmp.Compare(o[i].Name, n[j].Name))
		}
		more := true
		switch {
		case c < 0:
			more = fn(&o[i], nil)
			i++
		case c > 0:
			more = fn(nil, &n[j])
			j++
		default:
			if o[i].Spec != n[j].Spec {
				more = fn(&o[i], &n[j])
			}
			i++
			j++
		}
		if !more {
			return
		}
	}
}

// endpointPush returns the request for a change of endpoints alone (services
// unchanged) from old to new, or nil when nothing changed. EDS is pushed for
// the hosts whose endpoints changed, and more where the endpoints show up in
// other types:
//   - a DNS service inlines its endpoints in its clusters (CDS);
//   - a resolution NONE service's clusters are EDS clusters only while it has
//     endpoints (CDS and EDS when it gains its first or loses its last);
//   - cluster SANs list the service accounts of a service's endpoints (CDS
//     when that set changes);
//   - a proxy's inbound listeners and clusters follow the workloads at its
//     own address (a full push for proxies at an address whose workloads
//     changed).
func endpointPush(old, new *registry.Snapshot, hosts map[string]struct{}) *model.PushRequest {
	if len(hosts) == 0 {
		return nil
	}
	req := &model.PushRequest{EDSHosts: hosts, Reason: "endpoints"}
	cds := false
	for h := range hosts {
		svc := new.Service(h)
		if svc == nil {
			svc = old.Service(h)
		}
		oldEps, newEps := endpointsOf(old, h), endpointsOf(new, h)
		if svc != nil && (svc.Resolution == registry.ResolutionDNS || svc.Resolution == registry.ResolutionDNSRoundRobin) {
			cds = true
		}
		if svc != nil && svc.Resolution == registry.ResolutionNone && !slices.Equal(portsWithEndpoints(svc, oldEps), portsWithEndpoints(svc, newEps)) {
			cds = true
		}
		if !slices.Equal(portServiceAccounts(oldEps), portServiceAccounts(newEps)) {
			cds = true
		}
		moved := workloadsMoved(oldEps, newEps)
		for a := range moved {
			if req.Addresses == nil {
				req.Addresses = map[string]struct{}{}
			}
			req.Addresses[a] = struct{}{}
		}
	}
	if cds {
		req.Full = true
		req.Types = map[string]struct{}{generate.ClusterType: {}, generate.EndpointType: {}}
	}
	return req
}

func endpointsOf(s *registry.Snapshot, host string) []*registry.Endpoint {
	if s == nil {
		return nil
	}
	return s.Endpoints[host]
}

// portsWithEndpoints lists the service ports that have at least one endpoint, in order.
func portsWithEndpoints(svc *registry.Service, eps []*registry.Endpoint) []uint32 {
	var out []uint32
	for _, p := range svc.Ports {
		for _, e := range eps {
			if e.ServicePort == p.Number {
				out = append(out, p.Number)
				break
			}
		}
	}
	return out
}

// portServiceAccounts is the sorted set of the endpoints' service accounts
// by service port ("PORT SA"): a cluster's SANs are those of its port.
func portServiceAccounts(eps []*registry.Endpoint) []string {
	var out []string
	for _, e := range eps {
		if e.ServiceAccount == "" {
			continue
		}
		k := strconv.FormatUint(uint64(e.ServicePort), 10) + " " + e.ServiceAccount
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// workloadsMoved returns the addresses where a workload (service, service
// port, workload port) appeared or disappeared between old and new.
func workloadsMoved(old, new []*registry.Endpoint) map[string]struct{} {
	type slot struct {
		addr, host  string
		servicePort uint32
		port        uint32
	}
	set := func(eps []*registry.Endpoint) map[slot]struct{} {
		m := make(map[slot]struct{}, len(eps))
		for _, e := range eps {
			m[slot{e.Address, e.Hostname, e.ServicePort, e.Port}] = struct{}{}
		}
		return m
	}
	o, n := set(old), set(new)
	var out map[string]struct{}
	add := func(a string) {
		if out == nil {
			out = map[string]struct{}{}
		}
		out[a] = struct{}{}
	}
	for s := range o {
		if _, ok := n[s]; !ok {
			add(s.addr)
		}
	}
	for s := range n {
		if _, ok := o[s]; !ok {
			add(s.addr)
		}
	}
	return out
}
