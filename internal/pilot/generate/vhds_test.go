package generate

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/hostport"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
	"github.com/mast-mesh/mast/internal/registry/serviceentry"
)

func onDemand(p *model.Proxy) *model.Proxy {
	p.Metadata[model.OnDemandRoutesKey] = "true"
	return p
}

// vhdsProbeNames are the VHDS names an on-demand proxy could ask for: every
// domain of every virtual host of its full "PORT" route configurations (as
// generated for the same proxy without on-demand routing), in their case
// and in upper case, hosts only the catch-all takes, and names that select
// nothing.
func vhdsProbeNames(t testing.TB, pc *model.PushContext, p *model.Proxy) []string {
	t.Helper()
	full := fullRoutes(t, pc, p)
	var out []string
	for _, rc := range full {
		for _, vh := range rc.VirtualHosts {
			for _, d := range vh.Domains {
				if d == "*" {
					continue
				}
				out = append(out, rc.Name+"/"+d, rc.Name+"/"+strings.ToUpper(d))
				// hosts a wildcard domain selects
				if rest, ok := strings.CutPrefix(d, "*"); ok {
					out = append(out, rc.Name+"/x"+rest, rc.Name+"/a.b"+rest)
				}
				if rest, ok := strings.CutSuffix(d, "*"); ok && rest != "" {
					out = append(out, rc.Name+"/"+rest+"x")
				}
			}
		}
		out = append(out, rc.Name+"/unknown.example.com", rc.Name+"/unknown.example.com:"+rc.Name)
	}
	out = append(out, "9/nothing-on-this-port", "no-slash", "80/", "/x")
	slices.Sort(out)
	return slices.Compact(out)
}

// withoutOnDemand returns a copy of p that does not ask for on-demand
// routing.
func withoutOnDemand(p *model.Proxy) *model.Proxy {
	plain := *p
	plain.Metadata = map[string]string{}
	for k, v := range p.Metadata {
		if k != model.OnDemandRoutesKey {
			plain.Metadata[k] = v
		}
	}
	return &plain
}

// fullRoutes returns p's "PORT" route configurations as a proxy without
// on-demand routing gets them.
func fullRoutes(t testing.TB, pc *model.PushContext, p *model.Proxy) []*routev3.RouteConfiguration {
	t.Helper()
	rs, err := Generate(pc, withoutOnDemand(p), RouteType, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []*routev3.RouteConfiguration
	for _, r := range rs {
		if strings.IndexByte(r.Name, ':') < 0 {
			out = append(out, r.Resource.(*routev3.RouteConfiguration))
		}
	}
	return out
}

// TestOnDemandRoutesServeWhatFullRoutesServe: an on-demand proxy's route
// configurations carry VHDS and no virtual hosts, and for every host the
// proxy may meet — including one it meets first (a miss), in any case, and
// one only the catch-all takes — the virtual host served on demand routes
// exactly as the full route configuration's selected virtual host does.
func TestOnDemandRoutesServeWhatFullRoutesServe(t *testing.T) {
	for _, pc := range []*model.PushContext{bookinfoPush(), hostFormsMesh(false)} {
		checkOnDemandRoutes(t, pc)
	}
}

func checkOnDemandRoutes(t *testing.T, pc *model.PushContext) {
	for _, mk := range []func() *model.Proxy{productpageProxy, otherProxy, reviewsNoneProxy} {
		p := onDemand(mk())
		rs, err := Generate(pc, p, RouteType, nil)
		if err != nil {
			t.Fatal(err)
		}
		full := fullRoutes(t, pc, p)
		if len(full) == 0 {
			t.Fatalf("%s: no port route configurations", p.ID)
		}
		stubs := map[string]*routev3.RouteConfiguration{}
		for _, r := range rs {
			rc := r.Resource.(*routev3.RouteConfiguration)
			stubs[rc.Name] = rc
		}
		for _, rc := range full {
			stub := stubs[rc.Name]
			if stub == nil || len(stub.VirtualHosts) != 0 || stub.GetVhds().GetConfigSource().GetAds() == nil {
				t.Fatalf("%s: route configuration %s for an on-demand proxy: %v, want VHDS over ADS and no virtual hosts", p.ID, rc.Name, stub)
			}
		}
		names := vhdsProbeNames(t, pc, p)
		got, err := Generate(pc, p, VirtualHostType, names)
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]*routev3.VirtualHost{}
		for _, r := range got {
			byName[r.Name] = r.Resource.(*routev3.VirtualHost)
		}
		checked := 0
		for _, rc := range full {
			for _, n := range names {
				rcName, host, _ := strings.Cut(n, "/")
				if rcName != rc.Name || host == "" {
					continue
				}
				if rc.IgnorePortInHostMatching {
					// Matched without the port; "PORT/svc:8080" is virtual host "PORT/svc".
					if host = hostport.WithoutPort(host); host == "" {
						continue
					}
				}
				want := selectVirtualHost(rc.VirtualHosts, strings.ToLower(host))
				vh := byName[n]
				if want == nil {
					if vh != nil {
						t.Fatalf("%s: %s selects nothing in the full routes but was served", p.ID, n)
					}
					continue
				}
				if vh == nil {
					t.Fatalf("%s: %s not served (full routes select %s)", p.ID, n, want.Name)
				}
				if vh.Name != rcName+"/"+host || !slices.Equal(vh.Domains, []string{host}) {
					t.Fatalf("%s: %s served as name %q domains %v", p.ID, n, vh.Name, vh.Domains)
				}
				a, b := &routev3.VirtualHost{Routes: vh.Routes}, &routev3.VirtualHost{Routes: want.Routes}
				if !bytes.Equal(wire(t, a), wire(t, b)) {
					t.Fatalf("%s: %s routes differ from the full route configuration's %s", p.ID, n, want.Name)
				}
				if strings.HasPrefix(host, "unknown.") && !slices.Equal(want.Domains, []string{"*"}) {
					t.Fatalf("%s: %s selected %s, want the catch-all", p.ID, n, want.Name)
				}
				checked++
			}
		}
		if checked < 20 {
			t.Fatalf("%s: only %d names checked", p.ID, checked)
		}
		for _, bad := range []string{"9/nothing-on-this-port", "no-slash", "80/", "/x"} {
			if _, ok := byName[bad]; ok && !strings.HasPrefix(bad, "9/") {
				t.Fatalf("%s: %q served", p.ID, bad)
			}
		}
	}
}

