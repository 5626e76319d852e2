package generate

import (
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

func listenerNamed(t *testing.T, pc *model.PushContext, p *model.Proxy, name string) *listenerv3.Listener {
	t.Helper()
	rs, err := Generate(pc, p, ListenerType, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Name == name {
			return r.Resource.(*listenerv3.Listener)
		}
	}
	t.Fatalf("no listener %s", name)
	return nil
}

// subnetChains is "dst-prefixes|src-prefixes->cluster" per chain.
func subnetChains(t *testing.T, fcs []*listenerv3.FilterChain) []string {
	var out []string
	for _, fc := range fcs {
		s := ""
		for _, r := range fc.GetFilterChainMatch().GetPrefixRanges() {
			s += r.GetAddressPrefix() + "/" + itoa(r.GetPrefixLen().GetValue()) + " "
		}
		s += "|"
		for _, r := range fc.GetFilterChainMatch().GetSourcePrefixRanges() {
			s += r.GetAddressPrefix() + "/" + itoa(r.GetPrefixLen().GetValue()) + " "
		}
		var tp tcpproxyv3.TcpProxy
		if err := fc.GetFilters()[0].GetTypedConfig().UnmarshalTo(&tp); err != nil {
			t.Fatal(err)
		}
		out = append(out, s+"->"+tp.GetCluster())
	}
	return out
}

// TCP routes with destinationSubnets or sourceSubnet become filter chains
// matching those addresses; they no longer capture all of the host's traffic.
func TestTCPRouteSubnetsBecomeChainMatches(t *testing.T) {
	const host = "mongodb.default.svc.cluster.local"
	vs := res(config.VirtualService, "default", "mongo", &networking.VirtualService{
		Hosts: []string{host},
		Tcp: []*networking.TCPRoute{
			{Match: []*networking.L4MatchAttributes{{SourceSubnet: "10.9.0.0/16"}},
				Route: []*networking.RouteDestination{{Destination: &networking.Destination{Host: "reviews.default.svc.cluster.local", Port: &networking.PortSelector{Number: 9080}}}}},
			{Match: []*networking.L4MatchAttributes{{DestinationSubnets: []string{"10.0.0.6/32"}, SourceSubnet: "10.8.0.0/16"}},
				Route: []*networking.RouteDestination{{Destination: &networking.Destination{Host: "ratings.default.svc.cluster.local", Port: &networking.PortSelector{Number: 9080}}}}},
		},
	})
	l := listenerNamed(t, pushOnly(vs), productpageProxy(), "10.0.0.6_27017")
	got := subnetChains(t, l.GetFilterChains())
	want := []string{
		"|10.9.0.0/16 ->outbound|9080||reviews.default.svc.cluster.local",
		"10.0.0.6/32 |10.8.0.0/16 ->outbound|9080||ratings.default.svc.cluster.local",
		"10.0.0.6/32 |->outbound|27017||mongodb.default.svc.cluster.local",
		"|->outbound|27017||mongodb.default.svc.cluster.local",
	}
	if len(got) != len(want) {
		t.Fatalf("chains %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("chain %d: %q, want %q", i, got[i], want[i])
		}
	}
}

// A ServiceEntry whose addresses are CIDRs matches those prefixes on the
// port's wildcard listener instead of taking all of the port's traffic.
func TestServiceEntryCIDRAddressesMatchByPrefix(t *testing.T) {
	reg := bookinfoRegistry()
	db := svc("db.example.com", "default", "", registry.ResolutionNone, tcpMongo)
	db.Addresses = []string{"192.168.0.0/16", "172.16.1.1"}
	other := svc("cache.example.com", "default", "", registry.ResolutionNone, tcpMongo)
	other.Addresses = []string{"10.20.0.0/16"}
	reg.Services = append(reg.Services, db, other)
	pc := model.NewPushContext("v1", model.DefaultMeshConfig(), config.NewSnapshot(bookinfoConfig()), reg)
	l := listenerNamed(t, pc, productpageProxy(), "0.0.0.0_27017")
	got := subnetChains(t, l.GetFilterChains())
	if len(got) != 2 || got[0] != "192.168.0.0/16 172.16.1.1/32 |->outbound|27017||db.example.com" || got[1] != "10.20.0.0/16 |->outbound|27017||cache.example.com" {
		t.Errorf("chains %q", got)
	}
	var tp tcpproxyv3.TcpProxy
	if l.GetDefaultFilterChain() == nil || l.GetDefaultFilterChain().GetFilters()[0].GetTypedConfig().UnmarshalTo(&tp) != nil || tp.GetCluster() != PassthroughCluster {
		t.Errorf("other destinations on the port: default chain %v, want %s", l.GetDefaultFilterChain(), PassthroughCluster)
	}
}
