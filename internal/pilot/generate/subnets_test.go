package generate

import (
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
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

// matchSummary renders a listener's chains as "dst|src|sni->cluster".
func matchSummary(t *testing.T, fcs []*listenerv3.FilterChain) []string {
	t.Helper()
	cidrs := func(rs []*corev3.CidrRange) string {
		var s []string
		for _, r := range rs {
			s = append(s, r.GetAddressPrefix()+"/"+itoa(r.GetPrefixLen().GetValue()))
		}
		return strings.Join(s, ",")
	}
	var out []string
	for _, fc := range fcs {
		m := fc.GetFilterChainMatch()
		tp := unpackTCP(t, fc.GetFilters()[len(fc.GetFilters())-1])
		dest := tp.GetCluster()
		for _, w := range tp.GetWeightedClusters().GetClusters() {
			dest += w.GetName() + " "
		}
		out = append(out, cidrs(m.GetPrefixRanges())+"|"+cidrs(m.GetSourcePrefixRanges())+"|"+strings.Join(m.GetServerNames(), ",")+"->"+strings.TrimSpace(dest))
	}
	return out
}

func wantChains(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("chains\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	seen := map[string]bool{}
	for _, g := range got {
		k, _, _ := strings.Cut(g, "->")
		if seen[k] {
			t.Errorf("two chains match %s (Envoy refuses the listener)", k)
		}
		seen[k] = true
	}
}

func tcpTo(host string, port uint32) []*networking.RouteDestination {
	return []*networking.RouteDestination{{Destination: &networking.Destination{Host: host, Port: &networking.PortSelector{Number: port}}}}
}

const (
	reviewsHost = "reviews.default.svc.cluster.local"
	ratingsHost = "ratings.default.svc.cluster.local"
	mongoHost   = "mongodb.default.svc.cluster.local"
)

// As istiod's buildSidecarOutboundTCPFilterChainOpts: a route that matches
// every connection ends the walk, so a subnet route after it never takes
// traffic; a subnet route before it does.
func TestTCPRouteAfterCatchAllIsUnreachable(t *testing.T) {
	vs := res(config.VirtualService, "default", "mongo", &networking.VirtualService{
		Hosts: []string{mongoHost},
		Tcp: []*networking.TCPRoute{
			{Match: []*networking.L4MatchAttributes{{DestinationSubnets: []string{"10.0.0.6"}, Port: 27017}}, Route: tcpTo(reviewsHost, 9080)},
			{Match: []*networking.L4MatchAttributes{{Port: 27017}}, Route: tcpTo(ratingsHost, 9080)},
			{Match: []*networking.L4MatchAttributes{{DestinationSubnets: []string{"10.0.0.0/8"}}}, Route: tcpTo(mongoHost, 27017)},
		},
	})
	l := listenerNamed(t, pushOnly(vs), productpageProxy(), "10.0.0.6_27017")
	wantChains(t, matchSummary(t, l.GetFilterChains()), []string{
		"10.0.0.6/32||->outbound|9080||" + reviewsHost,
		"||->outbound|9080||" + ratingsHost,
	})
}

// A subnet match equal to the service's own prefixes replaces its chain
// rather than duplicating it (Envoy refuses two chains with one match).
func TestTCPSubnetRouteOnServicePrefixes(t *testing.T) {
	reg := bookinfoRegistry()
	db := svc("db.example.com", "default", "", registry.ResolutionNone, tcpMongo)
	db.Addresses = []string{"192.168.0.0/16"}
	reg.Services = append(reg.Services, db)
	vs := res(config.VirtualService, "default", "db", &networking.VirtualService{
		Hosts: []string{"db.example.com"},
		Tcp: []*networking.TCPRoute{
			{Match: []*networking.L4MatchAttributes{{DestinationSubnets: []string{"192.168.0.0/16"}}}, Route: tcpTo(reviewsHost, 9080)},
			{Match: []*networking.L4MatchAttributes{{SourceSubnet: "10.1.0.0/16"}}, Route: tcpTo(ratingsHost, 9080)},
		},
	})
	pc := model.NewPushContext("v1", model.DefaultMeshConfig(), config.NewSnapshot([]config.Resource{vs}), reg)
	l := listenerNamed(t, pc, productpageProxy(), "0.0.0.0_27017")
	wantChains(t, matchSummary(t, l.GetFilterChains()), []string{
		"192.168.0.0/16||->outbound|9080||" + reviewsHost,
	})
	// A source-only match keeps to the service's prefixes; it is
	// unreachable behind a route taking those prefixes from any source.
	vs.Spec.(*networking.VirtualService).Tcp = vs.Spec.(*networking.VirtualService).Tcp[1:]
	pc = model.NewPushContext("v1", model.DefaultMeshConfig(), config.NewSnapshot([]config.Resource{vs}), reg)
	l = listenerNamed(t, pc, productpageProxy(), "0.0.0.0_27017")
	wantChains(t, matchSummary(t, l.GetFilterChains()), []string{
		"192.168.0.0/16|10.1.0.0/16|->outbound|9080||" + ratingsHost,
		"192.168.0.0/16||->outbound|27017||db.example.com",
	})
}

// A Gateway's TCP server: destinationSubnets and sourceSubnet become chain
// matches (istiod drops them and lets the first such route take the whole
// port); the first route without them takes the rest.
func TestGatewayTCPRouteSubnets(t *testing.T) {
	gw := res(config.Gateway, "istio-system", "tcp-gw", &networking.Gateway{
		Selector: map[string]string{"istio": "ingressgateway"},
		Servers: []*networking.Server{
			{Port: &networking.Port{Number: 31400, Name: "tcp", Protocol: "TCP"}, Hosts: []string{"*"}},
			{Port: &networking.Port{Number: 31443, Name: "tls", Protocol: "TLS"}, Hosts: []string{"db.example.com"},
				Tls: &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_SIMPLE, ServerCertificate: "/c.pem", PrivateKey: "/k.pem"}},
		},
	})
	vs := res(config.VirtualService, "istio-system", "tcp", &networking.VirtualService{
		Hosts:    []string{"db.example.com"},
		Gateways: []string{"tcp-gw"},
		Tcp: []*networking.TCPRoute{
			{Match: []*networking.L4MatchAttributes{{DestinationSubnets: []string{"10.1.0.100/32", "10.2.0.0/16"}}}, Route: tcpTo(reviewsHost, 9080)},
			{Match: []*networking.L4MatchAttributes{{SourceSubnet: "10.9.0.0/16"}, {DestinationSubnets: []string{"10.3.0.0/16"}, SourceSubnet: "10.8.0.1"}}, Route: tcpTo(ratingsHost, 9080)},
			{Match: []*networking.L4MatchAttributes{{Gateways: []string{"other"}}}, Route: tcpTo(ratingsHost, 9080)},
			{Route: tcpTo(mongoHost, 27017)},
		},
	})
	pc := pushOnly(gw, vs)
	l := listenerNamed(t, pc, gatewayProxy(), "0.0.0.0_31400")
	wantChains(t, matchSummary(t, l.GetFilterChains()), []string{
		"10.1.0.100/32,10.2.0.0/16||->outbound|9080||" + reviewsHost,
		"|10.9.0.0/16|->outbound|9080||" + ratingsHost,
		"10.3.0.0/16|10.8.0.1/32|->outbound|9080||" + ratingsHost,
		"10.3.0.0/16||->outbound|27017||" + mongoHost,
		"||->outbound|27017||" + mongoHost,
	})
	l = listenerNamed(t, pc, gatewayProxy(), "0.0.0.0_31443")
	got := matchSummary(t, l.GetFilterChains())
	wantChains(t, got, []string{
		"10.1.0.100/32,10.2.0.0/16||db.example.com->outbound|9080||" + reviewsHost,
		"|10.9.0.0/16|db.example.com->outbound|9080||" + ratingsHost,
		"10.3.0.0/16|10.8.0.1/32|db.example.com->outbound|9080||" + ratingsHost,
		"10.3.0.0/16||db.example.com->outbound|27017||" + mongoHost,
		"||db.example.com->outbound|27017||" + mongoHost,
	})
	for _, fc := range l.GetFilterChains() {
		if fc.GetTransportSocket() == nil {
			t.Errorf("chain %v of a terminating TLS server has no TLS context", fc.GetFilterChainMatch())
		}
	}

	// Only subnet routes: connections elsewhere find no chain.
	vs.Spec.(*networking.VirtualService).Tcp = vs.Spec.(*networking.VirtualService).Tcp[:2]
	l = listenerNamed(t, pushOnly(gw, vs), gatewayProxy(), "0.0.0.0_31400")
	wantChains(t, matchSummary(t, l.GetFilterChains()), []string{
		"10.1.0.100/32,10.2.0.0/16||->outbound|9080||" + reviewsHost,
		"|10.9.0.0/16|->outbound|9080||" + ratingsHost,
		"10.3.0.0/16|10.8.0.1/32|->outbound|9080||" + ratingsHost,
	})
}

// TLS routes with destinationSubnets: SNI chains restricted to those
// addresses, on a gateway's PASSTHROUGH server and a sidecar's TLS port; one
// SNI may route differently per subnet.
func TestTLSRouteDestinationSubnets(t *testing.T) {
	tlsRoutes := []*networking.TLSRoute{
		{Match: []*networking.TLSMatchAttributes{{SniHosts: []string{"api.example.com"}, DestinationSubnets: []string{"10.2.0.0/16", "10.1.0.100"}}}, Route: tcpTo(reviewsHost, 9080)},
		{Match: []*networking.TLSMatchAttributes{{SniHosts: []string{"api.example.com", "v2.api.example.com"}}}, Route: tcpTo(ratingsHost, 9080)},
		// the same SNI and subnets again: unreachable, left out
		{Match: []*networking.TLSMatchAttributes{{SniHosts: []string{"api.example.com"}, DestinationSubnets: []string{"10.1.0.100/32", "10.2.0.0/16"}}}, Route: tcpTo(mongoHost, 27017)},
	}
	gw := res(config.Gateway, "istio-system", "pt", &networking.Gateway{
		Selector: map[string]string{"istio": "ingressgateway"},
		Servers: []*networking.Server{{Port: &networking.Port{Number: 8443, Name: "tls", Protocol: "TLS"}, Hosts: []string{"*.example.com", "api.example.com"},
			Tls: &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_PASSTHROUGH}}},
	})
	vs := res(config.VirtualService, "istio-system", "api", &networking.VirtualService{
		Hosts: []string{"api.example.com", "v2.api.example.com"}, Gateways: []string{"pt", "mesh"}, Tls: tlsRoutes,
	})
	l := listenerNamed(t, pushOnly(gw, vs), gatewayProxy(), "0.0.0.0_8443")
	wantChains(t, matchSummary(t, l.GetFilterChains()), []string{
		"10.2.0.0/16,10.1.0.100/32||api.example.com->outbound|9080||" + reviewsHost,
		"||api.example.com,v2.api.example.com->outbound|9080||" + ratingsHost,
	})

	vs.Namespace = "default"
	l = listenerNamed(t, pushOnly(vs), productpageProxy(), "0.0.0.0_443")
	wantChains(t, matchSummary(t, l.GetFilterChains()), []string{
		"10.2.0.0/16,10.1.0.100/32||api.example.com->outbound|9080||" + reviewsHost,
		"||api.example.com,v2.api.example.com->outbound|9080||" + ratingsHost,
	})
}