// TestOnDemandRoutesOnlyForSidecars: gateways and proxyless gRPC keep full
// route configurations and get no virtual hosts on demand, whatever their
// metadata says.
func TestOnDemandRoutesOnlyForSidecars(t *testing.T) {
	pc := bookinfoPush()
	for _, mk := range []func() *model.Proxy{gatewayProxy, grpcProxy} {
		p := onDemand(mk())
		plain := mk()
		names := []string{"8080/x"}
		if p.IsGRPC() {
			names = fixtureProxies[3].grpcNames
		}
		a, err := Generate(pc, p, RouteType, names[:len(names):len(names)])
		if err != nil {
			t.Fatal(err)
		}
		b, err := Generate(pc, plain, RouteType, names)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(namesOf(a), namesOf(b)) {
			t.Fatalf("%s: routes %v, want %v", p.ID, namesOf(a), namesOf(b))
		}
		for i := range a {
			if !bytes.Equal(wire(t, a[i].Resource), wire(t, b[i].Resource)) {
				t.Fatalf("%s: route %s differs with on-demand metadata", p.ID, a[i].Name)
			}
		}
		if vh, _ := Generate(pc, p, VirtualHostType, []string{"80/productpage.default.svc.cluster.local"}); len(vh) != 0 {
			t.Fatalf("%s: served virtual hosts %v", p.ID, namesOf(vh))
		}
	}
}

// TestDomainIndexReusesTableOnlyForSameDomains: a route configuration whose
// virtual hosts have the same domains at the same positions as the previous
// one of its lineage (a change of routes) reuses its domain table and selects
// the new virtual hosts; any change of domains builds a new table.
func TestDomainIndexReusesTableOnlyForSameDomains(t *testing.T) {
	vh := func(name string, domains ...string) *routev3.VirtualHost {
		return &routev3.VirtualHost{Name: name, Domains: domains}
	}
	a := vh("a", "a.example.com", "a")
	b := vh("b", "b.example.com", "b")
	star := vh("any", "*")
	rc1 := &routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{a, b, star}}
	b2 := vh("b", "b.example.com", "b") // new routes, same domains
	rc2 := &routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{a, b2, star}}
	rc3 := &routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{a, vh("b", "c.example.com", "b"), star}}
	rc4 := &routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{b2, a, star}}
	if !sameDomains(rc1, rc2) {
		t.Fatal("same domains at the same positions: want reuse")
	}
	for _, rc := range []*routev3.RouteConfiguration{rc3, rc4, {Name: "80", VirtualHosts: rc1.VirtualHosts[:2]}} {
		if sameDomains(rc1, rc) {
			t.Fatalf("%v: domains differ from the previous configuration's, want a new table", rc.VirtualHosts)
		}
	}
	x1 := newDomainIndex(rc1, buildDomainTable(rc1))
	x2 := newDomainIndex(rc2, x1.table)
	if got := x2.lookup("b.example.com"); got != b2 {
		t.Fatalf("reused table selected %p, want the new configuration's virtual host %p", got, b2)
	}
	if got := x2.lookup("unknown"); got != star {
		t.Fatalf("reused table: unknown host selected %v, want the catch-all", got)
	}
	// Through the cache: two pushes of the same lineage share the table.
	c := NewCache(CacheConfig{})
	p := onDemand(productpageProxy())
	rs := bookinfoConfig()
	vs := slices.IndexFunc(rs, func(r config.Resource) bool { return r.Kind == config.VirtualService })
	tables := map[*domainTable]bool{}
	for _, cfg := range []*config.Snapshot{configSnapshot(rs), configSnapshot(without(rs, vs))} {
		pc := model.NewPushContext("v", model.DefaultMeshConfig(), cfg, bookinfoRegistry())
		g := newGen(pc, p)
		g.cache = c
		st := c.state(pc)
		rc, _ := g.sidecarRoute("9080", g.fullRoute("9080"))
		if rc == nil {
			t.Fatal("no route configuration 9080")
		}
		tables[g.domainIndex(st, "9080", rc).table] = true
	}
	if len(tables) != 1 {
		t.Fatalf("a VirtualService change built %d domain tables, want the first one reused", len(tables))
	}
}

