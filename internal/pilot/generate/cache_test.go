package generate

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
	"github.com/mast-mesh/mast/internal/registry/serviceentry"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
	telemetry "istio.io/api/telemetry/v1alpha1"
	typev1beta1 "istio.io/api/type/v1beta1"
)

// oracle compares Cache.Generate with the uncached Generate for every type
// and proxy of one push context: names and wire bytes must be identical.
func oracle(t testing.TB, c *Cache, pc *model.PushContext, proxies []fixtureProxy, step string) {
	t.Helper()
	for _, fp := range proxies {
		p := fp.proxy()
		types := allTypes
		if p.OnDemandRoutes() {
			types = append(slices.Clone(allTypes), VirtualHostType)
		}
		for _, typ := range types {
			var names []string
			if p.IsGRPC() && (typ == ListenerType || typ == RouteType) {
				names = fp.grpcNames
			}
			if typ == VirtualHostType {
				names = vhdsProbeNames(t, pc, p)
			}
			want, err := Generate(pc, p, typ, names)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Generate(pc, p, typ, names)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := namesOf(got), namesOf(want); !slices.Equal(a, b) {
				t.Fatalf("%s: %s %s: cached names %v, uncached %v", step, fp.name, typ, a, b)
			}
			for i := range want {
				x, y := wire(t, got[i].Resource), wire(t, want[i].Resource)
				if !bytes.Equal(x, y) {
					t.Fatalf("%s: %s %s %q: cached resource differs from a fresh one", step, fp.name, typ, want[i].Name)
				}
				if enc := got[i].Encoded; enc != nil && enc.Wire() != nil {
					if !bytes.Equal(bytes.Join(enc.Wire(), nil), y) {
						t.Fatalf("%s: %s %s %q: assembled wire form differs from the fresh resource's encoding", step, fp.name, typ, want[i].Name)
					}
					assembledChecked.Add(1)
					if len(enc.Wire()) > 1 {
						piecedChecked.Add(1)
					}
				}
			}
		}
	}
}

// assembledChecked counts the resources whose assembled wire form (the
// cache's, model.EncodedWire) oracle compared, so tests can require some.
var assembledChecked atomic.Int64

// piecedChecked counts those of them in more than one piece (referencing
// an earlier assembly's bytes).
var piecedChecked atomic.Int64

func namesOf(rs []model.XDSResource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Name
	}
	return out
}

