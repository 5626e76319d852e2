package controlplane

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/generate"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

var allTypes = []string{generate.ClusterType, generate.EndpointType, generate.ListenerType, generate.RouteType}

// wireOf generates every resource of typeURL for p, keyed by name, in wire form.
func wireOf(t *testing.T, pc *model.PushContext, p *model.Proxy, typeURL string, names []string) map[string][]byte {
	t.Helper()
	rs, err := generate.Generate(pc, p, typeURL, names)
	if err != nil {
		t.Fatalf("generate %s for %s: %v", typeURL, p.ID, err)
	}
	out := make(map[string][]byte, len(rs))
	for _, r := range rs {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r.Resource)
		if err != nil {
			t.Fatal(err)
		}
		out[r.Name] = b
	}
	return out
}

// checkCovers fails when a proxy's configuration for a type req does not
// push differs between the push contexts old and new: the proxy would keep
// stale config. For EDS the clusters of req.EDSHosts are exempt. A request
// narrowed to some hosts' routes (req.Hosts) covers only the names
// generate.RouteScope keeps, as the ADS server pushes them; on-demand
// proxies' virtual hosts are checked by every name their route
// configurations' domains (and a host none has) give.
func checkCovers(t *testing.T, what string, old, new *model.PushContext, req *model.PushRequest, proxies []*model.Proxy, grpcNames []string) {
	t.Helper()
	for _, p := range proxies {
		for _, typ := range append(allTypes, generate.VirtualHostType) {
			var names []string
			switch {
			case typ == generate.VirtualHostType:
				if !p.OnDemandRoutes() {
					continue
				}
				names = vhdsNames(t, old, new, p)
			case p.IsGRPC() && (typ == generate.ListenerType || typ == generate.RouteType):
				names = grpcNames
			}
			pushed := req != nil && req.FullType(p, typ)
			var keep func(string) bool
			if pushed && req.Hosts != nil && !atProxyAddress(req, p) {
				var all bool
				if all, keep = generate.RouteScope(new, p, req.Hosts)(typ); !all {
					pushed = false
					if keep == nil {
						keep = func(string) bool { return false }
					}
				}
			}
			if pushed {
				continue
			}
			before, after := wireOf(t, old, p, typ, names), wireOf(t, new, p, typ, names)
			for _, n := range union(before, after) {
				if typ == generate.EndpointType && req != nil {
					if h, ok := generate.ClusterHost(n); ok {
						if _, pushed := req.EDSHosts[h]; pushed {
							continue
						}
					}
				}
				if keep != nil && keep(n) {
					continue
				}
				if !bytes.Equal(before[n], after[n]) {
					t.Errorf("%s: proxy %s keeps a stale %s %q (request %+v)", what, p.ID, typ[strings.LastIndexByte(typ, '.')+1:], n, req)
				}
			}
		}
	}
}

func atProxyAddress(req *model.PushRequest, p *model.Proxy) bool {
	for _, ip := range p.IPAddresses {
		if _, ok := req.Addresses[ip]; ok {
			return true
		}
	}
	return false
}

