package generate

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/registry"
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
//     from the proxy's region does not name), made consecutive;
//   - failoverPriority (also with outlier detection): each locality's
//     endpoints split by how many of the listed labels, in order, match the
//     proxy's ("label=value" compares with value instead), before the
//     failover priorities when failover is given too.

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
// svc and port are the assignment's service port (its endpoints' labels
// decide failoverPriority).
func (g *gen) localize(la *endpointv3.ClusterLoadAssignment, pol policy, svc *registry.Service, port registry.Port) *endpointv3.ClusterLoadAssignment {
	loc := g.p.Locality
	if g.grpc || len(la.GetEndpoints()) == 0 {
		return la
	}
	s := localityLB(pol)
	if d := s.GetDistribute(); len(d) > 0 {
		if loc == "" {
			return la
		}
		out := proto.Clone(la).(*endpointv3.ClusterLoadAssignment)
		applyDistribute(loc, out, d)
		return out
	}
	if pol.od == nil {
		return la
	}
	if fp := s.GetFailoverPriority(); len(fp) > 0 {
		proxy := augmentLabels(g.p.Labels, loc, g.p.Network())
		if len(proxy) == 0 {
			return la // as istiod: no labels, nothing to compare
		}
		out := proto.Clone(la).(*endpointv3.ClusterLoadAssignment)
		applyFailoverPriority(out, proxy, fp, g.endpointLabels(svc, port))
		if len(s.GetFailover()) > 0 && loc != "" {
			applyFailover(loc, out, s.GetFailover())
		}
		return out
	}
	if loc == "" {
		return la
	}
	out := proto.Clone(la).(*endpointv3.ClusterLoadAssignment)
	applyFailover(loc, out, s.GetFailover())
	return out
}

// Istio's topology labels, which every endpoint and proxy carries.
const (
	labelRegion  = "topology.kubernetes.io/region"
	labelZone    = "topology.kubernetes.io/zone"
	labelSubzone = "topology.istio.io/subzone"
	labelNetwork = "topology.istio.io/network"
)

// augmentLabels is labels plus the topology labels of locality
// "region/zone/subzone" and network, as istiod adds them to endpoints and
// proxies (labels itself when there is nothing to add).
func augmentLabels(labels map[string]string, locality, network string) map[string]string {
	if locality == "" && network == "" {
		return labels
	}
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	parts := strings.SplitN(locality, "/", 3)
	for i, k := range []string{labelRegion, labelZone, labelSubzone} {
		if i < len(parts) && parts[i] != "" {
			out[k] = parts[i]
		}
	}
	if network != "" {
		out[labelNetwork] = network
	}
	return out
}

// endpointLabels returns the labels (topology labels added) of the
// service port's endpoint at an LbEndpoint's address.
func (g *gen) endpointLabels(svc *registry.Service, port registry.Port) func(*endpointv3.LbEndpoint) map[string]string {
	byAddr := map[string]map[string]string{}
	for _, ep := range g.pc.Endpoints(svc.Hostname, port.Number) {
		p := cmp.Or(ep.Port, port.TargetPort, port.Number)
		k := ep.Address + ":" + strconv.FormatUint(uint64(p), 10)
		if _, ok := byAddr[k]; !ok {
			byAddr[k] = augmentLabels(ep.Labels, ep.Locality, g.pc.EndpointNetwork(ep))
		}
	}
	if g.pc.MultiNetwork() {
		// split-horizon's gateway endpoints carry their network, as istiod's
		for _, ep := range g.pc.Endpoints(svc.Hostname, port.Number) {
			nw := g.pc.EndpointNetwork(ep)
			for _, gw := range g.pc.NetworkGateways(nw) {
				k := gw.Address + ":" + strconv.FormatUint(uint64(gw.Port), 10)
				if _, ok := byAddr[k]; !ok {
					byAddr[k] = augmentLabels(nil, "", gw.Network)
				}
			}
		}
	}
	return func(e *endpointv3.LbEndpoint) map[string]string {
		a := e.GetEndpoint().GetAddress().GetSocketAddress()
		return byAddr[a.GetAddress()+":"+strconv.FormatUint(uint64(a.GetPortValue()), 10)]
	}
}

// applyFailoverPriority splits each locality's endpoints into priorities
// by failoverPriority, as istiod: an endpoint's priority is 0 when every
// listed label matches the proxy's, else n-j for the first label j that
// does not (n labels); a first label topology.istio.io/network that does
// not match moves the endpoint below all others instead. Priorities are
// then made consecutive; each split locality's weight is its endpoints'.
func applyFailoverPriority(la *endpointv3.ClusterLoadAssignment, proxy map[string]string, prios []string, labelsOf func(*endpointv3.LbEndpoint) map[string]string) {
	n := len(prios)
	includesNetwork := prios[0] == labelNetwork
	names := make([]string, n)
	overrides := map[string]string{}
	for i, lv := range prios {
		k, v, ok := strings.Cut(lv, "=")
		names[i] = k
		if ok {
			overrides[k] = v
		}
	}
	var out []*endpointv3.LocalityLbEndpoints
	for _, lle := range la.Endpoints {
		byPrio := map[int][]*endpointv3.LbEndpoint{}
		for _, e := range lle.LbEndpoints {
			labels := labelsOf(e)
			prio, adjust := 0, 0
			for j, k := range names {
				want, ok := overrides[k]
				if !ok {
					want = proxy[k]
				}
				if want != labels[k] {
					if j == 0 && includesNetwork {
						adjust = n
						continue
					}
					prio = n - j
					break
				}
			}
			byPrio[prio+adjust] = append(byPrio[prio+adjust], e)
		}
		for _, prio := range slices.Sorted(maps.Keys(byPrio)) {
			part := &endpointv3.LocalityLbEndpoints{Locality: lle.Locality, Priority: uint32(prio), LbEndpoints: byPrio[prio]}
			var w uint32
			for _, e := range byPrio[prio] {
				w += e.GetLoadBalancingWeight().GetValue()
			}
			part.LoadBalancingWeight = u32(w)
			out = append(out, part)
		}
	}
	var used []uint32
	for _, e := range out {
		if !slices.Contains(used, e.Priority) {
			used = append(used, e.Priority)
		}
	}
	slices.Sort(used)
	for _, e := range out {
		e.Priority = uint32(slices.Index(used, e.Priority))
	}
	la.Endpoints = out
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
