package generate

import (
	"maps"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// Locality load balancing, as Istio applies it (localityLbSetting; on by
// default): for a proxy whose locality is known,
//
//   - distribute: the localities named by the first rule whose from
//     matches the proxy get its weights (split among the localities a
//     wildcard matches, by their endpoint weights); other localities get
//     no traffic; the cluster balances by locality weight;
//   - otherwise, with outlier detection (failover needs it to ever fail
//     over): priorities by closeness, 0 for the proxy's subzone, 1 its
//     zone, 2 its region, 3 other regions (4 for regions a failover rule
//     from the proxy's region does not name), made consecutive.

// localityLB returns the setting that applies, nil when none does.
func localityLB(pol policy) *networking.LocalityLoadBalancerSetting {
	s := pol.lb.GetLocalityLbSetting()
	if s != nil && s.GetEnabled() != nil && !s.GetEnabled().GetValue() {
		return nil
	}
	return s
}

// applyLocalityWeighted makes the cluster balance by locality weight when
// the DestinationRule distributes traffic between localities.
func applyLocalityWeighted(c *clusterv3.Cluster, pol policy) {
	if len(localityLB(pol).GetDistribute()) == 0 {
		return
	}
	if c.CommonLbConfig == nil {
		c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{}
	}
	c.CommonLbConfig.LocalityConfigSpecifier = &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{
		LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{}}
}

// localize returns la as this proxy sees it under pol: a copy with
// priorities or weights set, or la itself when nothing applies.
func (g *gen) localize(la *endpointv3.ClusterLoadAssignment, pol policy) *endpointv3.ClusterLoadAssignment {
	loc := g.p.Locality
	if loc == "" || g.grpc || len(la.GetEndpoints()) == 0 {
		return la
	}
	s := localityLB(pol)
	if d := s.GetDistribute(); len(d) > 0 {
		out := proto.Clone(la).(*endpointv3.ClusterLoadAssignment)
		applyDistribute(loc, out, d)
		return out
	}
	if pol.od == nil {
		return la
	}
	out := proto.Clone(la).(*endpointv3.ClusterLoadAssignment)
	applyFailover(loc, out, s.GetFailover())
	return out
}

func localityString(e *endpointv3.LocalityLbEndpoints) string {
	l := e.GetLocality()
	return l.GetRegion() + "/" + l.GetZone() + "/" + l.GetSubZone()
}

// localityMatch reports whether locality "r/z/s" matches pattern "r",
// "r/z", "r/z/s", with "*" for any part (Istio's LocalityMatch).
func localityMatch(locality, pattern string) bool {
	lp := strings.Split(locality, "/")
	for i, p := range strings.Split(pattern, "/") {
		if p == "*" {
			return true
		}
		if i >= len(lp) || lp[i] != p {
			return false
		}
	}
	return true
}

func applyDistribute(loc string, la *endpointv3.ClusterLoadAssignment, rules []*networking.LocalityLoadBalancerSetting_Distribute) {
	for _, r := range rules {
		if !localityMatch(loc, r.GetFrom()) {
			continue
		}
		unmatched := make([]bool, len(la.Endpoints))
		for i := range unmatched {
			unmatched[i] = true
		}
		for _, to := range slices.Sorted(maps.Keys(r.GetTo())) {
			weight := r.GetTo()[to]
			var idx []int
			var total uint64
			for i, e := range la.Endpoints {
				if unmatched[i] && localityMatch(localityString(e), to) {
					unmatched[i] = false
					idx = append(idx, i)
					total += uint64(max(e.GetLoadBalancingWeight().GetValue(), 1))
				}
			}
			for _, i := range idx {
				w := uint64(max(la.Endpoints[i].GetLoadBalancingWeight().GetValue(), 1)) * uint64(weight)
				la.Endpoints[i].LoadBalancingWeight = u32(uint32((w + total - 1) / total))
				if w == 0 {
					la.Endpoints[i].LoadBalancingWeight = nil
				}
			}
		}
		for i, u := range unmatched {
			if u {
				la.Endpoints[i].LbEndpoints = nil
			}
		}
		return
	}
}

func applyFailover(loc string, la *endpointv3.ClusterLoadAssignment, failover []*networking.LocalityLoadBalancerSetting_Failover) {
	p := strings.SplitN(loc, "/", 3)
	for len(p) < 3 {
		p = append(p, "")
	}
	var used []uint32
	for _, e := range la.Endpoints {
		l := e.GetLocality()
		var prio uint32
		switch {
		case l.GetRegion() == p[0] && l.GetZone() == p[1] && l.GetSubZone() == p[2]:
			prio = 0
		case l.GetRegion() == p[0] && l.GetZone() == p[1]:
			prio = 1
		case l.GetRegion() == p[0]:
			prio = 2
		default:
			prio = 3
			for _, f := range failover {
				if f.GetFrom() == p[0] {
					if l.GetRegion() != f.GetTo() {
						prio = 4
					}
					break
				}
			}
		}
		e.Priority = e.GetPriority()*5 + prio
		if !slices.Contains(used, e.Priority) {
			used = append(used, e.Priority)
		}
	}
	slices.Sort(used)
	for _, e := range la.Endpoints {
		e.Priority = uint32(slices.Index(used, e.Priority))
	}
}
