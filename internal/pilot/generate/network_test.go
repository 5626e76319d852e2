package generate

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

// multiNetworkPush: service "app" with endpoints on network-1 (two, one of
// them marked only by fromCidr), on network-2 (weights 1 and 3, one more
// without mTLS), on network-3 (no gateway) and on no network; network-2 has
// two gateways (one from meshNetworks, one a labelled service), network-1 one.
func multiNetworkPush(t *testing.T) *model.PushContext {
	t.Helper()
	const host = "app.default.svc.cluster.local"
	mesh := model.DefaultMeshConfig()
	mesh.MeshNetworks = &meshconfig.MeshNetworks{Networks: map[string]*meshconfig.Network{
		"network-1": {
			Endpoints: []*meshconfig.Network_NetworkEndpoints{{Ne: &meshconfig.Network_NetworkEndpoints_FromCidr{FromCidr: "10.1.0.0/16"}}},
			Gateways:  []*meshconfig.Network_IstioNetworkGateway{{Gw: &meshconfig.Network_IstioNetworkGateway_Address{Address: "192.0.2.1"}, Port: 15443}},
		},
		"network-2": {Gateways: []*meshconfig.Network_IstioNetworkGateway{{Gw: &meshconfig.Network_IstioNetworkGateway_Address{Address: "192.0.2.2"}, Port: 15443}}},
	}}
	e := func(addr, network string, weight uint32, labels map[string]string) *registry.Endpoint {
		if labels == nil {
			labels = map[string]string{"app": "app"}
		}
		return &registry.Endpoint{Hostname: host, ServicePort: 8080, Address: addr, Port: 8080, Network: network, Weight: weight,
			Labels: labels, ServiceAccount: "spiffe://cluster.local/ns/default/sa/app"}
	}
	gwSvc := svc("eastwest.istio-system.svc.cluster.local", "istio-system", "192.0.2.3", registry.ResolutionStatic, registry.Port{Name: "tls", Number: 15443, Protocol: registry.TLS})
	gwSvc.Labels = map[string]string{model.LabelNetwork: "network-2", model.LabelGatewayPort: "16443"}
	reg := &registry.Snapshot{
		Services: []*registry.Service{
			svc(host, "default", "10.0.0.1", registry.ResolutionStatic, registry.Port{Name: "http", Number: 8080, Protocol: registry.HTTP}),
			gwSvc,
		},
		Endpoints: map[string][]*registry.Endpoint{host: {
			e("10.1.0.1", "network-1", 0, nil),
			e("10.1.0.2", "", 0, nil), // network-1 by fromCidr
			e("10.2.0.1", "network-2", 1, nil),
			e("10.2.0.2", "network-2", 3, nil),
			e("10.2.0.3", "network-2", 0, map[string]string{"app": "app", model.TLSModeLabel: "disabled"}),
			e("10.3.0.1", "network-3", 0, nil),
			e("10.9.0.1", "", 0, nil),
		}},
	}
	gw := &networking.Gateway{Selector: map[string]string{"istio": "eastwestgateway"}, Servers: []*networking.Server{{
		Port:  &networking.Port{Number: 15443, Name: "tls", Protocol: "TLS"},
		Hosts: []string{"*.local"},
		Tls:   &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_AUTO_PASSTHROUGH},
	}}}
	return model.NewPushContext("v", mesh, config.NewSnapshot([]config.Resource{res(config.Gateway, "istio-system", "eastwest", gw)}), reg)
}

func networkProxy(network string) *model.Proxy {
	p := productpageProxy()
	p.ServiceAccount = "spiffe://cluster.local/ns/default/sa/productpage"
	p.Metadata = map[string]string{"NETWORK": network}
	return p
}