func wire(t testing.TB, m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cacheProxies are the fixture proxies, plus sidecars holding a workload
// certificate (auto mTLS reads endpoints' service accounts).
func cacheProxies() []fixtureProxy {
	out := slices.Clone(fixtureProxies)
	out = append(out,
		fixtureProxy{name: "sidecar_mtls", proxy: func() *model.Proxy { return withCert(productpageProxy()) }},
		fixtureProxy{name: "sidecar_other_mtls", proxy: func() *model.Proxy { return withCert(otherProxy()) }},
		// sidecars in productpage's namespace with other labels: routes
		// differ by sourceLabels and workload selectors
		fixtureProxy{name: "sidecar_ratings", proxy: func() *model.Proxy { return relabel(productpageProxy(), "10.1.0.5", "ratings", "v1") }},
		fixtureProxy{name: "sidecar_reviews_v2", proxy: func() *model.Proxy { return relabel(productpageProxy(), "10.1.0.3", "reviews", "v2") }},
		// sidecars taking their virtual hosts on demand (VHDS)
		fixtureProxy{name: "sidecar_vhds", proxy: func() *model.Proxy { return onDemand(productpageProxy()) }},
		fixtureProxy{name: "sidecar_other_vhds", proxy: func() *model.Proxy { return onDemand(otherProxy()) }},
		fixtureProxy{name: "sidecar_none_vhds", proxy: func() *model.Proxy { return onDemand(reviewsNoneProxy()) }},
		fixtureProxy{name: "sidecar_none_egress_vhds", proxy: func() *model.Proxy { return onDemand(egressNoneProxy()) }},
		fixtureProxy{name: "sidecar_reviews_v2_vhds", proxy: func() *model.Proxy {
			return onDemand(relabel(productpageProxy(), "10.1.0.3", "reviews", "v2"))
		}},
	)
	return out
}

func relabel(p *model.Proxy, ip, app, version string) *model.Proxy {
	p.ID = "sidecar~" + ip + "~" + app + "." + p.Namespace + "~" + p.Namespace + ".svc.cluster.local"
	p.IPAddresses = []string{ip}
	p.Labels = map[string]string{"app": app, "version": version}
	return p
}

// mutateEndpoints returns a copy of reg with one endpoint of the host at
// index h changed by op, sharing everything else (as registry.Reuse would).
func mutateEndpoints(reg *registry.Snapshot, h, op int) *registry.Snapshot {
	hosts := slices.Sorted(maps.Keys(reg.Endpoints))
	if len(hosts) == 0 {
		return reg
	}
	host := hosts[h%len(hosts)]
	next := &registry.Snapshot{Services: reg.Services, Endpoints: maps.Clone(reg.Endpoints)}
	eps := slices.Clone(reg.Endpoints[host])
	if len(eps) == 0 {
		return reg
	}
	e := *eps[0]
	switch op % 6 {
	case 0:
		e.Address = fmt.Sprintf("10.9.%d.%d", h%250, op%250)
	case 1:
		e.ServiceAccount = fmt.Sprintf("sa-%d", op)
	case 2:
		e.Weight = uint32(op%7 + 1)
	case 3:
		e.Labels = map[string]string{"app": "x", "version": fmt.Sprintf("v%d", op%3+1)}
	case 4:
		e.Port = uint32(8000 + op%3)
	case 5:
		eps = eps[1:] // remove one
		next.Endpoints[host] = eps
		return next
	}
	eps[0] = &e
	next.Endpoints[host] = eps
	return next
}

func without(rs []config.Resource, i int) []config.Resource {
	return append(append([]config.Resource{}, rs[:i]...), rs[i+1:]...)
}

// cacheConfig is the fixture configuration with DestinationRules that give
// services without VirtualServices hash policies (their default virtual
// hosts read them), one for some of the proxies of a namespace only
// (workload selector): which rule applies is then an input of a layout's
// kept default entries (defaultsKey).
func cacheConfig() []config.Resource {
	hash := func(host string, header string, sel map[string]string) *networking.DestinationRule {
		dr := &networking.DestinationRule{Host: host, TrafficPolicy: &networking.TrafficPolicy{
			LoadBalancer: &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_ConsistentHash{ConsistentHash: &networking.LoadBalancerSettings_ConsistentHashLB{
				HashKey: &networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName{HttpHeaderName: header},
			}}},
		}}
		if sel != nil {
			dr.WorkloadSelector = &typev1beta1.WorkloadSelector{MatchLabels: sel}
		}
		return dr
	}
	return append(bookinfoConfig(),
		res(config.DestinationRule, "default", "details-for-ratings", hash("details", "x-ratings", map[string]string{"app": "ratings"})),
		res(config.DestinationRule, "default", "productpage-hash", hash("productpage", "x-user", nil)),
		res(config.DestinationRule, "other", "httpbin-hash", hash("httpbin.other.svc.cluster.local", "x-other", nil)),
	)
}

// TestCacheOracle runs one cache through a sequence of pushes over the
// fixture mesh: each configuration resource removed and restored, then
// endpoint changes of every kind, checking every proxy's every type against
// the uncached generators at each push. Each push context is new, or
// follows the last one (model.NextPushContext, as mastd makes them: sidecar
// scopes carried over, so route layouts and their kept default entries
// are too).
func TestCacheOracle(t *testing.T) {
	t.Run("new", func(t *testing.T) { cacheOracle(t, false) })
	t.Run("next", func(t *testing.T) { cacheOracle(t, true) })
}

