package generate

import (
	"maps"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// TestLocalityFailoverPriorities: reviews has outlier detection, so a
// proxy in us-east/a gets its own zone at priority 0 and the region's other
// zone at priority 1; a proxy of unknown locality gets one priority.
func TestLocalityFailoverPriorities(t *testing.T) {
	pc := bookinfoPush()
	const name = "outbound|9080||reviews.default.svc.cluster.local"
	p := productpageProxy()
	p.Locality = "us-east/a/"
	la := gen1(t, pc, p, EndpointType, name)[name].(*endpointv3.ClusterLoadAssignment)
	for _, e := range la.GetEndpoints() {
		want := map[string]uint32{"a": 0, "b": 1}[e.GetLocality().GetZone()]
		if e.GetPriority() != want {
			t.Errorf("zone %s: priority %d, want %d", e.GetLocality().GetZone(), e.GetPriority(), want)
		}
	}
	la = gen1(t, pc, productpageProxy(), EndpointType, name)[name].(*endpointv3.ClusterLoadAssignment)
	for _, e := range la.GetEndpoints() {
		if e.GetPriority() != 0 {
			t.Errorf("no proxy locality: zone %s at priority %d", e.GetLocality().GetZone(), e.GetPriority())
		}
	}
}

func assignment(localities ...string) *endpointv3.ClusterLoadAssignment {
	la := &endpointv3.ClusterLoadAssignment{ClusterName: "c"}
	for _, l := range localities {
		e := &endpointv3.LocalityLbEndpoints{Locality: parseLocality(l), LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint("10.0.0.1", 80, 1)}}
		la.Endpoints = append(la.Endpoints, e)
	}
	return la
}

// TestLocalityFailoverRules: Istio's priorities (subzone, zone, region,
// the failover region, other regions), made consecutive.
func TestLocalityFailoverRules(t *testing.T) {
	la := assignment("us-east/a/1", "us-east/a/2", "us-east/b/1", "eu-west/a/1", "ap-south/a/1")
	applyFailover("us-east/a/1", la, []*networking.LocalityLoadBalancerSetting_Failover{{From: "us-east", To: "eu-west"}})
	want := []uint32{0, 1, 2, 3, 4}
	for i, e := range la.GetEndpoints() {
		if e.GetPriority() != want[i] {
			t.Errorf("%s: priority %d, want %d", localityString(e), e.GetPriority(), want[i])
		}
	}
	la = assignment("us-east/b/1", "eu-west/a/1", "ap-south/a/1")
	applyFailover("us-east/a/1", la, nil)
	want = []uint32{0, 1, 1}
	for i, e := range la.GetEndpoints() {
		if e.GetPriority() != want[i] {
			t.Errorf("no failover rule, %s: priority %d, want %d", localityString(e), e.GetPriority(), want[i])
		}
	}
}

// TestLocalityDistribute: the first matching rule's weights, split among
// the localities a wildcard matches; localities it does not name get no
// endpoints.
func TestLocalityDistribute(t *testing.T) {
	la := assignment("us-east/a/1", "us-east/b/1", "us-east/b/2", "eu-west/a/1")
	applyDistribute("us-east/a/1", la, []*networking.LocalityLoadBalancerSetting_Distribute{
		{From: "eu-west/*", To: map[string]uint32{"eu-west/*": 100}},
		{From: "us-east/a/*", To: map[string]uint32{"us-east/a/*": 80, "us-east/b/*": 20}},
	})
	want := []uint32{80, 10, 10}
	for i, w := range want {
		if got := la.GetEndpoints()[i].GetLoadBalancingWeight().GetValue(); got != w {
			t.Errorf("%s: weight %d, want %d", localityString(la.GetEndpoints()[i]), got, w)
		}
	}
	if n := len(la.GetEndpoints()[3].GetLbEndpoints()); n != 0 {
		t.Errorf("eu-west kept %d endpoints, want none", n)
	}
	if !localityMatch("us-east/a/1", "us-east") || localityMatch("us-east/a/1", "us-east/b") || !localityMatch("us-east/a/1", "*") {
		t.Error("localityMatch")
	}
}

// TestLocalityFailoverPriorityLabels: istiod's failoverPriority — each
// locality's endpoints split by the first listed label that differs from
// the proxy's (all match: 0; label j differs: n-j), "label=value" compared
// with value, a differing first network label below everything, the
// priorities made consecutive and each part weighted by its endpoints.
func TestLocalityFailoverPriorityLabels(t *testing.T) {
	la := &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{
		{Locality: parseLocality("r1/z1"), LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint("10.0.0.1", 80, 1), lbEndpoint("10.0.0.2", 80, 2)}},
		{Locality: parseLocality("r2/z1"), LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint("10.0.0.3", 80, 1), lbEndpoint("10.0.0.4", 80, 5)}},
	}}
	labels := map[string]map[string]string{
		"10.0.0.1": augmentLabels(map[string]string{"tier": "silver"}, "r1/z1", ""),
		"10.0.0.2": augmentLabels(map[string]string{"tier": "gold"}, "r1/z1", ""),
		"10.0.0.3": augmentLabels(map[string]string{"tier": "gold"}, "r2/z1", ""),
		"10.0.0.4": augmentLabels(map[string]string{"tier": "bronze"}, "r2/z1", ""),
	}
	of := func(e *endpointv3.LbEndpoint) map[string]string {
		return labels[e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()]
	}
	proxy := augmentLabels(map[string]string{"tier": "gold"}, "r1/z2", "")
	got := func(la *endpointv3.ClusterLoadAssignment) map[string]uint32 {
		out := map[string]uint32{}
		for _, e := range la.Endpoints {
			for _, lbe := range e.LbEndpoints {
				out[lbe.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()] = e.GetPriority()
			}
		}
		return out
	}
	// tier, then region: .2 (gold, r1) 0; .3 (gold, r2) 1; .1 and .4 2.
	a := proto.Clone(la).(*endpointv3.ClusterLoadAssignment)
	applyFailoverPriority(a, proxy, []string{"tier", labelRegion}, of)
	want := map[string]uint32{"10.0.0.2": 0, "10.0.0.3": 1, "10.0.0.1": 2, "10.0.0.4": 2}
	if g := got(a); !maps.Equal(g, want) {
		t.Errorf("priorities %v, want %v", g, want)
	}
	if len(a.Endpoints) != 4 || a.Endpoints[0].GetLoadBalancingWeight().GetValue() != 2 || a.Endpoints[3].GetLoadBalancingWeight().GetValue() != 5 {
		t.Errorf("split localities %v", a.Endpoints)
	}
	// An override: region r2 first, whatever the proxy's region.
	a = proto.Clone(la).(*endpointv3.ClusterLoadAssignment)
	applyFailoverPriority(a, proxy, []string{labelRegion + "=r2"}, of)
	want = map[string]uint32{"10.0.0.3": 0, "10.0.0.4": 0, "10.0.0.1": 1, "10.0.0.2": 1}
	if g := got(a); !maps.Equal(g, want) {
		t.Errorf("override: priorities %v, want %v", g, want)
	}
}
