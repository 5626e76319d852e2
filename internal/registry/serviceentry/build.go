// Package serviceentry is Mast's default service registry: it turns Istio
// ServiceEntry and WorkloadEntry resources into registry services and endpoints.
//
// WorkloadGroup is configuration only for now: it is a template for workloads
// that register themselves (auto-registration), and without a registered
// workload it contributes no endpoints, so Build ignores it.
package serviceentry

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/registry"
)

// Name is the registry name services from ServiceEntries carry.
const Name = "serviceentry"

// Options are the mesh settings Build needs.
type Options struct {
	// TrustDomain is used in endpoints' SPIFFE IDs; "" means "cluster.local".
	TrustDomain string
	// DomainSuffix is the mesh's DNS suffix. ServiceEntry hosts are taken
	// literally, as in Istio (short names are not expanded), so Build does not
	// use it yet.
	DomainSuffix string
	// Workloads are instances other registries know (Consul, Eureka). A
	// ServiceEntry's workloadSelector selects them as it selects
	// WorkloadEntries, as Istio's selects workloads of every platform: a
	// ServiceEntry can so give a registry's instances another name.
	Workloads []Workload
}

// Workload is an instance of another registry, for Options.Workloads.
type Workload struct {
	Namespace      string
	Address        string
	Ports          map[string]uint32 // by service port name; others use the service port's target
	Labels         map[string]string
	Locality       string
	ServiceAccount string // SPIFFE ID
	Network        string
	Weight         uint32
}

// Build converts the ServiceEntries of cfg, with the WorkloadEntries their
// workload selectors pick, into a registry snapshot. It is a pure function;
// the snapshot shares label maps and slices with cfg, which is immutable.
//
// Each host of a ServiceEntry becomes one service in the entry's namespace.
// Several ServiceEntries declaring the same host in the same namespace make one
// service: the first entry (by name) gives its attributes, the others add the
// ports it lacks and their endpoints. The same host in several namespaces gives
// one service per namespace, but registry.Snapshot keys endpoints by host only,
// so Endpoints[host] holds those of the first namespace's service, the one
// Snapshot.Service(host) returns.
//
// Endpoints come from the entry's inline endpoints and, with a workload
// selector, from every WorkloadEntry in the entry's namespace whose labels
// (spec labels overlaid by metadata labels, as in Istio) include the selector's.
// An entry with DNS or DNS_ROUND_ROBIN resolution and neither gets one endpoint
// per port at each non-wildcard host itself, for the proxy to resolve.
func Build(cfg *config.Snapshot, opts Options) *registry.Snapshot {
	return new(Builder).Build(cfg, opts)
}

// key names a service: a host in a namespace.
type key struct{ host, ns string }

// workloadsOf indexes the WorkloadEntries of rs (one namespace's, or all)
// and the other registries' workloads of those namespaces (all when ns is
// "", else ns's only).
func workloadsOf(rs []config.Resource, opts Options, ids *identities, ns string) map[string]*nsWorkloads {
	wls := indexWorkloads(rs, ids)
	for i := range opts.Workloads {
		w := &opts.Workloads[i]
		if ns != "" && w.Namespace != ns {
			continue
		}
		n := wls[w.Namespace]
		if n == nil {
			n = &nsWorkloads{}
			wls[w.Namespace] = n
		}
		n.list = append(n.list, &workload{address: w.Address, ports: w.Ports, labels: w.Labels, locality: w.Locality,
			network: w.Network, weight: w.Weight, serviceAccount: w.ServiceAccount})
	}
	return wls
}