// TestOnDemandRoutesWholeUnderRoutePatches: an on-demand proxy selected by
// an EnvoyFilter that patches virtual hosts gets its route configurations
// whole, so the patch takes effect (on demand its stub has no virtual host
// to patch); proxies the EnvoyFilter does not select keep VHDS.
func TestOnDemandRoutesWholeUnderRoutePatches(t *testing.T) {
	rs, err := config.Decode("ef.yaml", []byte(`apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: vh-retry, namespace: default}
spec:
  workloadSelector: {labels: {app: productpage}}
  configPatches:
  - applyTo: VIRTUAL_HOST
    match: {context: SIDECAR_OUTBOUND}
    patch: {operation: MERGE, value: {include_request_attempt_count: true}}
`))
	if err != nil {
		t.Fatal(err)
	}
	pc := pushWith(rs...)
	details := productpageProxy()
	details.ID, details.Name = "sidecar~10.1.0.1~details-v1.default~default.svc.cluster.local", "details-v1"
	details.Labels = map[string]string{"app": "details", "version": "v1"}
	for _, c := range []struct {
		p     *model.Proxy
		whole bool
	}{{onDemand(productpageProxy()), true}, {onDemand(details), false}} {
		out, err := Generate(pc, c.p, RouteType, []string{"9080"})
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 1 {
			t.Fatalf("%s: routes %v", c.p.ID, namesOf(out))
		}
		rc := out[0].Resource.(*routev3.RouteConfiguration)
		if whole := rc.Vhds == nil && len(rc.VirtualHosts) > 0; whole != c.whole {
			t.Fatalf("%s: whole route configuration %v (vhds %v, %d virtual hosts), want %v", c.p.ID, whole, rc.Vhds != nil, len(rc.VirtualHosts), c.whole)
		}
		vh, err := Generate(pc, c.p, VirtualHostType, []string{"9080/reviews.default.svc.cluster.local"})
		if err != nil {
			t.Fatal(err)
		}
		if served := len(vh) > 0; served == c.whole {
			t.Fatalf("%s: virtual hosts on demand %v, want %v", c.p.ID, served, !c.whole)
		}
	}
}

// onDemandEdgesConfig has what a capturing sidecar's virtual hosts are
// selected by beyond Bookinfo: wildcard services (suffix selection, the
// longest suffix winning), services whose domains clash (a shared VIP, so
// the later one keeps fewer domains), a VirtualService on such a service,
// and a Sidecar whose egressProxy makes the catch-all route to a service
// cluster (so tracing names its span).
const onDemandEdgesConfig = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: default}
spec:
  hosts: ["*.example.com", "*.wiki.example.com"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: NONE
  location: MESH_EXTERNAL
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec:
  hosts: [a.example.org]
  addresses: [240.0.0.1]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.9.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: default}
spec:
  hosts: [b.example.org]
  addresses: [240.0.0.1]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.9.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: egress, namespace: default}
spec:
  hosts: [egress.example.org]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.9.0.3}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b, namespace: default}
