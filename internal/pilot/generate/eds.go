package generate

import (
	"slices"
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
	add := func(name string, svc *registry.Service, port registry.Port, subset map[string]string, dr *model.DestinationRule) {
		la, enc := g.loadAssignmentFor(name, svc, port, subset, dr)
		if l := g.splitHorizon(la, svc, port); l != la {
			la, enc = l, nil
		}
		// Locality load balancing depends on the proxy: a localized copy
		// is this proxy's own (not the shared encoding).
		_, subsetName, _, _ := parseCluster(name)
		if l := g.localize(la, effectivePolicy(g.pc.DestinationRule(g.p, svc.Hostname), port.Number, subsetName), svc, port); l != la {
			la, enc = l, nil
		}
		out = append(out, model.XDSResource{Name: name, Resource: la, Encoded: enc})
	}
	addDNAT := func(svc *registry.Service, port registry.Port, subset string, dr *model.DestinationRule) {
		la := g.sniDNATAssignment(svc, port, subset, dr)
		out = append(out, model.XDSResource{Name: la.ClusterName, Resource: la})
	}
	dnat := g.autoPassthroughServers()
	if len(names) > 0 {
		for _, n := range names {
			if portN, subset, host, ok := parseSNIDNAT(n); ok {
				svc := g.scope.Service(host)
				if svc == nil || !usesEDS(svc, g.pc) || !autoPassthroughHost(dnat, svc) {
					continue
				}
				port, ok := svc.PortByNumber(portN)
				dr := g.pc.DestinationRule(g.p, host)
				if !ok || subset != "" && findSubset(dr, subset) == nil {
					continue
				}
				addDNAT(svc, port, subset, dr)
				continue
			}
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
			var dr *model.DestinationRule
			if subset != "" {
				dr = g.pc.DestinationRule(g.p, host)
				s := findSubset(dr, subset)
				if s == nil {
					continue
				}
				labels = s.GetLabels()
			}
			add(n, svc, port, labels, dr)
		}
		return out
	}
	for _, svc := range g.scope.Services {
		if !usesEDS(svc, g.pc) {
			continue
		}
		dr := g.pc.DestinationRule(g.p, svc.Hostname)
		if autoPassthroughHost(dnat, svc) {
			for _, port := range svc.Ports {
				for _, subset := range subsetNames(dr) {
					addDNAT(svc, port, subset, dr)
				}
			}
		}
		for _, port := range svc.Ports {
			add(ClusterName("outbound", port.Number, "", svc.Hostname), svc, port, nil, nil)
			if dr == nil {
				continue
			}
			for _, s := range dr.Spec.GetSubsets() {
				if s.GetName() != "" {
					add(ClusterName("outbound", port.Number, s.GetName(), svc.Hostname), svc, port, s.GetLabels(), dr)
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

// edsKey identifies a load assignment within a push: the cluster name fixes
// host, port and subset name; the DestinationRule fixes the subset's labels.
type edsKey struct {
	cluster string
	dr      *model.DestinationRule
}

// cachedLoadAssignment shares load assignments between the proxies of a push.
// subset must be the labels of the cluster's subset in dr (nil dr for the default cluster).
func (g *gen) cachedLoadAssignment(name string, svc *registry.Service, port registry.Port, subset map[string]string, dr *model.DestinationRule) *endpointv3.ClusterLoadAssignment {
	return g.pc.Memo(edsKey{cluster: name, dr: dr}, func() any {
		return g.loadAssignment(name, svc, port, subset)
	}).(*endpointv3.ClusterLoadAssignment)
}

func lbEndpoint(addr string, port, weight uint32) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{
		HostIdentifier:      &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(addr, port)}},
		LoadBalancingWeight: u32(weight),
	}
}

// parseLocality turns "region/zone/subzone" into a Locality. It is never nil:
// grpc-go rejects an EDS locality without one ("locality without ID").
func parseLocality(s string) *corev3.Locality {
	l := &corev3.Locality{}
	if s == "" {
		return l
	}
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
	type addrPort struct {
		addr string
		port uint32
	}
	// duplicates are looked up linearly for the usual handful of endpoints, in a map beyond
	var seenList []addrPort
	var seenMap map[addrPort]struct{}
	if len(eps) > 32 {
		seenMap = make(map[addrPort]struct{}, len(eps))
	}
	dup := func(k addrPort) bool {
		if seenMap != nil {
			if _, ok := seenMap[k]; ok {
				return true
			}
			seenMap[k] = struct{}{}
			return false
		}
		if slices.Contains(seenList, k) {
			return true
		}
		seenList = append(seenList, k)
		return false
	}
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
		if dup(addrPort{ep.Address, p}) {
			continue
		}
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
		lbe := lbEndpoint(ep.Address, p, w)
		lbe.Metadata = g.endpointTLSMetadata(svc, ep, p)
		gr.lle.LbEndpoints = append(gr.lle.LbEndpoints, lbe)
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