// buildEntries converts entries (ServiceEntries sorted by namespace and
// name), adding to byKey and returning services extended with the services
// it creates; with want, only the services of those keys.
func buildEntries(entries []config.Resource, wls map[string]*nsWorkloads, ids *identities, want map[key]bool, byKey map[key]*built, services []*built) []*built {
	for _, r := range entries {
		se, ok := r.Spec.(*networking.ServiceEntry)
		if !ok || se == nil {
			continue
		}
		if want != nil && !slices.ContainsFunc(se.GetHosts(), func(h string) bool { return want[key{h, r.Namespace}] }) {
			continue
		}
		ports := convertPorts(se.GetPorts())
		inline := make([]workload, 0, len(se.GetEndpoints()))
		for _, ep := range se.GetEndpoints() {
			if ep != nil {
				inline = append(inline, ids.workload(ep, ep.GetLabels(), r.Namespace))
			}
		}
		members := make([]*workload, len(inline), len(inline)+1)
		for i := range inline {
			members[i] = &inline[i]
		}
		if sel := se.GetWorkloadSelector(); sel != nil {
			// Rebuilding a few services, scanning beats indexing the namespace.
			members = wls[r.Namespace].selectInto(members, sel.GetLabels(), want == nil || len(want) > linearSelect)
		}
		res := convertResolution(se.GetResolution())
		synthesize := len(members) == 0 && se.GetWorkloadSelector() == nil &&
			(res == registry.ResolutionDNS || res == registry.ResolutionDNSRoundRobin)
		for _, host := range se.GetHosts() {
			k := key{host, r.Namespace}
			if want != nil && !want[k] {
				continue
			}
			b := byKey[k]
			if b == nil {
				b = &built{svc: &registry.Service{
					Hostname:        host,
					Namespace:       r.Namespace,
					Addresses:       slices.Clip(se.GetAddresses()),
					Ports:           ports,
					Resolution:      res,
					MeshExternal:    se.GetLocation() == networking.ServiceEntry_MESH_EXTERNAL,
					Labels:          r.Labels,
					ServiceAccounts: slices.Clip(se.GetSubjectAltNames()),
					ExportTo:        slices.Clip(se.GetExportTo()),
					Registry:        Name,
				}}
				byKey[k] = b
				services = append(services, b)
			} else {
				b.addPorts(ports)
			}
			if synthesize && !strings.HasPrefix(host, "*") {
				b.hostEndpoints(host, ports)
			}
			b.endpoints(host, ports, members)
		}
	}
	return services
}

// sortedEndpoints returns b's endpoints in snapshot order (nil for none).
func (b *built) sortedEndpoints() []*registry.Endpoint {
	if len(b.eps) == 0 {
		return nil
	}
	eps := make([]*registry.Endpoint, len(b.eps))
	for j := range b.eps {
		eps[j] = &b.eps[j]
	}
	slices.SortStableFunc(eps, compareEndpoints)
	return eps
}

func compareServices(a, b *registry.Service) int {
	return cmp.Or(cmp.Compare(a.Hostname, b.Hostname), cmp.Compare(a.Namespace, b.Namespace))
}

// compareEndpoints orders endpoints as registry.Snapshot documents: by address
// and port, then by service port.
func compareEndpoints(a, b *registry.Endpoint) int {
	return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port), cmp.Compare(a.ServicePort, b.ServicePort))
}

// built is a service under construction with its endpoints.
type built struct {
	svc *registry.Service
	eps []registry.Endpoint // one allocation for all of them
}

// addPorts adds the ports whose numbers the service does not have yet.
func (b *built) addPorts(ports []registry.Port) {
	for _, p := range ports {
		if _, ok := b.svc.PortByNumber(p.Number); !ok {
			b.svc.Ports = append(slices.Clip(b.svc.Ports), p)
		}
	}
}

func (b *built) endpoints(host string, ports []registry.Port, members []*workload) {
	if len(members) == 0 || len(ports) == 0 {
		return
	}
	b.eps = slices.Grow(b.eps, len(members)*len(ports))
	for _, w := range members {
		for _, p := range ports {
			b.eps = append(b.eps, registry.Endpoint{
				Hostname:       host,
				ServicePort:    p.Number,
				Address:        w.address,
				Port:           w.port(p),
				Labels:         w.labels,
				Locality:       w.locality,
				ServiceAccount: w.serviceAccount,
				Network:        w.network,
				Weight:         w.weight,
			})
		}
	}
}

// hostEndpoints adds, for DNS resolution without endpoints, the host itself
// as the endpoint of each port.
func (b *built) hostEndpoints(host string, ports []registry.Port) {
	for _, p := range ports {
		b.eps = append(b.eps, registry.Endpoint{
			Hostname:    host,
			ServicePort: p.Number,
			Address:     host,
			Port:        cmp.Or(p.TargetPort, p.Number),
		})
	}
}

func convertPorts(in []*networking.ServicePort) []registry.Port {
	out := make([]registry.Port, 0, len(in))
	for _, p := range in {
		if p == nil {
			continue
		}
		out = append(out, registry.Port{
			Name:       p.GetName(),
			Number:     p.GetNumber(),
			Protocol:   registry.PortProtocol(p.GetProtocol(), p.GetName()),
			TargetPort: p.GetTargetPort(),
		})
	}
	return slices.Clip(out)
}

// convertResolution maps a ServiceEntry resolution. DYNAMIC_DNS (per-request
// resolution of wildcard hosts) is treated as NONE: a sidecar forwards to the
// address the application resolved itself.
func convertResolution(r networking.ServiceEntry_Resolution) registry.Resolution {
	switch r {
	case networking.ServiceEntry_STATIC:
		return registry.ResolutionStatic
	case networking.ServiceEntry_DNS:
		return registry.ResolutionDNS
	case networking.ServiceEntry_DNS_ROUND_ROBIN:
		return registry.ResolutionDNSRoundRobin
	}
	return registry.ResolutionNone
}