// lbSummary lists an assignment's endpoints as ADDR:PORT/WEIGHT, sorted.
func lbSummary(la *endpointv3.ClusterLoadAssignment) []string {
	var out []string
	for _, lle := range la.GetEndpoints() {
		for _, e := range lle.GetLbEndpoints() {
			a := e.GetEndpoint().GetAddress().GetSocketAddress()
			s := fmt.Sprintf("%s:%d/%d", a.GetAddress(), a.GetPortValue(), e.GetLoadBalancingWeight().GetValue())
			if endpointTakesMTLS(e) {
				s += "+mtls"
			}
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

func TestSplitHorizonEDS(t *testing.T) {
	pc := multiNetworkPush(t)
	if got := pc.GatewayWeightScale(); got != 2 {
		t.Fatalf("scale = %d, want 2 (lcm of 1 and 2 gateways)", got)
	}
	const cluster = "outbound|8080||app.default.svc.cluster.local"
	for _, tc := range []struct {
		network string
		want    []string
	}{
		// own network direct (also by fromCidr and no network), network-2
		// through its two gateways with (1+3)*2/2 each, the non-mTLS one
		// dropped, network-3 (no gateway) direct
		{"network-1", []string{"10.1.0.1:8080/2+mtls", "10.1.0.2:8080/2+mtls", "10.3.0.1:8080/2+mtls", "10.9.0.1:8080/2+mtls", "192.0.2.2:15443/4+mtls", "192.0.2.3:16443/4+mtls"}},
		// network-1's endpoints through its gateway: (1+1)*2
		{"network-2", []string{"10.2.0.1:8080/2+mtls", "10.2.0.2:8080/6+mtls", "10.2.0.3:8080/2", "10.3.0.1:8080/2+mtls", "10.9.0.1:8080/2+mtls", "192.0.2.1:15443/4+mtls"}},
	} {
		la := gen1(t, pc, networkProxy(tc.network), EndpointType, cluster)[cluster].(*endpointv3.ClusterLoadAssignment)
		if got := lbSummary(la); !slices.Equal(got, tc.want) {
			t.Errorf("%s sees %v\nwant %v", tc.network, got, tc.want)
		}
		var sum uint32
		for _, lle := range la.Endpoints {
			sum += lle.GetLoadBalancingWeight().GetValue()
		}
		if sum == 0 {
			t.Errorf("%s: locality weights not set", tc.network)
		}
	}
	// A proxy without a network sees every endpoint directly, as istiod.
	la := gen1(t, pc, networkProxy(""), EndpointType, cluster)[cluster].(*endpointv3.ClusterLoadAssignment)
	if got := lbSummary(la); len(got) != 7 || strings.Contains(strings.Join(got, " "), "192.0.2.") {
		t.Errorf("no network: %v", got)
	}
	// With the cache the same.
	c := NewCache(CacheConfig{})
	for range 2 {
		rs, err := c.Generate(pc, networkProxy("network-1"), EndpointType, []string{cluster})
		if err != nil || len(rs) != 1 {
			t.Fatal(rs, err)
		}
		if got := lbSummary(rs[0].Resource.(*endpointv3.ClusterLoadAssignment)); !slices.Contains(got, "192.0.2.2:15443/4+mtls") || rs[0].Encoded != nil {
			t.Errorf("cached: %v (encoded shared: %v)", got, rs[0].Encoded != nil)
		}
	}
}

func TestSingleNetworkUnchanged(t *testing.T) {
	pc := multiNetworkPush(t)
	mesh := pc.Mesh
	mesh.MeshNetworks = nil
	reg := *pc.Registry
	reg.Services = reg.Services[:1]
	pc = model.NewPushContext("v", mesh, pc.Config, &reg)
	const cluster = "outbound|8080||app.default.svc.cluster.local"
	la := gen1(t, pc, networkProxy("network-1"), EndpointType, cluster)[cluster].(*endpointv3.ClusterLoadAssignment)
	if got := lbSummary(la); len(got) != 7 || strings.Contains(strings.Join(got, " "), "192.0.2.") {
		t.Errorf("single network: %v", got)
	}
}

// The network gateway: AUTO_PASSTHROUGH routes each SNI to an SNI-DNAT
// cluster without TLS origination whose endpoints are those taking mTLS.
func TestAutoPassthroughSNIDNAT(t *testing.T) {
	pc := multiNetworkPush(t)
	p := gatewayProxy()
	p.Labels = map[string]string{"istio": "eastwestgateway"}
	p.Metadata = map[string]string{"NETWORK": "network-2"}
	const name = "outbound_.8080_._.app.default.svc.cluster.local"
	cs := gen1(t, pc, p, ClusterType)
	c, ok := cs[name].(*clusterv3.Cluster)
	if !ok {
		t.Fatalf("no SNI-DNAT cluster %s in %v", name, keys(cs))
	}
	if c.GetTransportSocket() != nil || len(c.GetTransportSocketMatches()) > 0 || c.GetEdsClusterConfig().GetServiceName() != name {
		t.Errorf("SNI-DNAT cluster: %v", c)
	}
	if byName := gen1(t, pc, p, ClusterType, name); byName[name] == nil {
		t.Errorf("cluster %s not generated by name", name)
	}
	var chain *listenerv3.FilterChain
	for _, l := range gen1(t, pc, p, ListenerType) {
		for _, fc := range l.(*listenerv3.Listener).GetFilterChains() {
			if slices.Contains(fc.GetFilterChainMatch().GetServerNames(), name) {
				chain = fc
			}
		}
	}
	if chain == nil {
		t.Fatal("no filter chain for the SNI")
	}
	tp := &tcpproxyv3.TcpProxy{}
	if err := chain.GetFilters()[0].GetTypedConfig().UnmarshalTo(tp); err != nil || tp.GetCluster() != name {
		t.Errorf("chain routes to %q (%v), want %s", tp.GetCluster(), err, name)
	}
	for _, names := range [][]string{{name}, nil} {
		eds := gen1(t, pc, p, EndpointType, names...)
		la, ok := eds[name].(*endpointv3.ClusterLoadAssignment)
		if !ok {
			t.Fatalf("no assignment %s in %v", name, keys(eds))
		}
		// the gateway (network-2) sees its own endpoints; not 10.2.0.3 (no mTLS)
		got := lbSummary(la)
		if !slices.Contains(got, "10.2.0.1:8080/2+mtls") || slices.Contains(got, "10.2.0.3:8080/2") || slices.ContainsFunc(got, func(s string) bool { return !strings.HasSuffix(s, "+mtls") }) {
			t.Errorf("SNI-DNAT endpoints %v", got)
		}
	}
}

func TestParseSNIDNAT(t *testing.T) {
	for _, tc := range []struct {
		in     string
		port   uint32
		subset string
		host   string
		ok     bool
	}{
		{"outbound_.8080_._.a.b.svc.cluster.local", 8080, "", "a.b.svc.cluster.local", true},
		{"outbound_.80_.v1_.a", 80, "v1", "a", true},
		{"outbound_.0_._.a", 0, "", "", false},
		{"outbound_.x_._.a", 0, "", "", false},
		{"outbound|80||a", 0, "", "", false},
		{"outbound_.80_._.", 0, "", "", false},
	} {
		port, subset, host, ok := parseSNIDNAT(tc.in)
		if port != tc.port || subset != tc.subset || host != tc.host || ok != tc.ok {
			t.Errorf("%q: %d %q %q %v", tc.in, port, subset, host, ok)
		}
		if ok && sniDNATName(port, subset, host) != tc.in {
			t.Errorf("%q does not round-trip", tc.in)
		}
	}
}