// vhdsNames returns the VHDS names an on-demand proxy can ask for in either
// push context: "RC/DOMAIN" for every domain of every virtual host of its
// route configurations as a proxy without on-demand routes gets them, and
// a host no virtual host names.
func vhdsNames(t *testing.T, old, new *model.PushContext, p *model.Proxy) []string {
	t.Helper()
	whole := *p
	whole.Metadata = maps.Clone(p.Metadata)
	delete(whole.Metadata, model.OnDemandRoutesKey)
	seen := map[string]struct{}{}
	var out []string
	for _, pc := range []*model.PushContext{old, new} {
		rs, err := generate.Generate(pc, &whole, generate.RouteType, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			rc, ok := r.Resource.(*routev3.RouteConfiguration)
			if !ok {
				continue
			}
			add := func(d string) {
				n := rc.GetName() + "/" + d
				if _, dup := seen[n]; !dup {
					seen[n] = struct{}{}
					out = append(out, n)
				}
			}
			add("unknown.example.org:80")
			for _, vh := range rc.GetVirtualHosts() {
				for _, d := range vh.GetDomains() {
					if d != "*" {
						add(d)
					}
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func union(a, b map[string][]byte) []string {
	var out []string
	for n := range a {
		out = append(out, n)
	}
	for n := range b {
		if _, ok := a[n]; !ok {
			out = append(out, n)
		}
	}
	return out
}

func pushContext(p *pipeline) *model.PushContext {
	return model.NewPushContext("v", p.mesh, p.cfg, p.reg)
}

func sidecarAt(ip, ns string, labels map[string]string, none bool) *model.Proxy {
	p := &model.Proxy{
		ID: "sidecar~" + ip + "~w." + ns + "~" + ns + ".svc.cluster.local", Type: model.SidecarProxy,
		IPAddresses: []string{ip}, Name: "w", Namespace: ns, Labels: labels,
		Metadata: map[string]string{model.MetaWorkloadCert: "true"},
	}
	if none {
		p.Metadata["INTERCEPTION_MODE"] = "NONE"
	}
	return p
}

const oneService = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec:
  hosts: [a.default.svc.cluster.local]
  addresses: [240.0.0.1]
  location: MESH_INTERNAL
  resolution: RESOLUTION
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]
  workloadSelector: {labels: {app: a}}
`

const workload = `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: NAME, namespace: default}
spec:
  address: ADDR
  labels: {app: a}
  serviceAccount: SA
  ports: {http: PORT}
`

func withWorkloads(resolution string, wls ...[4]string) string {
	s := strings.Replace(oneService, "RESOLUTION", resolution, 1)
	for _, w := range wls {
		s += strings.NewReplacer("NAME", w[0], "ADDR", w[1], "SA", w[2], "PORT", w[3]).Replace(workload)
	}
	return s
}

// TestEndpointChangesPushWhatTheyChange covers the changes that look like
// endpoint-only changes but alter clusters or a proxy's own listeners.
func TestEndpointChangesPushWhatTheyChange(t *testing.T) {
	a1 := [4]string{"a-1", "10.0.0.1", "sa-one", "8080"}
	a2 := [4]string{"a-2", "10.0.0.2", "sa-one", "8080"}
	tests := []struct {
		name     string
		old, new string
	}{
		{"workload entry service account changes (cluster SANs)", withWorkloads("STATIC", a1, a2),
			withWorkloads("STATIC", a1, [4]string{"a-2", "10.0.0.2", "sa-two", "8080"})},
		{"DNS service endpoints move (inlined in CDS)", withWorkloads("DNS", a1, a2),
			withWorkloads("DNS", a1, [4]string{"a-2", "10.0.0.3", "sa-one", "8080"})},
		{"resolution NONE from zero to some endpoints", withWorkloads("NONE"), withWorkloads("NONE", a1)},
		{"resolution NONE from some to zero endpoints", withWorkloads("NONE", a1), withWorkloads("NONE")},
		{"workload entry moves to the proxy's address", withWorkloads("STATIC", a1),
			withWorkloads("STATIC", a1, [4]string{"a-2", "10.0.0.9", "sa-one", "8080"})},
		{"workload entry moves away from the proxy's address", withWorkloads("STATIC", a1, [4]string{"a-2", "10.0.0.9", "sa-one", "8080"}),
			withWorkloads("STATIC", a1, a2)},
		{"workload entry at the proxy's address changes port", withWorkloads("STATIC", a1, [4]string{"a-2", "10.0.0.9", "sa-one", "8080"}),
			withWorkloads("STATIC", a1, [4]string{"a-2", "10.0.0.9", "sa-one", "9090"})},
	}
	proxies := []*model.Proxy{
		sidecarAt("10.0.0.9", "default", map[string]string{"app": "a"}, false),
		sidecarAt("10.0.0.9", "default", map[string]string{"app": "a"}, true),
		sidecarAt("10.0.5.5", "default", map[string]string{"app": "client"}, false),
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &pipeline{mesh: model.DefaultMeshConfig(), log: slog.Default()}
			p.configChanged(snapshot(t, tc.old), nil)
			old := pushContext(p)
			req := p.configChanged(snapshot(t, tc.new), kinds(config.WorkloadEntry))
			checkCovers(t, tc.name, old, pushContext(p), req, proxies, nil)
		})
	}
}

// TestPushCoversChange removes, then restores, each resource of every
// configuration in the tree's testdata and samples, one at a time, and checks
// that the push request mastd computes covers every type that changed for a
// sidecar (with and without capture) at a workload's address, a gateway and
// a proxyless gRPC client.
func TestPushCoversChange(t *testing.T) {
	var files []string
	for _, glob := range []string{"../config/testdata/valid/*.yaml", "../config/testdata/warn/*.yaml", "../../samples/bookinfo/networking/*.yaml"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 10 {
		t.Fatalf("found %d configuration files; the globs are stale", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rs, problems := config.Load(f, data)
		if problems.HasErrors() || len(rs) == 0 {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			p := &pipeline{mesh: model.DefaultMeshConfig(), log: slog.Default()}
			full := config.NewSnapshot(rs)
			p.configChanged(full, nil)
			proxies, grpcNames := probeProxies(p.reg)
			for i, r := range rs {
				without := config.NewSnapshot(append(append([]config.Resource{}, rs[:i]...), rs[i+1:]...))
				k := kinds(r.Kind)
				old := pushContext(p)
				req := p.configChanged(without, k)
				removed := pushContext(p)
				checkCovers(t, "remove "+r.Key().String(), old, removed, req, proxies, grpcNames)
				req = p.configChanged(full, k)
				checkCovers(t, "restore "+r.Key().String(), removed, pushContext(p), req, proxies, grpcNames)
			}
		})
	}
}

// probeProxies returns proxies that see a mesh from every side: sidecars
// with and without capture at the first workload's address (each also with
// on-demand virtual hosts), a gateway, and
// a gRPC client naming every service port.
func probeProxies(reg *registry.Snapshot) ([]*model.Proxy, []string) {
	ip, labels, ns := "10.200.0.1", map[string]string{"app": "probe"}, "default"
	var grpcNames []string
	for _, s := range reg.Services {
		for _, port := range s.Ports {
			grpcNames = append(grpcNames, fmt.Sprintf("%s:%d", s.Hostname, port.Number))
		}
		if eps := reg.Endpoints[s.Hostname]; len(eps) > 0 && ip == "10.200.0.1" {
			ip, labels, ns = eps[0].Address, eps[0].Labels, s.Namespace
		}
	}
	grpc := sidecarAt("10.200.0.2", "default", map[string]string{"app": "grpc"}, false)
	grpc.Generator, grpc.Metadata["GENERATOR"] = "grpc", "grpc"
	gw := &model.Proxy{
		ID: "router~10.200.0.3~gw.istio-system~istio-system.svc.cluster.local", Type: model.Router,
		IPAddresses: []string{"10.200.0.3"}, Name: "gw", Namespace: "istio-system",
		Labels: map[string]string{"istio": "ingressgateway"}, Metadata: map[string]string{},
	}
	onDemand, onDemandNone := sidecarAt(ip, ns, labels, false), sidecarAt(ip, ns, labels, true)
	onDemand.ID, onDemandNone.ID = onDemand.ID+"-vhds", onDemandNone.ID+"-vhds"
	onDemand.Metadata[model.OnDemandRoutesKey], onDemandNone.Metadata[model.OnDemandRoutesKey] = "true", "true"
	return []*model.Proxy{sidecarAt(ip, ns, labels, false), sidecarAt(ip, ns, labels, true), onDemand, onDemandNone, gw, grpc}, grpcNames
}

const l4Mesh = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  addresses: [240.0.0.1]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  addresses: [240.0.0.2]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls, namespace: default}
spec:
  hosts: [tls.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}
  - {port: {number: 9000, name: tcp, protocol: TCP}, hosts: ["*"]}
`

// TestVirtualServiceChangesSkipListeners checks that a VirtualService change
// leaves listeners out of the push exactly when it may: when no changed
// VirtualService has tcp or tls routes before or after. Every case is also
// held to the generators (checkCovers).
func TestVirtualServiceChangesSkipListeners(t *testing.T) {
	vs := func(name, body string) string {
		return "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: " + name + ", namespace: default}\nspec:\n" + body
	}
	httpV1 := vs("web", "  hosts: [web.default.svc.cluster.local]\n  http: [{route: [{destination: {host: web.default.svc.cluster.local}}], timeout: 1s}]\n")
	httpV2 := vs("web", "  hosts: [web.default.svc.cluster.local]\n  http: [{route: [{destination: {host: web.default.svc.cluster.local}}], timeout: 2s}]\n")
	httpGW := vs("web", "  hosts: [web.default.svc.cluster.local]\n  gateways: [istio-system/gw, mesh]\n  http: [{route: [{destination: {host: web.default.svc.cluster.local}}], timeout: 3s}]\n")
	tcpV1 := vs("db", "  hosts: [db.default.svc.cluster.local]\n  tcp: [{route: [{destination: {host: web.default.svc.cluster.local, port: {number: 80}}}]}]\n")
	tcpV2 := vs("db", "  hosts: [db.default.svc.cluster.local]\n  tcp: [{match: [{port: 5432}], route: [{destination: {host: db.default.svc.cluster.local}}]}]\n")
	tcpGW := vs("db", "  hosts: [\"*\"]\n  gateways: [istio-system/gw]\n  tcp: [{match: [{port: 9000}], route: [{destination: {host: db.default.svc.cluster.local, port: {number: 5432}}}]}]\n")
	tlsVS := vs("tls", "  hosts: [tls.example.com]\n  tls: [{match: [{port: 443, sniHosts: [tls.example.com]}], route: [{destination: {host: web.default.svc.cluster.local, port: {number: 80}}}]}]\n")
	httpOnTCP := vs("db", "  hosts: [db.default.svc.cluster.local]\n  http: [{route: [{destination: {host: web.default.svc.cluster.local}}]}]\n")
	tests := []struct {
		name      string
		old, new  string
		listeners bool // LDS must be in the push
	}{
		{"http route edited", httpV1 + tcpV1, httpV2 + tcpV1, false},
		{"http VirtualService added", tcpV1, httpV1 + tcpV1, false},
		{"http VirtualService removed", httpV1 + tcpV1, tcpV1, false},
		{"http VirtualService bound to a gateway", httpV1, httpGW, false},
		{"http routes on a TCP service", "", httpOnTCP, false},
		{"tcp route edited", httpV1 + tcpV1, httpV1 + tcpV2, true},
		{"tcp VirtualService added", httpV1, httpV1 + tcpV1, true},
		{"tcp VirtualService removed", httpV1 + tcpV1, httpV1, true},
		{"tcp route bound to a gateway", tcpV1, tcpGW, true},
		{"tls VirtualService added", httpV1, httpV1 + tlsVS, true},
		{"http routes become tcp routes", httpOnTCP, tcpV1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &pipeline{mesh: model.DefaultMeshConfig(), log: slog.Default()}
			p.configChanged(snapshot(t, l4Mesh+tc.old), nil)
			proxies, grpcNames := probeProxies(p.reg)
			old := pushContext(p)
			req := p.configChanged(snapshot(t, l4Mesh+tc.new), kinds(config.VirtualService))
			if req == nil || !req.Full {
				t.Fatalf("request %+v, want a full push", req)
			}
			if _, lds := req.Types[generate.ListenerType]; lds != tc.listeners || req.Types == nil {
				t.Errorf("types %v: listeners pushed %v, want %v", req.Types, lds, tc.listeners)
			}
			if _, rds := req.Types[generate.RouteType]; !rds {
				t.Errorf("types %v: routes not pushed", req.Types)
			}
			checkCovers(t, tc.name, old, pushContext(p), req, proxies, grpcNames)
		})
	}
}
