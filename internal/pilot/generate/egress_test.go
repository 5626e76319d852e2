package generate

import (
	"slices"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

func unpackTCP(t *testing.T, f *listenerv3.Filter) *tcpproxyv3.TcpProxy {
	t.Helper()
	tp := &tcpproxyv3.TcpProxy{}
	if err := f.GetTypedConfig().UnmarshalTo(tp); err != nil {
		t.Fatalf("filter %s: %v", f.GetName(), err)
	}
	return tp
}

// chainSummary renders a listener's filter chains as "SNI,SNI->cluster" (TCP
// chains) or "->rds:NAME" (HTTP chains), in order; the default chain last as "default->...".
func chainSummary(t *testing.T, l *listenerv3.Listener) string {
	t.Helper()
	one := func(fc *listenerv3.FilterChain) string {
		f := fc.GetFilters()[len(fc.GetFilters())-1]
		if f.GetName() == hcmFilterName {
			return "->rds:" + unpackHCM(t, f).GetRds().GetRouteConfigName()
		}
		tp := unpackTCP(t, f)
		dest := tp.GetCluster()
		for _, w := range tp.GetWeightedClusters().GetClusters() {
			dest += w.GetName() + "*" + itoa(w.GetWeight()) + " "
		}
		return strings.Join(fc.GetFilterChainMatch().GetServerNames(), ",") + "->" + strings.TrimSpace(dest)
	}
	var out []string
	for _, fc := range l.GetFilterChains() {
		out = append(out, one(fc))
	}
	if d := l.GetDefaultFilterChain(); d != nil {
		out = append(out, "default"+one(d))
	}
	return strings.Join(out, " | ")
}

func TestBoundEgressListeners(t *testing.T) {
	pc := bookinfoPush()
	ls := gen1(t, pc, egressNoneProxy(), ListenerType)
	tests := []struct {
		name, addr string
		chains     string
		inspector  bool
	}{
		{name: "127.0.1.7_9080", addr: "127.0.1.7:9080", chains: "->rds:127.0.1.7:9080"},
		{name: "127.0.1.7_27017", addr: "127.0.1.7:27017", chains: "->outbound|27017||mongodb.default.svc.cluster.local*90 outbound|27017|backup|mongodb.default.svc.cluster.local*10"},
		{name: "127.0.1.7_443", addr: "127.0.1.7:443", inspector: true,
			chains: "v2.api.example.com->outbound|443||api.example.com | api.example.com->outbound|443||api.example.com"},
		// without bind, a proxy without capture binds its own address
		{name: "10.1.0.30_9080", addr: "10.1.0.30:9080", chains: "->rds:10.1.0.30:9080"},
		{name: "10.1.0.30_15001", addr: "10.1.0.30:15001", chains: "->rds:http_proxy"},
	}
	if len(ls) != len(tests) {
		t.Errorf("listeners = %v, want %d", keys(ls), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, ok := ls[tt.name].(*listenerv3.Listener)
			if !ok {
				t.Fatalf("no listener %s in %v", tt.name, keys(ls))
			}
			sa := l.GetAddress().GetSocketAddress()
			if got := sa.GetAddress() + ":" + itoa(sa.GetPortValue()); got != tt.addr {
				t.Errorf("address = %s, want %s", got, tt.addr)
			}
			if l.BindToPort != nil && !l.GetBindToPort().GetValue() {
				t.Errorf("bind_to_port false")
			}
			if got := chainSummary(t, l); got != tt.chains {
				t.Errorf("chains = %s\nwant     %s", got, tt.chains)
			}
			hasInspector := len(l.GetListenerFilters()) > 0 && l.GetListenerFilters()[0].GetName() == tlsInspectorName
			if hasInspector != tt.inspector {
				t.Errorf("tls_inspector = %v, want %v", hasInspector, tt.inspector)
			}
		})
	}
}

