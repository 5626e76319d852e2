package generate

import (
	"slices"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/registry"
)

// hostFormsMesh has services on port 8080 in the proxy's namespace (with an
// IPv4 and an IPv6 VIP), in another namespace, outside the mesh domain, and
// one service on two HTTP ports, for TestSidecarHostForms.
func hostFormsMesh(registryOnly bool) *model.PushContext {
	http8080 := registry.Port{Name: "http", Number: 8080, Protocol: registry.HTTP}
	http9090 := registry.Port{Name: "http-alt", Number: 9090, Protocol: registry.HTTP}
	six := svc("six.default.svc.cluster.local", "default", "", registry.ResolutionStatic, http8080)
	six.Addresses = []string{"fd00::6"}
	reg := &registry.Snapshot{Services: []*registry.Service{
		svc("api.example.com", "default", "240.0.0.9", registry.ResolutionDNS, http8080),
		svc("local.default.svc.cluster.local", "default", "10.0.0.1", registry.ResolutionStatic, http8080),
		svc("remote.other.svc.cluster.local", "other", "10.0.0.2", registry.ResolutionStatic, http8080),
		six,
		svc("two.default.svc.cluster.local", "default", "10.0.0.3", registry.ResolutionStatic, http8080, http9090),
	}}
	var cfg []config.Resource
	if registryOnly {
		cfg = append(cfg, res(config.Sidecar, "default", "default", &networking.Sidecar{
			OutboundTrafficPolicy: &networking.OutboundTrafficPolicy{Mode: networking.OutboundTrafficPolicy_REGISTRY_ONLY},
		}))
	}
	return model.NewPushContext("v1", model.DefaultMeshConfig(), configSnapshot(cfg), reg)
}

// sidecarRouteTable is a sidecar's route configuration name as mast-proxy
// compiles it from the bytes the ADS server sends.
func sidecarRouteTable(t *testing.T, pc *model.PushContext, p *model.Proxy, name string) *xdsparse.RouteTable {
	t.Helper()
	out, err := Generate(pc, p, RouteType, []string{name})
	if err != nil || len(out) != 1 {
		t.Fatalf("route %s: %d resources, %v", name, len(out), err)
	}
	b, err := deterministicMarshal(out[0].Resource)
	if err != nil {
		t.Fatal(err)
	}
	_, rt, err := xdsparse.DecodeRouteConfiguration(b)
	if err != nil {
		t.Fatalf("route %s: mast-proxy rejects: %v", name, err)
	}
	return rt
}

