package ads

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/generate"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry/serviceentry"
)

// realMeshYAML is a small mesh for the real generators: services in two
// namespaces with two HTTP ports, a DNS service (inline endpoints), and a
// VirtualService with subsets; timeout and addr vary between push contexts.
func realMeshYAML(timeout int, addr string) string {
	var b strings.Builder
	for _, ns := range []string{"default", "prod"} {
		for i := range 6 {
			name := fmt.Sprintf("svc%d", i)
			fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  hosts: [%[1]s.%[2]s.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 9080, name: http-alt, protocol: HTTP}, {number: 5432, name: tcp, protocol: TCP}]
  workloadSelector: {labels: {app: %[1]s}}
---
`, name, ns)
			for j := range 3 {
				ip := fmt.Sprintf("10.%d.%d.%d", len(ns), i, j+1)
				if ns == "default" && i == 0 && j == 0 {
					ip = addr
				}
				fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %[1]s-%[3]d, namespace: %[2]s}
spec:
  address: %[4]s
  locality: region1/zone%[3]d
  labels: {app: %[1]s, version: v%[5]d}
---
`, name, ns, j, ip, j%2+1)
			}
		}
	}
	fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [api.example.com]
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
  endpoints: [{address: a.example.com}, {address: b.example.com}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc0, namespace: default}
spec:
  hosts: [svc0.default.svc.cluster.local]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: svc0.default.svc.cluster.local, subset: v2}}]
  - route:
    - {destination: {host: svc0.default.svc.cluster.local, subset: v1}, weight: 90}
    - {destination: {host: svc0.default.svc.cluster.local, subset: v2}, weight: 10}
    timeout: %ds
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc0, namespace: default}
spec:
  host: svc0.default.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