func TestBoundEgressRoutesAreScoped(t *testing.T) {
	pc := bookinfoPush()
	rs := gen1(t, pc, egressNoneProxy(), RouteType)
	if got := strings.Join(keys(rs), " "); got != "10.1.0.30:9080 127.0.1.7:9080 http_proxy" {
		t.Fatalf("route configs = %s", got)
	}
	// the listener on 127.0.1.7:9080 sees reviews only, with its VirtualService, under any Host
	rc := rs["127.0.1.7:9080"].(*routev3.RouteConfiguration)
	if len(rc.GetVirtualHosts()) != 1 {
		t.Fatalf("virtual hosts = %v", rc.GetVirtualHosts())
	}
	vh := vhost(t, rc, "reviews.default.svc.cluster.local:9080")
	if !slices.Contains(vh.GetDomains(), "*") || !slices.Contains(vh.GetDomains(), "reviews") || !rc.GetIgnorePortInHostMatching() {
		t.Errorf("domains = %v, ignore_port_in_host_matching %v", vh.GetDomains(), rc.GetIgnorePortInHostMatching())
	}
	if routeNamed(vh.GetRoutes(), "jason.header") == nil {
		t.Errorf("reviews' VirtualService routes missing: %v", vh.GetRoutes())
	}
	// the listener for ./* on port 9080 sees every default service on 9080 and guesses none
	all := rs["10.1.0.30:9080"].(*routev3.RouteConfiguration)
	var names []string
	for _, vh := range all.GetVirtualHosts() {
		names = append(names, vh.GetName())
		if slices.Contains(vh.GetDomains(), "*") {
			t.Errorf("%s takes any Host although several services share the port", vh.GetName())
		}
	}
	want := "details.default.svc.cluster.local:9080 productpage.default.svc.cluster.local:9080 ratings.default.svc.cluster.local:9080 reviews.default.svc.cluster.local:9080"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("virtual hosts = %s\nwant %s", got, want)
	}
	// asked by name
	if _, ok := gen1(t, pc, egressNoneProxy(), RouteType, "127.0.1.7:9080")["127.0.1.7:9080"]; !ok {
		t.Error("route 127.0.1.7:9080 not generated by name")
	}
	if len(gen1(t, pc, egressNoneProxy(), RouteType, "127.0.1.9:9080")) != 0 {
		t.Error("unknown BIND:PORT route generated")
	}
}