// TestSidecarHostForms holds a sidecar's "PORT" route configuration to the
// virtual host and cluster that mast-proxy picks for each form a client can
// put in Host / :authority. It is the oracle for any change to the virtual
// host domains (bench/README "What a sidecar's virtual host is made of
// (routebytes-w17)"). As istiod's since Istio 1.15, the domains carry every
// name without a port and the route configuration says
// ignore_port_in_host_matching: the authority's port, any port, is not
// looked at, so a request naming a service on another port goes to the
// service's virtual host of the route configuration's port (the rows with
// another port), and a name the proxy's namespace cannot resolve goes to
// the catch-all.
func TestSidecarHostForms(t *testing.T) {
	const (
		local  = "outbound|8080||local.default.svc.cluster.local"
		remote = "outbound|8080||remote.other.svc.cluster.local"
		api    = "outbound|8080||api.example.com"
		two    = "outbound|8080||two.default.svc.cluster.local"
		two90  = "outbound|9090||two.default.svc.cluster.local"
		six    = "outbound|8080||six.default.svc.cluster.local"
	)
	rows := []struct {
		route, host string
		cluster     string // "" for the catch-all
	}{
		{"8080", "local.default.svc.cluster.local", local},
		{"8080", "local.default.svc.cluster.local:8080", local},
		{"8080", "local.default.svc", local},
		{"8080", "local.default.svc:8080", local},
		{"8080", "local.default", local},
		{"8080", "local.default:8080", local},
		{"8080", "local", local},
		{"8080", "local:8080", local},
		{"8080", "10.0.0.1", local},
		{"8080", "10.0.0.1:8080", local},
		{"8080", "LOCAL.Default.SVC.cluster.local:8080", local},
		{"8080", "Local", local},
		{"8080", "local.default.svc.cluster.local:9090", local}, // another port: ignored, as in Istio
		{"8080", "local:80", local},
		{"8080", "10.0.0.1:9090", local},
		{"8080", "local.default.svc.cluster", ""},
		{"8080", "local.default.svc.cluster.local.", ""},
		{"8080", "remote.other.svc.cluster.local", remote},
		{"8080", "remote.other.svc.cluster.local:8080", remote},
		{"8080", "remote.other.svc:8080", remote},
		{"8080", "remote.other", remote},
		{"8080", "remote.other:8080", remote},
		{"8080", "10.0.0.2:8080", remote},
		{"8080", "remote", ""}, // short name of another namespace
		{"8080", "remote:8080", ""},
		{"8080", "api.example.com", api},
		{"8080", "API.example.com:8080", api},
		{"8080", "240.0.0.9:8080", api},
		{"8080", "api.example.com:443", api},
		{"8080", "api", ""},
		{"8080", "two:8080", two},
		{"8080", "two:9090", two}, // the route configuration's port decides
		{"9090", "two", two90},
		{"9090", "two:9090", two90},
		{"9090", "two.default.svc.cluster.local:9090", two90},
		{"9090", "10.0.0.3:9090", two90},
		{"9090", "two:8080", two90},
		{"9090", "local:8080", ""},
		{"9090", "local", ""},
		{"8080", "six.default.svc.cluster.local:8080", six},
		{"8080", "six:8080", six},
		{"8080", "[fd00::6]:8080", six},
		{"8080", "[fd00::6]", six},
		{"8080", "[fd00::6]:9090", six},
		{"8080", "[fd00::6]:", six},
		{"8080", "local:", local}, // an empty port is a port (Envoy)
		{"8080", "local:http", local},
		{"8080", "remote:9090", ""},
		{"8080", "unknown:8080", ""},
		{"8080", "unknown.example.org", ""},
		{"8080", "unknown.example.org:8080", ""},
		{"8080", "10.9.9.9:8080", ""},
		{"8080", "", ""},
	}
	for _, registryOnly := range []bool{false, true} {
		pc := hostFormsMesh(registryOnly)
		tables := map[string]*xdsparse.RouteTable{}
		for _, r := range rows {
			rt := tables[r.route]
			if rt == nil {
				rt = sidecarRouteTable(t, pc, productpageProxy(), r.route)
				tables[r.route] = rt
			}
			rt0 := rt.Match(&xdsparse.Input{Authority: r.host, Method: "GET", Scheme: "http", Path: "/"})
			if rt0 == nil {
				t.Fatalf("registry-only %v, route %s, host %q: no route", registryOnly, r.route, r.host)
			}
			got := ""
			switch {
			case rt0.Action != nil && rt0.Action.Cluster != PassthroughCluster:
				got = rt0.Action.Cluster
			case rt0.Action != nil && registryOnly, rt0.Direct != nil && (!registryOnly || rt0.Direct.Status != 502):
				t.Fatalf("registry-only %v, route %s, host %q: catch-all %+v %+v", registryOnly, r.route, r.host, rt0.Action, rt0.Direct)
			}
			if got != r.cluster {
				t.Errorf("registry-only %v, route %s, host %q: virtual host %q, cluster %q, want %q", registryOnly, r.route, r.host, rt0.VHost.Name, got, r.cluster)
			}
			if r.host != "" {
				if od := onDemandCluster(t, pc, r.route, r.host); od != got {
					t.Errorf("registry-only %v, route %s, host %q on demand: cluster %q, want %q", registryOnly, r.route, r.host, od, got)
				}
			}
		}
	}
}

