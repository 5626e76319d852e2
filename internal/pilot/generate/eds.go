package generate

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

// endpoints returns a ClusterLoadAssignment for every EDS cluster of the proxy
// (names restricts to those clusters).
func (g *gen) endpoints(names []string) []model.XDSResource {
	var out []model.XDSResource
	add := func(name string, svc *registry.Service, port registry.Port, subset map[string]string) {
		out = append(out, model.XDSResource{Name: name, Resource: g.loadAssignment(name, svc, port, subset)})
	}
	if len(names) > 0 {
		for _, n := range names {
			portN, subset, host, ok := parseCluster(n)
			if !ok {
				continue
			}
			svc := g.scope.Service(host)
			if svc == nil || !usesEDS(svc, g.pc) {
				continue
			}
			port, ok := svc.PortByNumber(portN)
			if !ok {
				continue
			}
			var labels map[string]string
			if subset != "" {
				s := findSubset(g.pc.DestinationRule(g.p, host), subset)
				if s == nil {
					continue
				}
				labels = s.GetLabels()
			}
			add(n, svc, port, labels)
		}
		return out
	}
	for _, svc := range g.scope.Services {
		if !usesEDS(svc, g.pc) {
			continue
		}
		dr := g.pc.DestinationRule(g.p, svc.Hostname)
		for _, port := range svc.Ports {
			add(ClusterName("outbound", port.Number, "", svc.Hostname), svc, port, nil)
			if dr == nil {
				continue
			}
			for _, s := range dr.Spec.GetSubsets() {
				if s.GetName() != "" {
					add(ClusterName("outbound", port.Number, s.GetName(), svc.Hostname), svc, port, s.GetLabels())
				}
			}
		}
	}
	return dedupe(out)
}

// usesEDS reports whether the service's clusters are EDS clusters: static
// services, and passthrough services that have endpoints.
func usesEDS(svc *registry.Service, pc *model.PushContext) bool {
	switch svc.Resolution {
	case registry.ResolutionDNS, registry.ResolutionDNSRoundRobin:
		return false
	case registry.ResolutionNone:
		for _, p := range svc.Ports {
			if len(pc.Endpoints(svc.Hostname, p.Number)) > 0 {
				return true
			}
		}
		return false
	}
	return true
}

func lbEndpoint(addr string, port, weight uint32) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{
		HostIdentifier:      &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(addr, port)}},
		LoadBalancingWeight: u32(weight),
	}
}

func parseLocality(s string) *corev3.Locality {
	if s == "" {
		return nil
	}
	l := &corev3.Locality{}
	parts := strings.SplitN(s, "/", 3)
	l.Region = parts[0]
	if len(parts) > 1 {
		l.Zone = parts[1]
	}
	if len(parts) > 2 {
		l.SubZone = parts[2]
	}
	return l
}

// loadAssignment groups a service port's endpoints (those matching the subset
// labels) by locality, localities sorted, each weighted by the sum of its
// endpoints' weights. Duplicate addresses are dropped (grpc-go rejects them).
func (g *gen) loadAssignment(name string, svc *registry.Service, port registry.Port, subset map[string]string) *endpointv3.ClusterLoadAssignment {
	la := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	eps := g.pc.Endpoints(svc.Hostname, port.Number)
	type group struct {
		locality string
		lle      *endpointv3.LocalityLbEndpoints
		weight   uint32
	}
	var groups []*group
	seen := make(map[string]struct{}, len(eps))
	for _, ep := range eps {
		if !model.LabelsMatch(subset, ep.Labels) {
			continue
		}
		p := ep.Port
		if p == 0 {
			p = port.TargetPort
		}
		if p == 0 {
			p = port.Number
		}
		key := ep.Address + ":" + itoa(p)
		if _, dup := seen[key]; dup {
			continue
		}
		seen[key] = struct{}{}
		w := ep.Weight
		if w == 0 {
			w = 1
		}
		var gr *group
		for _, x := range groups {
			if x.locality == ep.Locality {
				gr = x
				break
			}
		}
		if gr == nil {
			gr = &group{locality: ep.Locality, lle: &endpointv3.LocalityLbEndpoints{Locality: parseLocality(ep.Locality)}}
			groups = append(groups, gr)
		}
		gr.lle.LbEndpoints = append(gr.lle.LbEndpoints, lbEndpoint(ep.Address, p, w))
		gr.weight += w
	}
	// insertion sort: there are few localities
	for i := 1; i < len(groups); i++ {
		for j := i; j > 0 && groups[j].locality < groups[j-1].locality; j-- {
			groups[j], groups[j-1] = groups[j-1], groups[j]
		}
	}
	for _, gr := range groups {
		gr.lle.LoadBalancingWeight = u32(gr.weight)
		la.Endpoints = append(la.Endpoints, gr.lle)
	}
	return la
}