func cacheOracle(t *testing.T, next bool) {
	c := NewCache(CacheConfig{})
	proxies := cacheProxies()
	rs := cacheConfig()
	reg := bookinfoRegistry()
	full := configSnapshot(rs)
	var prev *model.PushContext
	push := func(cfg *config.Snapshot, step string) {
		pc := model.NewPushContext("v", model.DefaultMeshConfig(), cfg, reg)
		if next {
			pc = model.NextPushContext(prev, "v", model.DefaultMeshConfig(), cfg, reg)
			prev = pc
		}
		oracle(t, c, pc, proxies, step)
	}
	before := assembledChecked.Load()
	push(full, "initial")
	push(full, "again (all hits)")
	if s := c.Stats(); s.Hits == 0 || s.Entries == 0 {
		t.Fatalf("a second identical push hit nothing: %+v", s)
	}
	if assembledChecked.Load() == before {
		t.Fatal("no route configuration served in assembled wire form")
	}
	pieced := piecedChecked.Load()
	for i, r := range rs {
		removed, restored := configSnapshot(without(rs, i)), full
		if next { // as mastd's store: the other kinds' lists kept
			removed = full.Update(nil, []config.Key{r.Key()})
			restored = removed.Update([]config.Resource{r}, nil)
		}
		push(removed, "remove "+r.Key().String())
		push(restored, "restore "+r.Key().String())
	}
	if piecedChecked.Load() == pieced {
		t.Fatal("no route configuration served in pieces after a change")
	}
	for h := range len(reg.Endpoints) {
		for op := range 6 {
			reg = registry.Reuse(reg, mutateEndpoints(reg, h, op+h))
			push(full, fmt.Sprintf("endpoint change %d/%d", h, op))
		}
	}
	if s := c.Stats(); s.Mismatches != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestCacheOracleTraced: a tracing mesh's routes carry span names; the
// cache serves them decorated, byte-identical to a fresh generation, and
// shares their bytes between proxies instead of copying them per proxy.
func TestCacheOracleTraced(t *testing.T) {
	c := NewCache(CacheConfig{})
	proxies := cacheProxies()
	pc := model.NewPushContext("v", tracingMesh(), configSnapshot(bookinfoConfig()), bookinfoRegistry())
	oracle(t, c, pc, proxies, "traced")
	oracle(t, c, pc, proxies, "traced again")
	decorated, shared := 0, 0
	for _, fp := range proxies {
		p := fp.proxy()
		if p.IsGRPC() || p.Type == model.Router {
			continue
		}
		rs, err := c.Generate(pc, p, RouteType, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Encoded != nil {
				shared++
			}
			for _, vh := range r.Resource.(*routev3.RouteConfiguration).GetVirtualHosts() {
				for _, rt := range vh.GetRoutes() {
					if rt.GetDecorator().GetOperation() != "" {
						decorated++
					}
				}
			}
		}
	}
	if decorated == 0 || shared == 0 {
		t.Fatalf("traced sidecar routes: %d decorated routes, %d served from the cache's bytes; want both", decorated, shared)
	}
}

// TestCacheInvalidatesOnlyWhatChanged: a VirtualService change leaves every
// cluster and load assignment cached; an endpoint change of one host misses
// only that host's entries.
func TestCacheInvalidatesOnlyWhatChanged(t *testing.T) {
	c := NewCache(CacheConfig{})
	rs := bookinfoConfig()
	reg := bookinfoRegistry()
	p := withCert(productpageProxy())
	gen := func(cfg *config.Snapshot, typ string) {
		if _, err := c.Generate(model.NewPushContext("v", model.DefaultMeshConfig(), cfg, reg), p, typ, nil); err != nil {
			t.Fatal(err)
		}
	}
	full := configSnapshot(rs)
	gen(full, ClusterType)
	gen(full, EndpointType)
	vs := slices.IndexFunc(rs, func(r config.Resource) bool { return r.Kind == config.VirtualService })
	before := c.Stats().Misses
	noVS := configSnapshot(without(rs, vs))
	gen(noVS, ClusterType)
	gen(noVS, EndpointType)
	if got := c.Stats().Misses - before; got != 0 {
		t.Fatalf("a VirtualService change missed %d cluster/endpoint entries, want 0", got)
	}
	const host = "ratings.default.svc.cluster.local"
	next := &registry.Snapshot{Services: reg.Services, Endpoints: maps.Clone(reg.Endpoints)}
	e := *reg.Endpoints[host][0]
	e.Address = "10.7.7.7"
	next.Endpoints[host] = []*registry.Endpoint{&e}
	reg = registry.Reuse(reg, next)
	before = c.Stats().Misses
	gen(noVS, ClusterType)
	gen(noVS, EndpointType)
	if got := c.Stats().Misses - before; got == 0 || got > 4 {
		t.Fatalf("an endpoint change of %s missed %d entries, want its cluster and load assignment", host, got)
	}
}

// TestCacheOracleTestdata removes and restores every resource of every
// configuration in the tree's testdata and samples, through the ServiceEntry
// registry as mastd builds it, with one cache across all pushes.
func TestCacheOracleTestdata(t *testing.T) {
	var files []string
	for _, glob := range []string{"../../config/testdata/valid/*.yaml", "../../config/testdata/warn/*.yaml", "../../../samples/bookinfo/networking/*.yaml"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 10 {
		t.Fatalf("found %d configuration files; the globs are stale", len(files))
	}
	c := NewCache(CacheConfig{})
	mesh := model.DefaultMeshConfig()
	opts := serviceentry.Options{TrustDomain: mesh.TrustDomain, DomainSuffix: mesh.DomainSuffix}
	proxies := cacheProxies()
	var reg *registry.Snapshot
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rs, problems := config.Load(f, data)
		if problems.HasErrors() || len(rs) == 0 {
			continue
		}
		push := func(rs []config.Resource, step string) {
			cfg := config.NewSnapshot(rs)
			reg = registry.Reuse(reg, serviceentry.Build(cfg, opts))
			oracle(t, c, model.NewPushContext("v", mesh, cfg, reg), proxies, filepath.Base(f)+": "+step)
		}
		push(rs, "all")
		for i, r := range rs {
			push(without(rs, i), "remove "+r.Key().String())
			push(rs, "restore "+r.Key().String())
		}
	}
}

// FuzzCacheOracle drives one cache through pushes chosen by the input:
// configuration resources removed or restored, endpoints changed. Cached
// output must stay byte-identical to the uncached generators.
func FuzzCacheOracle(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3})
	f.Add([]byte{10, 11, 200, 7, 7, 31})
	f.Add([]byte{255, 128, 64, 32, 16, 8, 4, 2, 1})
	f.Add([]byte{36, 38, 40, 36, 38, 40})
	rs := cacheConfig()
	proxies := cacheProxies()
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 24 {
			ops = ops[:24]
		}
		c := NewCache(CacheConfig{})
		reg := bookinfoRegistry()
		// as mastd: each push context follows the last, and each snapshot
		// keeps the lists of the kinds a change left alone
		var prev *model.PushContext
		cur := config.NewSnapshot(rs)
		present := make([]bool, len(rs))
		for i := range present {
			present[i] = true
		}
		for step, b := range ops {
			switch b % 2 {
			case 0:
				i := int(b/2) % len(rs)
				present[i] = !present[i]
				if present[i] {
					cur = cur.Update([]config.Resource{rs[i]}, nil)
				} else {
					cur = cur.Update(nil, []config.Key{rs[i].Key()})
				}
			case 1:
				reg = registry.Reuse(reg, mutateEndpoints(reg, int(b/12), int(b/2)+step))
			}
			prev = model.NextPushContext(prev, "v", model.DefaultMeshConfig(), cur, reg)
			oracle(t, c, prev, proxies, fmt.Sprintf("step %d (op %d)", step, b))
			if b%3 == 0 {
				c.Idle() // the fan-out is complete: sweep now (as mastd does)
			}
		}
	})
}