// onDemandCluster is the cluster (PassthroughCluster and 502 as "") that
// mast-proxy routes host to in an on-demand sidecar's route configuration
// route: the VHDS stub decoded, the virtual host "route/host" mastd serves
// for it merged, and host matched as a request's authority.
func onDemandCluster(t *testing.T, pc *model.PushContext, route, host string) string {
	t.Helper()
	p := onDemand(productpageProxy())
	stub := sidecarRouteTable(t, pc, p, route)
	if !stub.VHDS || !stub.IgnorePort {
		t.Fatalf("route %s on demand: vhds %v, ignore_port %v", route, stub.VHDS, stub.IgnorePort)
	}
	out, err := Generate(pc, p, VirtualHostType, []string{route + "/" + strings.ToLower(host)})
	if err != nil || len(out) != 1 {
		t.Fatalf("%s/%s: %d resources, %v", route, host, len(out), err)
	}
	b, err := deterministicMarshal(out[0].Resource)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := stub.WithOnDemand([][]byte{b})
	if err != nil {
		t.Fatalf("%s/%s: mast-proxy rejects: %v", route, host, err)
	}
	r := rt.Match(&xdsparse.Input{Authority: host, Method: "GET", Scheme: "http", Path: "/"})
	switch {
	case r == nil:
		t.Fatalf("%s/%s: no route on demand", route, host)
	case r.Action != nil && r.Action.Cluster != PassthroughCluster:
		return r.Action.Cluster
	}
	return ""
}

// TestRouteScopeIPv6VIP: a VirtualService change naming a service keeps the
// VHDS names that select its virtual host by its IPv6 VIP, bracketed as an
// authority carries it, with and without the port, and by its names with
// any port.
func TestRouteScopeIPv6VIP(t *testing.T) {
	pc := hostFormsMesh(false)
	hosts := map[string]struct{}{"six.default.svc.cluster.local": {}}
	all, keep := RouteScope(pc, onDemand(productpageProxy()), hosts)(VirtualHostType)
	if all || keep == nil {
		t.Fatalf("all %v, keep nil %v; want a narrowed scope", all, keep == nil)
	}
	for name, want := range map[string]bool{
		"8080/[fd00::6]:8080": true, "8080/[FD00::6]": true, "8080/six": true,
		"8080/[fd00::7]:8080": false, "8080/local": false,
		// The proxy ignores any port, as Envoy: an empty or non-digit one too.
		"8080/[fd00::6]:": true, "8080/SIX:http": true, "8080/six.default:9090": true, "8080/local:": false,
	} {
		if got := keep(name); got != want {
			t.Errorf("keep(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestOnDemandPortedAndBareNamesAreOneVirtualHost: an on-demand proxy that
// met "local:8080" and "local" (Envoy names VHDS resources by the authority,
// port included) gets two resources that are one virtual host "8080/local"
// with domain "local", which mast-proxy (as Envoy) keeps once, instead of
// two with one domain, which it would refuse.
func TestOnDemandPortedAndBareNamesAreOneVirtualHost(t *testing.T) {
	pc := hostFormsMesh(false)
	p := onDemand(productpageProxy())
	names := []string{"8080/local:8080", "8080/local", "8080/local:9090"}
	for _, cache := range []bool{false, true} {
		var out []model.XDSResource
		var err error
		if cache {
			out, err = NewCache(CacheConfig{}).Generate(pc, p, VirtualHostType, names)
		} else {
			out, err = Generate(pc, p, VirtualHostType, names)
		}
		if err != nil || len(out) != len(names) {
			t.Fatalf("cache %v: %d resources, %v", cache, len(out), err)
		}
		var vhs [][]byte
		for _, r := range out {
			vh := r.Resource.(*routev3.VirtualHost)
			if !slices.Contains(names, r.Name) || vh.Name != "8080/local" || len(vh.Domains) != 1 || vh.Domains[0] != "local" {
				t.Fatalf("cache %v: resource %q: virtual host %q, domains %v; want 8080/local, [local]", cache, r.Name, vh.Name, vh.Domains)
			}
			b, err := deterministicMarshal(vh)
			if err != nil {
				t.Fatal(err)
			}
			vhs = append(vhs, b)
		}
		rt, err := sidecarRouteTable(t, pc, p, "8080").WithOnDemand(vhs)
		if err != nil || rt.OnDemand != 1 {
			t.Fatalf("cache %v: merged %d virtual hosts, %v; want 1", cache, rt.OnDemand, err)
		}
	}
}