spec:
  hosts: [b.example.org]
  http:
  - match: [{uri: {prefix: /v2}}]
    route: [{destination: {host: a.example.org}}]
  - route: [{destination: {host: b.example.org}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress: [{hosts: ["*/*"]}]
  outboundTrafficPolicy:
    mode: ALLOW_ANY
    egressProxy: {host: egress.example.org, port: {number: 80}}
`

// TestCacheOracleOnDemandEdges holds the cache's virtual hosts built one at
// a time (onDemandPortVhost) to the uncached selection from whole route
// configurations on onDemandEdgesConfig, with and without tracing, each
// resource removed and restored.
func TestCacheOracleOnDemandEdges(t *testing.T) {
	rs, problems := config.Load("edges.yaml", []byte(onDemandEdgesConfig))
	if problems.HasErrors() || len(rs) != 6 {
		t.Fatalf("edges.yaml: %d resources, problems %v", len(rs), problems)
	}
	proxies := cacheProxies()
	for _, mesh := range []model.MeshConfig{model.DefaultMeshConfig(), tracingMesh()} {
		c := NewCache(CacheConfig{})
		opts := serviceentry.Options{TrustDomain: mesh.TrustDomain, DomainSuffix: mesh.DomainSuffix}
		var reg *registry.Snapshot
		push := func(rs []config.Resource, step string) {
			cfg := config.NewSnapshot(rs)
			reg = registry.Reuse(reg, serviceentry.Build(cfg, opts))
			oracle(t, c, model.NewPushContext("v", mesh, cfg, reg), proxies, step)
		}
		push(rs, "all")
		for i, r := range rs {
			push(without(rs, i), "remove "+r.Key().String())
			push(rs, "restore "+r.Key().String())
		}
	}
}

// TestVHDSStubIsFullRouteWithoutVirtualHosts holds the VHDS stubs, built
// from their names alone, to the full route configurations an on-demand
// proxy would otherwise get, stripped of their virtual hosts and given VHDS
// over ADS: byte for byte, for every on-demand fixture proxy, with and
// without tracing, cached and uncached.
func TestVHDSStubIsFullRouteWithoutVirtualHosts(t *testing.T) {
	checked := 0
	for _, mesh := range []model.MeshConfig{model.DefaultMeshConfig(), tracingMesh()} {
		pc := model.NewPushContext("v", mesh, configSnapshot(bookinfoConfig()), bookinfoRegistry())
		c := NewCache(CacheConfig{})
		for _, fp := range cacheProxies() {
			p := fp.proxy()
			if !p.OnDemandRoutes() {
				continue
			}
			full := map[string]*routev3.RouteConfiguration{}
			rs, err := Generate(pc, withoutOnDemand(p), RouteType, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				if newGen(pc, p).fullRoute(r.Name) != nil {
					full[r.Name] = r.Resource.(*routev3.RouteConfiguration)
				}
			}
			if len(full) == 0 {
				t.Fatalf("%s: no on-demand route configurations", fp.name)
			}
			for _, gen := range []func(*model.PushContext, *model.Proxy, string, []string) ([]model.XDSResource, error){Generate, c.Generate} {
				stubs, err := gen(pc, p, RouteType, nil)
				if err != nil {
					t.Fatal(err)
				}
				seen := 0
				for _, r := range stubs {
					rc := full[r.Name]
					if rc == nil {
						continue
					}
					want := proto.Clone(rc).(*routev3.RouteConfiguration)
					want.VirtualHosts = nil
					want.Vhds = &routev3.Vhds{ConfigSource: &corev3.ConfigSource{
						ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
						ResourceApiVersion:    corev3.ApiVersion_V3,
					}}
					if !bytes.Equal(wire(t, r.Resource), wire(t, want)) {
						t.Fatalf("%s: stub %s = %v, want %v", fp.name, r.Name, r.Resource, want)
					}
					seen++
					checked++
				}
				if seen != len(full) {
					t.Fatalf("%s: %d stubs for %d on-demand route configurations", fp.name, seen, len(full))
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d stubs checked", checked)
	}
}

// TestSweepDropsUnusedDerived: the domain indexes, port tables and port
// layouts a push context used stay while the next push context uses them,
// and go once two push contexts in a row did not.
func TestSweepDropsUnusedDerived(t *testing.T) {
	c := NewCache(CacheConfig{})
	p := onDemand(productpageProxy())
	count := func() (n [3]int) {
		for i, m := range []*sync.Map{&c.indexes, &c.tables, &c.layouts} {
			m.Range(func(any, any) bool { n[i]++; return true })
		}
		return n
	}
	push := func(use bool) {
		pc := model.NewPushContext("v", model.DefaultMeshConfig(), configSnapshot(bookinfoConfig()), bookinfoRegistry())
		g := newGen(pc, p)
		g.cache = c
		st := c.state(pc)
		if !use {
			return
		}
		rc, _ := g.sidecarRoute("9080", g.fullRoute("9080"))
		g.domainIndex(st, "9080", rc)
		g.portTable(st, 9080)
		g.portLayout(st, 9080)
	}
	push(true)
	if n := count(); n != [3]int{1, 1, 1} {
		t.Fatalf("after a push that used them: %v indexes, tables, layouts, want one each", n)
	}
	push(true)
	push(false)
	if n := count(); n != [3]int{1, 1, 1} {
		t.Fatalf("one push after the last use: %v, want them kept", n)
	}
	push(false)
	if n := count(); n != [3]int{} {
		t.Fatalf("two pushes after the last use: %v, want them swept", n)
	}
}