// TestCacheSelfCheck: with SelfCheck, a cached entry that no longer matches
// its generator is caught, counted and replaced.
func TestCacheSelfCheck(t *testing.T) {
	c := NewCache(CacheConfig{SelfCheck: 1})
	pc := bookinfoPush()
	p := productpageProxy()
	if _, err := c.Generate(pc, p, ClusterType, nil); err != nil {
		t.Fatal(err)
	}
	// Corrupt one entry as a key missing an input would: same key, other content.
	c.entries.Range(func(k, v any) bool {
		if ck, ok := k.(clusterKey); ok && ck.subset == "" {
			cl := proto.Clone(v.(*cacheEntry).msg)
			old := v.(*cacheEntry)
			e := &cacheEntry{msg: cl, enc: &model.Encoded{}, kind: old.kind}
			e.once.Do(func() {}) // built
			e.used.Store(old.used.Load())
			cl.ProtoReflect().Set(cl.ProtoReflect().Descriptor().Fields().ByName("alt_stat_name"), protoreflectString("stale"))
			c.entries.Store(k, e)
			return false
		}
		return true
	})
	got, err := c.Generate(pc, p, ClusterType, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Generate(pc, p, ClusterType, nil)
	for i := range want {
		if !bytes.Equal(wire(t, got[i].Resource), wire(t, want[i].Resource)) {
			t.Fatalf("self-check served the stale %q", want[i].Name)
		}
	}
	if s := c.Stats(); s.Mismatches != 1 || s.Checks == 0 {
		t.Fatalf("stats %+v, want one mismatch", s)
	}
}

// TestCacheSelfCheckAssembledRoute: the self-check compares a route
// configuration's assembled wire form, not only its message, with a fresh
// one, and serves the fresh one when they differ.
func TestCacheSelfCheckAssembledRoute(t *testing.T) {
	c := NewCache(CacheConfig{SelfCheck: 1})
	pc := bookinfoPush()
	p := productpageProxy()
	if _, err := c.Generate(pc, p, RouteType, nil); err != nil {
		t.Fatal(err)
	}
	corrupted := ""
	c.entries.Range(func(k, v any) bool {
		old := v.(*cacheEntry)
		if _, ok := k.(routeKey); !ok || old.enc == nil || old.enc.Wire() == nil {
			return true
		}
		stale := append(slices.Clone(old.enc.Wire()), []byte{0x08, 0x01}) // a field more
		e := &cacheEntry{msg: old.msg, enc: model.EncodedWire(stale...), kind: old.kind}
		e.once.Do(func() {}) // built
		e.used.Store(old.used.Load())
		c.entries.Store(k, e)
		corrupted = k.(routeKey).name
		return false
	})
	if corrupted == "" {
		t.Fatal("no assembled route configuration in the cache")
	}
	got, err := c.Generate(pc, p, RouteType, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Generate(pc, p, RouteType, nil)
	for i := range want {
		if got[i].Name != corrupted {
			continue
		}
		if w := got[i].Encoded.Wire(); w != nil && !bytes.Equal(bytes.Join(w, nil), wire(t, want[i].Resource)) {
			t.Fatalf("self-check served the stale bytes of %q", corrupted)
		}
	}
	if s := c.Stats(); s.Mismatches != 1 {
		t.Fatalf("stats %+v, want one mismatch", s)
	}
}

func protoreflectString(s string) protoreflect.Value { return protoreflect.ValueOfString(s) }

// TestCacheKeepsRoutesThroughEndpointPushes: push contexts that generate
// only load assignments do not age route configurations and their virtual
// hosts out of the cache; the next route generation is all hits.
func TestCacheKeepsRoutesThroughEndpointPushes(t *testing.T) {
	cfg, reg := config.NewSnapshot(bookinfoConfig()), bookinfoRegistry()
	push := func(v string) *model.PushContext {
		return model.NewPushContext(v, model.DefaultMeshConfig(), cfg, reg)
	}
	c := NewCache(CacheConfig{})
	p := productpageProxy()
	if _, err := c.Generate(push("v1"), p, RouteType, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := c.Generate(push(fmt.Sprint("eds", i)), p, EndpointType, []string{"outbound|9080||reviews.default.svc.cluster.local"}); err != nil {
			t.Fatal(err)
		}
	}
	before := c.Stats()
	got, err := c.Generate(push("v2"), p, RouteType, nil)
	if err != nil || len(got) == 0 {
		t.Fatalf("routes: %v, %d resources", err, len(got))
	}
	if after := c.Stats(); after.Misses != before.Misses {
		t.Fatalf("%d route cache misses after endpoint-only pushes, want none", after.Misses-before.Misses)
	}
	// Two push contexts that generate routes without a key age it out.
	other := productpageProxy()
	other.Namespace = "elsewhere"
	for i := range 2 {
		if _, err := c.Generate(push(fmt.Sprint("rds", i)), other, RouteType, nil); err != nil {
			t.Fatal(err)
		}
	}
	c.state(push("v3"))
	n := 0
	c.entries.Range(func(k, _ any) bool {
		if rk, ok := k.(routeKey); ok && rk.namespace == "default" {
			n++
		}
		return true
	})
	if n != 0 {
		t.Fatalf("%d route entries of the unused namespace kept, want them dropped", n)
	}
}

// TestCacheBuildsEachEntryOnce: proxies of one push generating at the same
// time (a push wakes every connection) share each entry's build: a cache
// filled concurrently by many proxies builds exactly as many entries as one
// filled by a single proxy, and serves them byte-identical to the oracle.
func TestCacheBuildsEachEntryOnce(t *testing.T) {
	want := NewCache(CacheConfig{})
	for _, typ := range []string{ClusterType, EndpointType, RouteType} {
		if _, err := want.Generate(bookinfoPush(), productpageProxy(), typ, nil); err != nil {
			t.Fatal(err)
		}
	}
	c := NewCache(CacheConfig{})
	pc := bookinfoPush()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range 12 {
		for _, typ := range []string{ClusterType, EndpointType, RouteType} {
			wg.Go(func() {
				<-start
				if _, err := c.Generate(pc, productpageProxy(), typ, nil); err != nil {
					t.Error(err)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	if got, w := c.Stats().Misses, want.Stats().Misses; got != w {
		t.Fatalf("%d builds by 12 concurrent proxies, want %d (one per entry)", got, w)
	}
	oracle(t, c, pc, []fixtureProxy{{name: "productpage", proxy: productpageProxy}}, "concurrent")
}

// TestCacheOracleTracedPerWorkload: proxies of one namespace and scope of
// which one traces and one does not (a workload's Telemetry) share a route
// layout; their default virtual hosts differ (decorators) and each keeps
// its own across VirtualService changes, byte-identical to a fresh
// generation.
func TestCacheOracleTracedPerWorkload(t *testing.T) {
	c := NewCache(CacheConfig{})
	v1 := func() *model.Proxy { return relabel(productpageProxy(), "10.1.0.2", "reviews", "v1") }
	proxies := append(cacheProxies(), fixtureProxy{name: "sidecar_reviews_v1", proxy: v1}) // sidecar_reviews_v2 is there
	rs := append(cacheConfig(), res(config.Telemetry, "default", "reviews-v2-quiet", &telemetry.Telemetry{
		Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "reviews", "version": "v2"}},
		Tracing:  []*telemetry.Tracing{{DisableSpanReporting: wrapperspb.Bool(true)}},
	}))
	reg := bookinfoRegistry()
	cur := config.NewSnapshot(rs)
	pc := model.NextPushContext(nil, "v", tracingMesh(), cur, reg)
	if v2 := relabel(productpageProxy(), "10.1.0.3", "reviews", "v2"); !pc.Traced(v1()) || pc.Traced(v2) {
		t.Fatalf("reviews v1 traced %v, v2 %v: want v1 only", pc.Traced(v1()), pc.Traced(v2))
	}
	oracle(t, c, pc, proxies, "initial")
	for i, r := range rs {
		if r.Kind != config.VirtualService {
			continue
		}
		cur = cur.Update(nil, []config.Key{r.Key()})
		pc = model.NextPushContext(pc, "v", tracingMesh(), cur, reg)
		oracle(t, c, pc, proxies, "remove "+r.Key().String())
		cur = cur.Update([]config.Resource{rs[i]}, nil)
		pc = model.NextPushContext(pc, "v", tracingMesh(), cur, reg)
		oracle(t, c, pc, proxies, "restore "+r.Key().String())
	}
}