// workload is an inline endpoint or a WorkloadEntry, converted once.
type workload struct {
	address        string
	ports          map[string]uint32
	labels         map[string]string
	locality       string
	network        string
	weight         uint32
	serviceAccount string // SPIFFE ID; "" when the workload names none
	unix           bool   // a Unix domain socket: no port
}

// identities makes workloads' SPIFFE IDs, one string per namespace and
// service account.
type identities struct {
	td  string
	ids map[[2]string]string
}

func (ids *identities) id(ns, sa string) string {
	if sa == "" {
		return ""
	}
	k := [2]string{ns, sa}
	if id, ok := ids.ids[k]; ok {
		return id
	}
	if ids.ids == nil {
		ids.ids = map[[2]string]string{}
	}
	id := "spiffe://" + ids.td + "/ns/" + ns + "/sa/" + sa
	ids.ids[k] = id
	return id
}

func (ids *identities) workload(we *networking.WorkloadEntry, labels map[string]string, ns string) workload {
	return workload{
		address:        we.GetAddress(),
		ports:          we.GetPorts(),
		labels:         labels,
		locality:       we.GetLocality(),
		network:        cmp.Or(we.GetNetwork(), labels["topology.istio.io/network"]), // as istiod: the label when network is unset
		weight:         we.GetWeight(),
		serviceAccount: ids.id(ns, we.GetServiceAccount()),
		unix:           strings.HasPrefix(we.GetAddress(), "unix://"),
	}
}

// port is the workload's port for service port p: its own ports[p.Name], else
// p's target port, else p's number.
func (w *workload) port(p registry.Port) uint32 {
	if w.unix {
		return 0
	}
	if n := w.ports[p.Name]; n != 0 {
		return n
	}
	return cmp.Or(p.TargetPort, p.Number)
}

// nsWorkloads are the WorkloadEntries of one namespace, in name order, with an
// index by label built when a selector first needs it.
type nsWorkloads struct {
	list    []*workload
	byLabel map[string]map[string][]int32 // label key -> value -> positions in list
}

func indexWorkloads(rs []config.Resource, ids *identities) map[string]*nsWorkloads {
	all := make([]workload, 0, len(rs))
	out := map[string]*nsWorkloads{}
	for _, r := range rs {
		we, ok := r.Spec.(*networking.WorkloadEntry)
		if !ok || we == nil {
			continue
		}
		all = append(all, ids.workload(we, mergeLabels(we.GetLabels(), r.Labels), r.Namespace))
		n := out[r.Namespace]
		if n == nil {
			n = &nsWorkloads{}
			out[r.Namespace] = n
		}
		n.list = append(n.list, &all[len(all)-1])
	}
	return out
}

// mergeLabels overlays a WorkloadEntry's metadata labels on its spec labels,
// sharing a map when only one has any.
func mergeLabels(spec, meta map[string]string) map[string]string {
	if len(meta) == 0 {
		return spec
	}
	if len(spec) == 0 {
		return meta
	}
	out := make(map[string]string, len(spec)+len(meta))
	maps.Copy(out, spec)
	maps.Copy(out, meta)
	return out
}

// linearSelect is the namespace size under which selection scans the list
// instead of building the label index.
const linearSelect = 16

// selectInto appends the workloads whose labels include sel, in name order.
// An empty selector selects every workload of the namespace. With index,
// the label index is built (once) and used unless the namespace is small.
func (n *nsWorkloads) selectInto(dst []*workload, sel map[string]string, index bool) []*workload {
	if n == nil {
		return dst
	}
	if len(sel) == 0 || len(n.list) < linearSelect || !index && n.byLabel == nil {
		for _, w := range n.list {
			if matches(w.labels, sel) {
				dst = append(dst, w)
			}
		}
		return dst
	}
	if n.byLabel == nil {
		n.byLabel = map[string]map[string][]int32{}
		for i, w := range n.list {
			for k, v := range w.labels {
				vs := n.byLabel[k]
				if vs == nil {
					vs = map[string][]int32{}
					n.byLabel[k] = vs
				}
				vs[v] = append(vs[v], int32(i))
			}
		}
	}
	var candidates []int32
	first := true
	for k, v := range sel {
		c := n.byLabel[k][v]
		if len(c) == 0 {
			return dst
		}
		if first || len(c) < len(candidates) {
			candidates, first = c, false
		}
	}
	for _, i := range candidates {
		if w := n.list[i]; matches(w.labels, sel) {
			dst = append(dst, w)
		}
	}
	return dst
}

func matches(labels, sel map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
