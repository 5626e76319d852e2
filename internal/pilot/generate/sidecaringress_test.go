package generate

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	networking "istio.io/api/networking/v1alpha3"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// ingressPush is the fixture mesh with productpage's Sidecar replaced by sc.
func ingressPush(sc *networking.Sidecar) *model.PushContext {
	sc.WorkloadSelector = &networking.WorkloadSelector{Labels: map[string]string{"app": "productpage"}}
	cfg := append(bookinfoConfig(), res(config.Sidecar, "default", "ingress", sc))
	for i, r := range cfg {
		if r.Kind == config.Sidecar && r.Name == "productpage" {
			cfg = append(cfg[:i], cfg[i+1:]...)
			break
		}
	}
	return model.NewPushContext("v", model.DefaultMeshConfig(), configSnapshot(cfg), bookinfoRegistry())
}

func noneProxy(p *model.Proxy) *model.Proxy { p.Metadata["INTERCEPTION_MODE"] = "NONE"; return p }

func maxRequests(t *testing.T, cs map[string]any, name string) uint32 {
	t.Helper()
	c, ok := cs[name].(*clusterv3.Cluster)
	if !ok {
		t.Fatalf("no cluster %s in %v", name, keys(cs))
	}
	return c.GetCircuitBreakers().GetThresholds()[0].GetMaxRequests().GetValue()
}