func TestBoundEgressCaptureModes(t *testing.T) {
	sidecar := func(egress ...*networking.IstioEgressListener) *model.PushContext {
		cfg := append(bookinfoConfig(), res(config.Sidecar, "default", "capture", &networking.Sidecar{
			WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "productpage"}},
			Egress:           egress,
		}))
		// the fixture's own productpage Sidecar would win: drop it
		for i, r := range cfg {
			if r.Kind == config.Sidecar && r.Name == "productpage" {
				cfg = append(cfg[:i], cfg[i+1:]...)
				break
			}
		}
		return model.NewPushContext("v", model.DefaultMeshConfig(), configSnapshot(cfg), bookinfoRegistry())
	}
	httpPort := &networking.SidecarPort{Number: 9080, Protocol: "HTTP", Name: "http"}
	tests := []struct {
		name   string
		egress []*networking.IstioEgressListener
		proxy  func() *model.Proxy
		want   []string // bound egress listeners
		absent []string
	}{
		{
			name:   "capture: captureMode NONE binds 127.0.0.1 by default",
			egress: []*networking.IstioEgressListener{{Port: httpPort, CaptureMode: networking.CaptureMode_NONE, Hosts: []string{"./ratings.default.svc.cluster.local"}}, {Hosts: []string{"./*"}}},
			proxy:  productpageProxy,
			want:   []string{"127.0.0.1_9080", "virtualOutbound"},
		},
		{
			name:   "capture: a port without captureMode NONE stays captured",
			egress: []*networking.IstioEgressListener{{Port: httpPort, Bind: "127.0.3.3", Hosts: []string{"./ratings.default.svc.cluster.local"}}, {Hosts: []string{"./*"}}},
			proxy:  productpageProxy,
			want:   []string{"virtualOutbound"},
			absent: []string{"127.0.3.3_9080"},
		},
		{
			name:   "no capture: an inbound listener keeps its address",
			egress: []*networking.IstioEgressListener{{Port: httpPort, Hosts: []string{"./ratings.default.svc.cluster.local"}}},
			proxy:  func() *model.Proxy { p := productpageProxy(); p.Metadata["INTERCEPTION_MODE"] = "NONE"; return p },
			want:   []string{"10.1.0.1_9080", "10.1.0.1_15001"},
		},
		{
			name:   "unix bind is not served",
			egress: []*networking.IstioEgressListener{{Port: httpPort, Bind: "unix:///tmp/x.sock", CaptureMode: networking.CaptureMode_NONE, Hosts: []string{"./*"}}},
			proxy:  productpageProxy,
			absent: []string{"unix:///tmp/x.sock_9080"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc := sidecar(tt.egress...)
			ls := gen1(t, pc, tt.proxy(), ListenerType)
			for _, n := range tt.want {
				if _, ok := ls[n]; !ok {
					t.Errorf("missing listener %s in %v", n, keys(ls))
				}
			}
			for _, n := range tt.absent {
				if _, ok := ls[n]; ok {
					t.Errorf("unexpected listener %s", n)
				}
			}
		})
	}
	// the inbound listener on 10.1.0.1:9080 is the workload's: it routes to the app
	p := productpageProxy()
	p.Metadata["INTERCEPTION_MODE"] = "NONE"
	pc := sidecar(&networking.IstioEgressListener{Port: httpPort, Hosts: []string{"./ratings.default.svc.cluster.local"}})
	if got := chainSummary(t, gen1(t, pc, p, ListenerType)["10.1.0.1_9080"].(*listenerv3.Listener)); strings.Contains(got, "rds:10.1.0.1:9080") {
		t.Errorf("egress listener replaced the inbound listener: %s", got)
	}
	if _, ok := gen1(t, pc, p, RouteType)["10.1.0.1:9080"]; ok {
		t.Error("route config generated for an egress listener that yields to the inbound listener")
	}
}

func TestCapturedTLSPortRoutesBySNI(t *testing.T) {
	pc := bookinfoPush()
	l := gen1(t, pc, productpageProxy(), ListenerType)["0.0.0.0_443"].(*listenerv3.Listener)
	want := "v2.api.example.com->outbound|443||api.example.com | api.example.com->outbound|443||api.example.com | default->PassthroughCluster"
	if got := chainSummary(t, l); got != want {
		t.Errorf("chains = %s\nwant     %s", got, want)
	}
	// REGISTRY_ONLY: other SNIs go nowhere
	cfg := append(bookinfoConfig(), res(config.Sidecar, "other", "default", &networking.Sidecar{
		Egress:                []*networking.IstioEgressListener{{Hosts: []string{"*/api.example.com"}}},
		OutboundTrafficPolicy: &networking.OutboundTrafficPolicy{Mode: networking.OutboundTrafficPolicy_REGISTRY_ONLY},
	}))
	for i, r := range cfg {
		if r.Kind == config.Sidecar && r.Namespace == "other" {
			cfg = append(cfg[:i], cfg[i+1:]...)
			break
		}
	}
	pc = model.NewPushContext("v", model.DefaultMeshConfig(), configSnapshot(cfg), bookinfoRegistry())
	l, ok := gen1(t, pc, otherProxy(), ListenerType)["0.0.0.0_443"].(*listenerv3.Listener)
	if !ok {
		t.Fatal("no 0.0.0.0_443 listener for the other namespace")
	}
	if got := chainSummary(t, l); !strings.HasSuffix(got, "default->BlackHoleCluster") {
		t.Errorf("default chain under REGISTRY_ONLY: %s", got)
	}
}