// A bound Sidecar egress listener's TCP port honours the service's subnet
// routes against the address the application connected to.
func TestBoundEgressTCPSubnets(t *testing.T) {
	sc := res(config.Sidecar, "default", "egress", &networking.Sidecar{
		WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "egress-client"}},
		Egress: []*networking.IstioEgressListener{
			{Port: &networking.SidecarPort{Number: 27017, Protocol: "TCP", Name: "tcp"}, Bind: "127.0.1.7", Hosts: []string{"*/" + mongoHost}},
			{Hosts: []string{"*/*"}},
		},
	})
	vs := res(config.VirtualService, "default", "mongo", &networking.VirtualService{
		Hosts: []string{mongoHost},
		Tcp: []*networking.TCPRoute{
			{Match: []*networking.L4MatchAttributes{{DestinationSubnets: []string{"127.0.1.7"}, SourceSubnet: "127.0.0.5"}}, Route: tcpTo(reviewsHost, 9080)},
			{Match: []*networking.L4MatchAttributes{{SourceSubnet: "127.0.0.6"}}, Route: tcpTo(ratingsHost, 9080)},
		},
	})
	l := listenerNamed(t, pushOnly(sc, vs), egressNoneProxy(), "127.0.1.7_27017")
	wantChains(t, matchSummary(t, l.GetFilterChains()), []string{
		"127.0.1.7/32|127.0.0.5/32|->outbound|9080||" + reviewsHost,
		"|127.0.0.6/32|->outbound|9080||" + ratingsHost,
		"127.0.1.7/32||->outbound|27017||" + mongoHost,
		"||->outbound|27017||" + mongoHost,
	})
}