func asAny[V any](m map[string]V) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Sidecar ingress listeners as istiod builds them: captureMode NONE (or
// DEFAULT without capture) binds BIND:PORT, IPTABLES stays in
// virtualInbound (absent without capture); tls terminates on the port; the
// ingress connectionPool overrides inboundConnectionPool, which applies to
// every inbound cluster.
func TestSidecarIngressListeners(t *testing.T) {
	sc := &networking.Sidecar{
		Ingress: []*networking.IstioIngressListener{
			{Port: &networking.SidecarPort{Number: 9080, Protocol: "HTTP", Name: "http"}, Bind: "127.0.4.4", CaptureMode: networking.CaptureMode_NONE, DefaultEndpoint: "127.0.0.1:8080"},
			{Port: &networking.SidecarPort{Number: 9443, Protocol: "HTTPS", Name: "https"}, DefaultEndpoint: "127.0.0.1:8443",
				Tls:            &networking.ServerTLSSettings{Mode: networking.ServerTLSSettings_SIMPLE, ServerCertificate: "/c.pem", PrivateKey: "/k.pem"},
				ConnectionPool: &networking.ConnectionPoolSettings{Http: &networking.ConnectionPoolSettings_HTTPSettings{Http2MaxRequests: 7}}},
			{Port: &networking.SidecarPort{Number: 9500, Protocol: "TCP", Name: "tcp"}, CaptureMode: networking.CaptureMode_IPTABLES},
		},
		InboundConnectionPool: &networking.ConnectionPoolSettings{Http: &networking.ConnectionPoolSettings_HTTPSettings{Http2MaxRequests: 5}},
		Egress:                []*networking.IstioEgressListener{{Hosts: []string{"./*"}}},
	}
	pc := ingressPush(sc)

	t.Run("capture", func(t *testing.T) {
		ls := gen1(t, pc, productpageProxy(), ListenerType)
		if _, ok := ls["127.0.4.4_9080"]; !ok {
			t.Fatalf("no bound listener 127.0.4.4_9080: %v", keys(ls))
		}
		vi := ls[virtualInboundName].(*listenerv3.Listener)
		var tlsChain *listenerv3.FilterChain
		for _, fc := range vi.GetFilterChains() {
			switch fc.GetFilterChainMatch().GetDestinationPort().GetValue() {
			case 9080:
				t.Errorf("virtualInbound has a chain for the bound port 9080: %s", fc.GetName())
			case 9443:
				if tlsChain != nil {
					t.Errorf("more than one chain for the TLS port 9443")
				}
				tlsChain = fc
			}
		}
		if tlsChain == nil {
			t.Fatal("virtualInbound has no chain for 9443")
		}
		if tlsChain.GetFilterChainMatch().GetTransportProtocol() != "tls" || tlsChain.GetFilters()[0].GetName() != hcmFilterName {
			t.Errorf("9443 chain: want a tls match and the HTTP connection manager (HTTPS after termination), got %v", tlsChain)
		}
		var ctx tlsv3.DownstreamTlsContext
		if err := tlsChain.GetTransportSocket().GetTypedConfig().UnmarshalTo(&ctx); err != nil {
			t.Fatal(err)
		}
		if got := ctx.GetCommonTlsContext().GetTlsCertificates()[0].GetCertificateChain().GetFilename(); got != "/c.pem" {
			t.Errorf("9443 certificate %q, want /c.pem", got)
		}
		cs := asAny(gen1(t, pc, productpageProxy(), ClusterType))
		if got := maxRequests(t, cs, InboundClusterName(9443)); got != 7 {
			t.Errorf("9443 (own pool): max requests %d, want 7", got)
		}
		for _, port := range []uint32{9080, 9500} {
			if got := maxRequests(t, cs, InboundClusterName(port)); got != 5 {
				t.Errorf("%d (inboundConnectionPool): max requests %d, want 5", port, got)
			}
		}
	})

	t.Run("no capture", func(t *testing.T) {
		ls := gen1(t, pc, noneProxy(productpageProxy()), ListenerType)
		for _, n := range []string{"127.0.4.4_9080", "10.1.0.1_9443"} {
			if _, ok := ls[n]; !ok {
				t.Errorf("missing listener %s in %v", n, keys(ls))
			}
		}
		for _, n := range []string{"10.1.0.1_9080", "10.1.0.1_9500", virtualInboundName} {
			if _, ok := ls[n]; ok {
				t.Errorf("unexpected listener %s", n)
			}
		}
	})

	t.Run("with mTLS in force, mTLS takes the port", func(t *testing.T) {
		p := productpageProxy()
		p.Metadata[model.MetaWorkloadCert] = "true"
		vi := gen1(t, pc, p, ListenerType)[virtualInboundName].(*listenerv3.Listener)
		for _, fc := range vi.GetFilterChains() {
			if fc.GetFilterChainMatch().GetDestinationPort().GetValue() == 9443 && fc.GetFilterChainMatch().GetTransportProtocol() == "tls" && len(fc.GetFilterChainMatch().GetApplicationProtocols()) == 0 && fc.GetTransportSocket() != nil {
				t.Errorf("PERMISSIVE port 9443 got the user TLS chain")
			}
		}
	})
}

// outboundTrafficPolicy.egressProxy: unknown destinations go to the egress
// proxy's cluster under ALLOW_ANY (TCP catch-alls and the allow_any virtual
// host), and REGISTRY_ONLY still blocks them; the forward-proxy route of a
// proxy without capture follows the Sidecar's policy.
func TestSidecarEgressProxy(t *testing.T) {
	want := "outbound|9080||ratings.default.svc.cluster.local"
	egress := []*networking.IstioEgressListener{{Hosts: []string{"./*"}}}
	allow := ingressPush(&networking.Sidecar{Egress: egress, OutboundTrafficPolicy: &networking.OutboundTrafficPolicy{
		Mode:        networking.OutboundTrafficPolicy_ALLOW_ANY,
		EgressProxy: &networking.Destination{Host: "ratings.default.svc.cluster.local", Port: &networking.PortSelector{Number: 9080}},
	}})
	ls := gen1(t, allow, productpageProxy(), ListenerType)
	vo := ls[virtualOutboundName].(*listenerv3.Listener)
	if got := unpackTCP(t, vo.GetFilterChains()[0].GetFilters()[0]).GetCluster(); got != want {
		t.Errorf("virtualOutbound catch-all to %q, want %q", got, want)
	}
	rs := gen1(t, allow, productpageProxy(), RouteType, "9080")
	if got := vhost(t, rs["9080"].(*routev3.RouteConfiguration), "allow_any").GetRoutes()[0].GetRoute().GetCluster(); got != want {
		t.Errorf("allow_any virtual host to %q, want %q", got, want)
	}
	if _, ok := asAny(gen1(t, allow, productpageProxy(), ClusterType))[want]; !ok {
		t.Errorf("the egress proxy's cluster %s is missing", want)
	}
	rs = gen1(t, allow, noneProxy(productpageProxy()), RouteType, httpProxyRouteName)
	if got := vhost(t, rs[httpProxyRouteName].(*routev3.RouteConfiguration), "allow_any").GetRoutes()[0].GetRoute().GetCluster(); got != want {
		t.Errorf("http_proxy allow_any virtual host to %q, want %q", got, want)
	}

	only := ingressPush(&networking.Sidecar{Egress: egress, OutboundTrafficPolicy: &networking.OutboundTrafficPolicy{Mode: networking.OutboundTrafficPolicy_REGISTRY_ONLY}})
	vo = gen1(t, only, productpageProxy(), ListenerType)[virtualOutboundName].(*listenerv3.Listener)
	if got := unpackTCP(t, vo.GetFilterChains()[0].GetFilters()[0]).GetCluster(); got != BlackHoleCluster {
		t.Errorf("REGISTRY_ONLY catch-all to %q, want %s", got, BlackHoleCluster)
	}
	rs = gen1(t, only, noneProxy(productpageProxy()), RouteType, httpProxyRouteName)
	if vh := vhost(t, rs[httpProxyRouteName].(*routev3.RouteConfiguration), "block_all"); vh.GetRoutes()[0].GetDirectResponse().GetStatus() != 502 {
		t.Errorf("http_proxy block_all: %v", vh)
	}
}

// A DestinationRule's connectionPool (with the port-level settings of the
// service port) applies to the workload's inbound cluster too, as istiod's
// buildInboundCluster does; a rule with a workloadSelector does not (istiod
// honours selectors outbound only), and the Sidecar's pools win.
func TestInboundClusterTakesDestinationRulePool(t *testing.T) {
	const host = "productpage.default.svc.cluster.local"
	pool := func(n int32) *networking.ConnectionPoolSettings {
		return &networking.ConnectionPoolSettings{Http: &networking.ConnectionPoolSettings_HTTPSettings{Http2MaxRequests: n}}
	}
	dr := res(config.DestinationRule, "default", "pp", &networking.DestinationRule{Host: host, TrafficPolicy: &networking.TrafficPolicy{
		ConnectionPool:    pool(11),
		PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{{Port: &networking.PortSelector{Number: 9080}, ConnectionPool: pool(12)}},
	}})
	selected := res(config.DestinationRule, "default", "pp-selected", &networking.DestinationRule{Host: host,
		WorkloadSelector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "productpage"}},
		TrafficPolicy:    &networking.TrafficPolicy{ConnectionPool: pool(99)}})
	cs := asAny(gen1(t, pushOnly(dr, selected), productpageProxy(), ClusterType))
	if got := maxRequests(t, cs, InboundClusterName(9080)); got != 12 {
		t.Errorf("inbound 9080: max requests %d, want 12 (the rule's port-level pool)", got)
	}
	if got := maxRequests(t, cs, ClusterName("outbound", 9080, "", host)); got != 99 {
		t.Errorf("outbound 9080: max requests %d, want 99 (the selected rule)", got)
	}

	sc := res(config.Sidecar, "default", "pp", &networking.Sidecar{
		WorkloadSelector:      &networking.WorkloadSelector{Labels: map[string]string{"app": "productpage"}},
		InboundConnectionPool: pool(5),
	})
	cs = asAny(gen1(t, pushOnly(dr, sc), productpageProxy(), ClusterType))
	if got := maxRequests(t, cs, InboundClusterName(9080)); got != 5 {
		t.Errorf("inbound 9080 with the Sidecar's inboundConnectionPool: max requests %d, want 5", got)
	}
}