`, timeout)
	return b.String()
}

func realPushContext(t testing.TB, version string, timeout int, addr string) *model.PushContext {
	t.Helper()
	rs, problems := config.Load("mesh.yaml", []byte(realMeshYAML(timeout, addr)))
	if problems.HasErrors() {
		t.Fatal(problems)
	}
	snap := config.NewSnapshot(rs)
	mesh := model.DefaultMeshConfig()
	return model.NewPushContext(version, mesh, snap, serviceentry.Build(snap, serviceentry.Options{TrustDomain: mesh.TrustDomain}))
}

// realProxies are sidecars in both namespaces.
var realProxies = []string{
	"sidecar~10.7.0.2~svc0-a.default~default.svc.cluster.local",
	"sidecar~10.7.1.2~svc1-a.default~default.svc.cluster.local",
	"sidecar~10.4.2.2~svc2-a.prod~prod.svc.cluster.local",
	"sidecar~10.4.3.3~svc3-a.prod~prod.svc.cluster.local",
}

func parseProxy(t testing.TB, id string) *model.Proxy {
	t.Helper()
	p, err := model.ParseNode(&corev3.Node{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var allTypes = []string{ClusterType, EndpointType, ListenerType, RouteType}

// TestMarshalCacheByteIdentical: every resource marshaled through the cache,
// on first sight, second sight and from the cache, is byte for byte what an
// uncached marshal produces, with the same Delta version; and the shared
// load assignments and virtual hosts really come from the cache.
func TestMarshalCacheByteIdentical(t *testing.T) {
	pc := realPushContext(t, "v1", 5, "10.7.0.1")
	cache := newMarshalCache(pc)
	sharedEDS := map[string]*anypb.Any{}
	for round := range 3 {
		for _, id := range realProxies {
			p := parseProxy(t, id)
			for _, typ := range allTypes {
				t.Run(fmt.Sprintf("round%d/%s/%s", round, p.Namespace+"/"+p.IP(), shortType(typ)), func(t *testing.T) {
					res, err := generate.Generate(pc, p, typ, nil)
					if err != nil || len(res) == 0 {
						t.Fatalf("generate: %v (%d resources)", err, len(res))
					}
					want, wantSize, err := marshalResources(nil, typ, res, true)
					if err != nil {
						t.Fatal(err)
					}
					got, gotSize, err := marshalResources(cache, typ, res, true)
					if err != nil {
						t.Fatal(err)
					}
					if len(got) != len(want) || gotSize != wantSize {
						t.Fatalf("cached: %d resources, %d bytes; uncached: %d, %d", len(got), gotSize, len(want), wantSize)
					}
					for i := range want {
						g, w := got[i], want[i]
						if g.name != w.name || g.version != w.version || g.any.TypeUrl != w.any.TypeUrl || !bytes.Equal(g.any.Value, w.any.Value) {
							t.Fatalf("%s: cached (%s, %x, %d bytes) differs from uncached (%s, %x, %d bytes)",
								w.name, g.name, g.version, len(g.any.Value), w.name, w.version, len(w.any.Value))
						}
						if typ == EndpointType && round > 0 {
							if prev := sharedEDS[g.name]; prev != nil && round == 2 && prev != g.any {
								t.Errorf("%s: load assignment marshaled again in round %d; want the cached one", g.name, round)
							}
							sharedEDS[g.name] = g.any
						}
					}
				})
			}
		}
	}
	hot, vhosts := 0, 0
	for i := range cache.shards {
		for _, w := range cache.shards[i].entries {
			if w == nil {
				continue
			}
			hot++
			if w.any == nil {
				vhosts++
			}
		}
	}
	if hot == 0 || vhosts == 0 {
		t.Fatalf("cache holds %d messages, %d nested (virtual hosts); want both > 0", hot, vhosts)
	}
}

// TestMarshalRouteSplice: a route configuration with fields on both sides of
// virtual_hosts, marshaled from cached virtual hosts, is exactly its
// deterministic marshal; one with unknown fields is marshaled whole.
func TestMarshalRouteSplice(t *testing.T) {
	vh := func(n string) *routev3.VirtualHost {
		return &routev3.VirtualHost{Name: n, Domains: []string{n, n + ":80"}, Routes: []*routev3.Route{{Name: "default", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}}}}
	}
	shared := []*routev3.VirtualHost{vh("a"), vh("b"), vh("c")}
	withUnknown := &routev3.RouteConfiguration{Name: "u", VirtualHosts: shared}
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 999, protowire.VarintType), 7))
	tests := []struct {
		name string
		rc   *routev3.RouteConfiguration
	}{
		{"only vhosts", &routev3.RouteConfiguration{VirtualHosts: shared}},
		{"name and vhosts", &routev3.RouteConfiguration{Name: "80", VirtualHosts: shared}},
		{"fields after vhosts", &routev3.RouteConfiguration{
			Name: "9080", VirtualHosts: shared, InternalOnlyHeaders: []string{"x-internal"},
			ValidateClusters: wrapperspb.Bool(false), ResponseHeadersToRemove: []string{"server"},
			MaxDirectResponseBodySizeBytes: wrapperspb.UInt32(4096),
		}},
		{"no vhosts", &routev3.RouteConfiguration{Name: "empty", ValidateClusters: wrapperspb.Bool(false)}},
		{"unknown fields", withUnknown},
	}
	cache := newMarshalCache(nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := deterministic.Marshal(tt.rc)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 { // miss, second sight (stored), hit
				a, _, err := cache.resource(RouteType, shallowCopy(tt.rc), false)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(a.Value, want) {
					t.Fatalf("marshal %d: %x\nwant %x", i, a.Value, want)
				}
			}
		})
	}
	if p := msgPointer(shared[0]); cache.shard(p).entries[keyOf(p)] == nil {
		t.Fatal("shared virtual host not cached after being seen repeatedly")
	}
}

// shallowCopy is a new message sharing m's fields (a per-proxy route
// configuration of shared virtual hosts).
func shallowCopy(m proto.Message) proto.Message {
	src := m.ProtoReflect()
	dst := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	dst.SetUnknown(src.GetUnknown())
	return dst.Interface()
}

// TestCacheFollowsPushContext: the cache belongs to the current push context;
// a push with a new one replaces it, and a connection still generating from
// the old one gets no cache (it cannot evict the current one).
func TestCacheFollowsPushContext(t *testing.T) {
	s := New(Config{Generate: generate.Generate})
	pc1 := realPushContext(t, "v1", 5, "10.7.0.1")
	if c := s.cacheFor(pc1); c != nil {
		t.Fatal("cache for a push context that is not current")
	}
	s.Push(pc1, nil)
	c1 := s.cacheFor(pc1)
	if c1 == nil || c1.pc != pc1 || s.cacheFor(pc1) != c1 {
		t.Fatalf("cacheFor(current) = %p, want one stable cache of pc1", c1)
	}
	pc2 := realPushContext(t, "v2", 5, "10.7.0.9")
	s.Push(pc2, nil)
	if c := s.cacheFor(pc1); c != nil {
		t.Fatal("old push context still gets a cache")
	}
	c2 := s.cacheFor(pc2)
	if c2 == nil || c2 == c1 || c2.pc != pc2 {
		t.Fatalf("cacheFor(pc2) = %p (old %p), want a new cache of pc2", c2, c1)
	}
	if s.cache.Load() != c2 {
		t.Fatal("server still holds the old cache")
	}
	if New(Config{Generate: generate.Generate, DisableCache: true}).cacheFor(nil) != nil {
		t.Fatal("DisableCache: got a cache")
	}
}

// realGenerate is generate.Generate, answering the tests' barrier requests
// (secrets) with nothing.
func realGenerate(pc *model.PushContext, p *model.Proxy, typeURL string, names []string) ([]model.XDSResource, error) {
	if typeURL == SecretType {
		return nil, nil
	}
	return generate.Generate(pc, p, typeURL, names)
}

// realEnvs starts a server with the cache and one without, both on the real
// generators and the same push contexts.
func realEnvs(t *testing.T) (cached, uncached *env) {
	real := func(disable bool) func(*Config) {
		return func(c *Config) {
			c.Generate = realGenerate
			c.ClusterHost = generate.ClusterHost
			c.DisableCache = disable
		}
	}
	return newEnv(t, newTestMesh(), real(false)), newEnv(t, newTestMesh(), real(true))
}

// TestCachedSotwPushesMatchUncached: SotW proxies of a server with the cache
// receive, at the first push and after a new push context (endpoint moved,
// route changed), byte for byte the resources a server without it sends.
func TestCachedSotwPushesMatchUncached(t *testing.T) {
	cached, uncached := realEnvs(t)
	pcs := []*model.PushContext{realPushContext(t, "v1", 5, "10.7.0.1"), realPushContext(t, "v2", 7, "10.7.0.9")}
	type got map[string][]*anypb.Any // type -> resources, of one proxy at one version
	run := func(e *env) []map[string]got {
		e.ads.Push(pcs[0], nil)
		cc := e.dial(t)
		var clients []*sotwClient
		for _, id := range realProxies {
			c := e.sotw(t, cc, id)
			c.id = id
			clients = append(clients, c)
		}
		out := make([]map[string]got, len(pcs))
		for v := range pcs {
			out[v] = map[string]got{}
			if v > 0 {
				e.ads.Push(pcs[v], nil)
			}
			for _, c := range clients {
				g := got{}
				if v == 0 {
					// Envoy's order: CDS, then EDS for the clusters, LDS, then RDS.
					c.request(ClusterType)
					cds := c.recv()
					c.ack(cds)
					g[ClusterType] = cds.Resources
					c.request(EndpointType, edsNames(t, cds.Resources)...)
					c.request(ListenerType)
					c.request(RouteType, "80", "9080")
				}
				for len(g) < len(allTypes) {
					r := c.recv()
					if r.VersionInfo != pcs[v].Version {
						t.Fatalf("%s: got %s at %s, want %s", c.id, shortType(r.TypeUrl), r.VersionInfo, pcs[v].Version)
					}
					c.ack(r, ackNames(r, g)...)
					g[r.TypeUrl] = r.Resources
				}
				out[v][c.id] = g
			}
		}
		return out
	}
	want, gotCached := run(uncached), run(cached)
	for v := range pcs {
		for _, id := range realProxies {
			for _, typ := range allTypes {
				compareAnys(t, fmt.Sprintf("%s %s %s", pcs[v].Version, id, shortType(typ)), gotCached[v][id][typ], want[v][id][typ])
			}
		}
	}
}

// ackNames are the names an ACK repeats: SotW requests carry the subscription.
func ackNames(r *discoveryv3.DiscoveryResponse, _ any) []string {
	switch r.TypeUrl {
	case RouteType:
		return []string{"80", "9080"}
	case EndpointType:
		var out []string
		for _, a := range r.Resources {
			out = append(out, nameOfAny(a))
		}
		return out
	}
	return nil
}

func nameOfAny(a *anypb.Any) string {
	m, err := a.UnmarshalNew()
	if err != nil {
		return "?"
	}
	return nameOf(m)
}

// edsNames are the EDS clusters among CDS resources.
func edsNames(t *testing.T, cds []*anypb.Any) []string {
	t.Helper()
	var out []string
	for _, a := range cds {
		var c clusterv3.Cluster
		if err := a.UnmarshalTo(&c); err != nil {
			t.Fatal(err)
		}
		if c.GetType() == clusterv3.Cluster_EDS {
			out = append(out, c.Name)
		}
	}
	if len(out) == 0 {
		t.Fatal("no EDS clusters")
	}
	slices.Sort(out)
	return out
}

func compareAnys(t *testing.T, what string, got, want []*anypb.Any) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: uncached server sent nothing", what)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: cached server sent %d resources, uncached %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i].TypeUrl != want[i].TypeUrl || !bytes.Equal(got[i].Value, want[i].Value) {
			t.Fatalf("%s: resource %d (%s) differs: %d bytes cached, %d uncached", what, i, nameOfAny(want[i]), len(got[i].Value), len(want[i].Value))
		}
	}
}

// TestCachedDeltaPushesMatchUncached: Delta proxies of a server with the cache
// receive the same resources, versions and bytes as from a server without it,
// initially and after a new push context.
func TestCachedDeltaPushesMatchUncached(t *testing.T) {
	cached, uncached := realEnvs(t)
	pcs := []*model.PushContext{realPushContext(t, "v1", 5, "10.7.0.1"), realPushContext(t, "v2", 7, "10.7.0.9")}
	type sent struct {
		version string
		value   []byte
	}
	run := func(e *env) []map[string]sent { // per push context: "proxy type name" -> what was sent
		e.ads.Push(pcs[0], nil)
		cc := e.dial(t)
		out := make([]map[string]sent, len(pcs))
		for v := range out {
			out[v] = map[string]sent{}
		}
		record := func(v int, c *deltaClient, r *discoveryv3.DeltaDiscoveryResponse) {
			for _, res := range r.Resources {
				out[v][c.id+" "+shortType(r.TypeUrl)+" "+res.Name] = sent{res.Version, res.Resource.GetValue()}
			}
			for _, n := range r.RemovedResources {
				out[v][c.id+" "+shortType(r.TypeUrl)+" "+n] = sent{version: "removed"}
			}
			c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce})
		}
		// drain records every response up to the answer to a barrier request.
		drain := func(v int, c *deltaClient) {
			c.seq++
			barrier := fmt.Sprintf("barrier-%d", c.seq)
			c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: SecretType, ResourceNamesSubscribe: []string{barrier}})
			for {
				r := c.recv()
				if r.TypeUrl == SecretType {
					c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: SecretType, ResponseNonce: r.Nonce})
					return
				}
				record(v, c, r)
			}
		}
		var clients []*deltaClient
		for _, id := range realProxies {
			c := e.delta(t, cc, id)
			c.id = id
			clients = append(clients, c)
			c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ClusterType})
			cds := c.recv()
			var anys []*anypb.Any
			for _, res := range cds.Resources {
				anys = append(anys, res.Resource)
			}
			record(0, c, cds)
			c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResourceNamesSubscribe: edsNames(t, anys)})
			c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ListenerType})
			c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: RouteType, ResourceNamesSubscribe: []string{"80", "9080"}})
			drain(0, c)
		}
		e.ads.Push(pcs[1], nil)
		for _, c := range clients {
			drain(1, c)
		}
		return out
	}
	want, got := run(uncached), run(cached)
	for v := range pcs {
		if len(want[v]) == 0 {
			t.Fatalf("%s: nothing sent", pcs[v].Version)
		}
		for k, w := range want[v] {
			g, ok := got[v][k]
			if !ok || g.version != w.version || !bytes.Equal(g.value, w.value) {
				t.Errorf("%s %s: cached server sent (%v, %s, %d bytes), uncached (%s, %d bytes)", pcs[v].Version, k, ok, g.version, len(g.value), w.version, len(w.value))
			}
		}
		for k := range got[v] {
			if _, ok := want[v][k]; !ok {
				t.Errorf("%s %s: sent only by the cached server", pcs[v].Version, k)
			}
		}
	}
	// The second push changed svc0's endpoints and route: both must have been sent.
	for _, k := range []string{realProxies[2] + " eds outbound|80||svc0.default.svc.cluster.local", realProxies[2] + " rds 80"} {
		if _, ok := want[1][k]; !ok {
			t.Errorf("second push did not send %s", k)
		}
	}
}

// TestMarshalCacheSweepsMarkers: per-proxy messages leave only markers, which
// are swept once their messages are collected, so the cache does not grow
// with the number of proxies a push serves.
func TestMarshalCacheSweepsMarkers(t *testing.T) {
	cache := newMarshalCache(nil)
	const n = 8 * cacheShards * minSweepAt
	for i := range n {
		vh := &routev3.VirtualHost{Name: fmt.Sprintf("vh%d", i), Domains: []string{"a"}}
		if _, err := cache.sub(vh); err != nil {
			t.Fatal(err)
		}
		if i%(2*minSweepAt) == 0 {
			runtime.GC()
		}
	}
	total := 0
	for i := range cache.shards {
		total += len(cache.shards[i].entries)
	}
	if total > 4*cacheShards*minSweepAt {
		t.Fatalf("%d entries after %d distinct short-lived messages; want markers swept", total, n)
	}
}

// TestNestedBytesKeptAcrossPushes: a virtual host's wire form outlives the
// push context it was marshaled in, so a route configuration assembled after
// the next push reuses the bytes of the virtual hosts that did not change;
// load assignments stay per push.
func TestNestedBytesKeptAcrossPushes(t *testing.T) {
	s := New(Config{Generate: generate.Generate})
	pc1 := realPushContext(t, "v1", 5, "10.7.0.1")
	s.Push(pc1, nil)
	vh := &routev3.VirtualHost{Name: "a", Domains: []string{"a.example"}}
	c1 := s.cacheFor(pc1)
	if _, err := c1.sub(vh); err != nil { // seen once: a marker
		t.Fatal(err)
	}
	b1, err := c1.sub(vh) // seen twice: kept
	if err != nil {
		t.Fatal(err)
	}
	pc2 := realPushContext(t, "v2", 5, "10.7.0.9")
	s.Push(pc2, nil)
	c2 := s.cacheFor(pc2)
	if c2 == c1 {
		t.Fatal("same marshal cache after a new push context")
	}
	b2, err := c2.sub(vh)
	if err != nil {
		t.Fatal(err)
	}
	if &b1[0] != &b2[0] {
		t.Fatal("virtual host re-marshaled after a new push context; want its kept bytes")
	}
	want, _ := deterministic.Marshal(vh)
	if !bytes.Equal(b2, want) {
		t.Fatal("kept bytes differ from a fresh marshal")
	}
	if New(Config{Generate: generate.Generate, DisableCache: true}).nested != nil {
		t.Fatal("DisableCache: got a nested cache")
	}
}

// TestMarshalResourcesSendsAssembledWire: a resource whose wire form the
// generator assembled (model.EncodedWire) is sent as those bytes, with
// their hash as its Delta version, and not marshaled again; the assembled
// form is taken once and shared by every response.
func TestMarshalResourcesSendsAssembledWire(t *testing.T) {
	rc := &routev3.RouteConfiguration{Name: "80", ValidateClusters: wrapperspb.Bool(false)}
	// bytes a marshal of rc cannot produce, so that using them is visible
	assembled := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "assembled")
	enc := model.EncodedWire(assembled)
	res := []model.XDSResource{{Name: "80", Resource: rc, Encoded: enc}}
	var first *anypb.Any
	for i := range 2 {
		out, size, err := marshalResources(newMarshalCache(nil), RouteType, res, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 1 || !bytes.Equal(out[0].any.Value, assembled) || size != len(assembled) {
			t.Fatalf("sent %x (%d bytes), want the assembled %x", out[0].any.Value, size, assembled)
		}
		if out[0].version != hashBytes(assembled) {
			t.Fatalf("version %x, want the assembled bytes' hash %x", out[0].version, hashBytes(assembled))
		}
		if i == 0 {
			first = out[0].any
		} else if out[0].any != first {
			t.Fatal("assembled wire form wrapped again for a second response")
		}
	}
}

// TestMarshalResourcesSendsPiecedWire: a resource the generator assembled
// in pieces is sent as those pieces (its Any without a value), with the
// hash of the joined bytes as its Delta version and their length as its
// size.
func TestMarshalResourcesSendsPiecedWire(t *testing.T) {
	rc := &routev3.RouteConfiguration{Name: "80", ValidateClusters: wrapperspb.Bool(false)}
	assembled := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "assembled in pieces")
	pieces := [][]byte{assembled[:3], assembled[3:10], assembled[10:]}
	res := []model.XDSResource{{Name: "80", Resource: rc, Encoded: model.EncodedWire(pieces...)}}
	out, size, err := marshalResources(newMarshalCache(nil), RouteType, res, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || len(out[0].pieces) != 3 || &out[0].pieces[1][0] != &assembled[3] || len(out[0].any.Value) != 0 || out[0].any.TypeUrl != RouteType {
		t.Fatalf("sent %+v, want the three pieces beside an Any without a value", out)
	}
	if size != len(assembled) || out[0].size() != len(assembled) {
		t.Fatalf("size %d, %d; want %d", size, out[0].size(), len(assembled))
	}
	if out[0].version != hashBytes(assembled) {
		t.Fatalf("version %x, want the joined bytes' hash %x", out[0].version, hashBytes(assembled))
	}
}
