package consul

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/mast-mesh/mast/internal/registry"
)

// Meta keys and tags Mast reads from a Consul service instance (Consul
// allows only letters, digits, '-' and '_' in meta keys).
const (
	// MetaProtocol is the instance's application protocol (http, http2,
	// grpc, tcp, ...): service meta first, then node meta (as Istio's
	// adapter read it), then a "protocol|http" or "protocol=http" tag.
	MetaProtocol = "protocol"
	// MetaServiceAccount names the workload's service account: its
	// endpoints carry spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT so that
	// mTLS callers verify it.
	MetaServiceAccount = "service-account"
	// MetaNamespace sets the mesh namespace of the instance when Consul has
	// no namespaces (Consul CE); Consul Enterprise's namespace wins.
	MetaNamespace = "mesh-namespace"
	// NodeMetaExternal on a node makes its services mesh-external, as with
	// Istio's adapter (no sidecar there: no mTLS to them).
	NodeMetaExternal = "external"
)

// HostSuffix is appended to a Consul service's name to form its mesh
// hostname, as Istio's Consul adapter did: reviews -> reviews.service.consul.
const HostSuffix = ".service.consul"

// Hostname is the mesh hostname of a Consul service.
func Hostname(service string) string { return service + HostSuffix }

// convertOptions are what conversion needs besides the instances.
type convertOptions struct {
	TrustDomain  string
	AllowWarning bool // instances whose worst check is "warning" are kept
	Registry     string
}

// converted is one Consul service in the mesh model.
type converted struct {
	svc *registry.Service
	eps []*registry.Endpoint
}

// healthy reports whether an instance takes traffic: its aggregated checks
// (node's and service's) pass, or warn when warnings are allowed.
func healthy(e *api.ServiceEntry, allowWarning bool) bool {
	switch e.Checks.AggregatedStatus() {
	case api.HealthPassing:
		return true
	case api.HealthWarning:
		return allowWarning
	}
	return false
}

// convert turns the health answer for one Consul service into a mesh
// service and its healthy endpoints. Instances that are malformed (no node
// or service, no address, a port out of range) are skipped and counted in
// skipped; a service whose every instance is skipped still exists (with the
// ports the others declared, or none), so that routes to it stay valid.
func convert(name string, entries []*api.ServiceEntry, o convertOptions) (c converted, skipped int) {
	svc := &registry.Service{
		Hostname:   Hostname(name),
		Namespace:  "default",
		Resolution: registry.ResolutionStatic,
		ExportTo:   []string{"*"},
		Registry:   o.Registry,
	}
	ports := map[uint32]registry.Port{}
	accounts := map[string]bool{}
	for _, e := range entries {
		if e == nil || e.Service == nil || e.Node == nil {
			skipped++
			continue
		}
		s, n := e.Service, e.Node
		addr := cmp.Or(s.Address, n.Address)
		if addr == "" {
			skipped++
			continue
		}
		labels := labelsOf(s.Tags, s.Meta)
		proto := cmp.Or(s.Meta[MetaProtocol], n.Meta[MetaProtocol], tagValue(s.Tags, MetaProtocol))
		instPorts := instancePorts(s, proto)
		if len(instPorts) == 0 {
			skipped++
			continue
		}
		ns := s.Meta[MetaNamespace]
		if s.Namespace != "" && s.Namespace != "default" {
			ns = s.Namespace // a Consul Enterprise namespace
		}
		ns = cmp.Or(ns, "default")
		svc.Namespace = ns
		if n.Meta[NodeMetaExternal] != "" {
			svc.MeshExternal = true
		}
		var sa string
		if acct := s.Meta[MetaServiceAccount]; acct != "" && o.TrustDomain != "" {
			sa = fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", o.TrustDomain, ns, acct)
			accounts[sa] = true
		}
		if _, err := netip.ParseAddr(addr); err != nil {
			svc.Resolution = registry.ResolutionDNS
		}
		for _, p := range instPorts {
			if _, ok := ports[p.Number]; !ok {
				ports[p.Number] = p
			}
			if !healthy(e, o.AllowWarning) {
				continue
			}
			c.eps = append(c.eps, &registry.Endpoint{
				Hostname:       svc.Hostname,
				ServicePort:    p.Number,
				Address:        addr,
				Port:           p.Number,
				Labels:         labels,
				Locality:       locality(e),
				ServiceAccount: sa,
				Weight:         serviceWeight(s.Weights.Passing),
			})
		}
	}
	for _, p := range ports {
		svc.Ports = append(svc.Ports, p)
	}
	slices.SortFunc(svc.Ports, func(a, b registry.Port) int { return cmp.Compare(a.Number, b.Number) })
	for a := range accounts {
		svc.ServiceAccounts = append(svc.ServiceAccounts, a)
	}
	slices.Sort(svc.ServiceAccounts)
	slices.SortFunc(c.eps, func(a, b *registry.Endpoint) int {
		return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port))
	})
	c.svc = svc
	return c, skipped
}

// instancePorts are an instance's ports: Consul's named ports when it has
// them (protocol from the name unless meta says), else its single port
// named after its protocol ("tcp" when none is declared, as Istio did).
func instancePorts(s *api.AgentService, proto string) []registry.Port {
	var out []registry.Port
	if len(s.Ports) > 0 {
		for _, p := range s.Ports {
			if p.Port <= 0 || p.Port > 65535 {
				continue
			}
			pr := registry.PortProtocol(proto, p.Name)
			if pr == registry.Unknown {
				pr = registry.TCP
			}
			out = append(out, registry.Port{Name: p.Name, Number: uint32(p.Port), Protocol: pr})
		}
		return out
	}
	if s.Port <= 0 || s.Port > 65535 {
		return nil
	}
	pr := registry.ParseProtocol(proto)
	if pr == registry.Unknown {
		pr = registry.TCP
	}
	return []registry.Port{{Name: strings.ToLower(string(pr)), Number: uint32(s.Port), Protocol: pr}}
}

// labelsOf turns tags and service meta into workload labels: "version|v1"
// (Istio's adapter) and "version=v1" tags give version=v1, a bare tag gives
// an empty value; meta keys and values are labels as they are, and win over
// tags.
func labelsOf(tags []string, meta map[string]string) map[string]string {
	if len(tags) == 0 && len(meta) == 0 {
		return nil
	}
	out := make(map[string]string, len(tags)+len(meta))
	for _, t := range tags {
		k, v, ok := strings.Cut(t, "|")
		if !ok {
			k, v, _ = strings.Cut(t, "=")
		}
		if k != "" {
			out[k] = v
		}
	}
	for k, v := range meta {
		if k != "" {
			out[k] = v
		}
	}
	return out
}

// tagValue is the value of a "key|value" or "key=value" tag.
func tagValue(tags []string, key string) string {
	for _, t := range tags {
		for _, sep := range []string{"|", "="} {
			if k, v, ok := strings.Cut(t, sep); ok && k == key {
				return v
			}
		}
	}
	return ""
}

// locality is region/zone: Consul's locality when set (service's, then
// node's), else the datacenter as the region.
func locality(e *api.ServiceEntry) string {
	for _, l := range []*api.Locality{e.Service.Locality, e.Node.Locality} {
		if l != nil && l.Region != "" {
			if l.Zone != "" {
				return l.Region + "/" + l.Zone
			}
			return l.Region
		}
	}
	return cmp.Or(e.Service.Datacenter, e.Node.Datacenter)
}

// serviceWeight bounds Consul's passing weight to what EDS carries.
func serviceWeight(w int) uint32 {
	if w <= 0 {
		return 0
	}
	return uint32(min(w, 128))
}
