package generate

import (
	"bytes"
	"context"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

// Cache keeps generated resources across pushes and shares them, with their
// wire form, between the proxies that need the same one (Istio's XdsCache).
// It caches the resources that are many and alike across proxies: outbound
// clusters, load assignments, sidecar route configurations and their default
// virtual hosts. Each is keyed by an explicit struct of exactly the inputs
// its generator reads (clusterKey, edsKey, routeKey, defaultVhostKey), never
// by the proxy; a change invalidates only the entries whose inputs it
// touched, because their key no longer occurs. An entry is dropped once two
// push contexts have looked up its kind of key without it: a push of
// endpoints alone ages load assignments, not route configurations.
//
// Identity stands for version in the keys: a service, an endpoint list, a
// DestinationRule's spec are the same pointer as long as they are unchanged
// (config snapshots keep the resources of unchanged files, and mastd's
// pipeline keeps unchanged services and endpoint lists with
// registry.Reuse); kind-wide inputs (PeerAuthentications, all routing
// configuration, the service list) are versioned by an epoch that changes
// when any of their members does. Keys hold what they name, so an address is
// never reused for something else while a key names it.
//
// The uncached Generate is the oracle: Cache.Generate's output is
// byte-identical to it (TestCacheOracle, FuzzCacheOracle), and with
// CacheConfig.SelfCheck a sample of cache hits is regenerated and compared
// at run time.
type Cache struct {
	cfg     CacheConfig
	entries sync.Map // key -> *cacheEntry
	uses    sync.Map // key type -> *keyUse
	indexes sync.Map // domainLineage -> *domainIndex, the latest of each lineage
	tables  sync.Map // portTableKey -> *portTable
	layouts sync.Map // portTableKey -> *portLayout

	mu   sync.Mutex // guards the fields below
	prev inputsSeen
	gen  uint64 // counts push contexts seen
	// swept is the generation the last sweep was for: the sweep at the
	// start of generation g, or Idle's after g's fan-out, for g+1.
	swept uint64

	hits, misses, checks, mismatches atomic.Uint64
	lookups                          atomic.Uint64
}

// CacheConfig configures a Cache.
type CacheConfig struct {
	// SelfCheck, when positive, regenerates one in SelfCheck cache hits
	// without the cache and compares the wire forms; a mismatch is logged at
	// ERROR, counted, and the fresh resource is served and cached instead.
	SelfCheck int
	Logger    *slog.Logger
}

// NewCache returns an empty cache.
func NewCache(cfg CacheConfig) *Cache {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Cache{cfg: cfg}
}

// CacheStats are counters since the cache was made.
type CacheStats struct {
	Entries                          int
	Hits, Misses, Checks, Mismatches uint64
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	n := 0
	c.entries.Range(func(_, _ any) bool { n++; return true })
	return CacheStats{Entries: n, Hits: c.hits.Load(), Misses: c.misses.Load(), Checks: c.checks.Load(), Mismatches: c.mismatches.Load()}
}

// Generate is Generate through the cache. It implements model.GenerateFunc.
func (c *Cache) Generate(pc *model.PushContext, p *model.Proxy, typeURL string, names []string) ([]model.XDSResource, error) {
	return generate(pc, p, typeURL, names, c)
}

var _ model.GenerateFunc = (*Cache)(nil).Generate

type cacheEntry struct {
	once sync.Once // builds msg and enc
	msg  proto.Message
	enc  *model.Encoded
	kind *keyUse
	used atomic.Uint64 // kind.count when it was last used

	wireOnce sync.Once // marshals wire (wireForm)
	wire     []byte
	wireErr  error
}

// keyUse counts the push contexts that looked up one kind of key (a key
// type), the clock by which entries of that kind age.
type keyUse struct {
	last  atomic.Uint64 // the cache generation it was last looked up in
	count atomic.Uint64 // cache generations it was looked up in
}

// use notes a lookup in cache generation gen and returns the count.
func (u *keyUse) use(gen uint64) uint64 {
	for {
		l := u.last.Load()
		if l >= gen {
			return u.count.Load()
		}
		if u.last.CompareAndSwap(l, gen) {
			return u.count.Add(1)
		}
	}
}

func (c *Cache) keyUse(key any) *keyUse {
	t := reflect.TypeOf(key)
	if v, ok := c.uses.Load(t); ok {
		return v.(*keyUse)
	}
	v, _ := c.uses.LoadOrStore(t, &keyUse{})
	return v.(*keyUse)
}

// epoch versions a kind-wide input; a new one is made whenever the input
// changes. It has a field so that distinct epochs have distinct addresses.
type epoch struct{ n uint64 }

// inputsSeen are the kind-wide inputs of one push context.
type inputsSeen struct {
	mesh model.MeshConfig
	inputs
	services []*registry.Service

	routingEpoch, securityEpoch, servicesEpoch, rulesEpoch *epoch
	gen                                                    uint64
}

// inputs are the configuration resources a push context's kind-wide inputs
// are made of.
type inputs struct {
	routing  []resourceRef // every configuration resource but the registry's
	security []resourceRef // PeerAuthentications
	rules    []resourceRef // DestinationRules
	// sourceSelectors are every sourceLabels of every VirtualService match
	// and every DestinationRule workloadSelector: the only ways a route
	// depends on the proxy's labels besides the Sidecar that applies.
	sourceSelectors []map[string]string
	// ruleSelectors are the DestinationRules' workloadSelectors: the only
	// way which DestinationRule applies depends on the proxy's labels.
	ruleSelectors []map[string]string
}

type resourceRef struct {
	key  config.Key
	spec proto.Message
}

// cacheState is the per-push-context view of the kind-wide inputs.
type cacheState struct {
	routing, security, services *epoch
	// rules versions the DestinationRules and the mesh: which
	// DestinationRule applies to a host, given the proxy's namespace and
	// its labels against ruleSelectors.
	rules                          *epoch
	sourceSelectors, ruleSelectors []map[string]string
	gen                            uint64
	// vhds are this push context's VHDS resources of sidecars with
	// capture: vhdsMemoKey -> model.XDSResource (cachedVirtualHost).
	vhds sync.Map
}

type cacheStateKey struct{ c *Cache }

// state returns pc's kind-wide input versions, computing them once per push
// context; a new push context also sweeps entries left unused, unless Idle
// did so after the last fan-out.
func (c *Cache) state(pc *model.PushContext) *cacheState {
	return pc.Memo(cacheStateKey{c}, func() any { return c.newState(pc) }).(*cacheState)
}

func (c *Cache) newState(pc *model.PushContext) *cacheState {
	var in inputs
	for _, k := range pc.Config.Kinds() {
		switch k {
		case config.ServiceEntry, config.WorkloadEntry, config.WorkloadGroup:
			continue // the registry snapshot: versioned by identity
		}
		for _, r := range pc.Config.List(k) {
			in.note(r)
		}
	}
	var services []*registry.Service
	if pc.Registry != nil {
		services = pc.Registry.Services
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	meshSame := reflect.DeepEqual(c.prev.mesh, pc.Mesh) && c.prev.gen > 0
	next := inputsSeen{mesh: pc.Mesh, inputs: in, services: services, gen: c.gen}
	next.routingEpoch = c.prev.routingEpoch
	if !meshSame || next.routingEpoch == nil || !sameRefs(c.prev.routing, in.routing) {
		next.routingEpoch = &epoch{c.gen}
	}
	next.securityEpoch = c.prev.securityEpoch
	if !meshSame || next.securityEpoch == nil || !sameRefs(c.prev.security, in.security) {
		next.securityEpoch = &epoch{c.gen}
	}
	next.rulesEpoch = c.prev.rulesEpoch
	if !meshSame || next.rulesEpoch == nil || !sameRefs(c.prev.rules, in.rules) {
		next.rulesEpoch = &epoch{c.gen}
	}
	next.servicesEpoch = c.prev.servicesEpoch
	if next.servicesEpoch == nil || !samePointers(c.prev.services, services) {
		next.servicesEpoch = &epoch{c.gen}
	}
	c.prev = next
	if c.swept < c.gen {
		c.sweep(c.gen)
	}
	return &cacheState{routing: next.routingEpoch, security: next.securityEpoch, services: next.servicesEpoch, rules: next.rulesEpoch,
		sourceSelectors: in.sourceSelectors, ruleSelectors: in.ruleSelectors, gen: c.gen}
}

// Idle is told that a push's fan-out is complete (ads.Config.Idle): it
// sweeps then what the next push context would sweep at its start, while
// every proxy's first generate of that push context would wait for it
// (the sweep ranges over every entry, ~2 ms at a thousand services, under
// c.mu, which state's memo holds). Entries age by their kind's lookups,
// which a sweep after generation g's fan-out counts exactly as one at the
// start of g+1 does, so it drops the same ones. It does not wait: when the
// next push context is being set up (c.mu held), that one sweeps instead.
// A push that started before Idle ran (a late Idle) can find an entry it
// was about to use swept; it is then built again, never wrong.
func (c *Cache) Idle() {
	if !c.mu.TryLock() {
		return
	}
	defer c.mu.Unlock()
	if c.gen == 0 || c.swept > c.gen {
		return
	}
	c.sweep(c.gen + 1)
}

// sweep drops the entries unused by the last two push contexts that used
// their kind, and the domain indexes, port tables and port layouts unused
// for two push contexts, for generation gen (the one about to generate):
// on every push, at its start or after the last fan-out (Idle). (Sweeping
// only once the entries added since the last sweep reached a quarter of
// those kept let whole-response garbage pile up across many pushes:
// test/e2e TestSlowXDSClients saw mastd's heap peak grow by 40 MiB over 25
// pushes.) Called with c.mu held.
func (c *Cache) sweep(gen uint64) {
	c.swept = gen
	c.entries.Range(func(k, v any) bool {
		if e := v.(*cacheEntry); e.kind != nil && e.kind.count.Load()-e.used.Load() >= 2 {
			c.entries.Delete(k)
		}
		return true
	})
	for _, m := range []*sync.Map{&c.indexes, &c.tables, &c.layouts} {
		m.Range(func(k, v any) bool {
			if v.(derived).unusedSince(gen) {
				m.Delete(k)
			}
			return true
		})
	}
}

// derived is a structure the cache derives from a push context's inputs
// and keeps across push contexts while they use it: a domain index, a port
// table, a port layout.
type derived interface {
	used(gen uint64)
	unusedSince(gen uint64) bool
}

// lastUsed records the cache generation that last used a derived
// structure; embedded, it makes the structure a derived.
type lastUsed struct{ gen atomic.Uint64 }

func (u *lastUsed) used(gen uint64) {
	if u.gen.Load() != gen {
		u.gen.Store(gen)
	}
}

// unusedSince: the last two push contexts up to gen did not use it.
func (u *lastUsed) unusedSince(gen uint64) bool { return gen-u.gen.Load() >= 2 }

// loadOrBuild returns m's structure for key, built and stored when absent,
// marked used by generation gen.
func loadOrBuild[T derived](m *sync.Map, key any, gen uint64, build func() T) T {
	v, ok := m.Load(key)
	if !ok {
		v, _ = m.LoadOrStore(key, build())
	}
	t := v.(T)
	t.used(gen)
	return t
}

// note adds a configuration resource to the kind-wide inputs: every one to
// routing, PeerAuthentications to security, DestinationRules to rules, and
// the selectors that make a route depend on the proxy's labels.
func (in *inputs) note(r config.Resource) {
	ref := resourceRef{r.Key(), r.Spec}
	switch r.Kind {
	case config.PeerAuthentication:
		in.security = append(in.security, ref)
	case config.VirtualService:
		in.sourceSelectors = appendSourceSelectors(in.sourceSelectors, r.Spec)
	case config.DestinationRule:
		in.rules = append(in.rules, ref)
		// which DestinationRule applies depends on the proxy's labels
		if dr, ok := r.Spec.(*networking.DestinationRule); ok && dr.GetWorkloadSelector() != nil {
			in.sourceSelectors = append(in.sourceSelectors, dr.GetWorkloadSelector().GetMatchLabels())
			in.ruleSelectors = append(in.ruleSelectors, dr.GetWorkloadSelector().GetMatchLabels())
		}
	}
	in.routing = append(in.routing, ref)
}

func sameRefs(a, b []resourceRef) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].key != b[i].key || a[i].spec != b[i].spec {
			return false
		}
	}
	return true
}

func samePointers[T any](a, b []*T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// appendSourceSelectors adds the sourceLabels of every match of a VirtualService.
func appendSourceSelectors(out []map[string]string, spec proto.Message) []map[string]string {
	vs, ok := spec.(*networking.VirtualService)
	if !ok {
		return out
	}
	for _, r := range vs.GetHttp() {
		for _, m := range r.GetMatch() {
			if len(m.GetSourceLabels()) > 0 {
				out = append(out, m.GetSourceLabels())
			}
		}
	}
	for _, r := range vs.GetTcp() {
		for _, m := range r.GetMatch() {
			if len(m.GetSourceLabels()) > 0 {
				out = append(out, m.GetSourceLabels())
			}
		}
	}
	for _, r := range vs.GetTls() {
		for _, m := range r.GetMatch() {
			if len(m.GetSourceLabels()) > 0 {
				out = append(out, m.GetSourceLabels())
			}
		}
	}
	return out
}

// lookup returns the cached resource for key, building it on a miss. A nil
// build result is cached too (the proxy has no such resource). A key is built
// once: lookups of a key being built wait for it, since a push wakes every
// connection at once and each would otherwise build the same resource.
func (c *Cache) lookup(st *cacheState, key any, build func() proto.Message) (proto.Message, *model.Encoded) {
	e := entry(c, st, key, func() (proto.Message, [][]byte) { return build(), nil }, build)
	return e.msg, e.enc
}

// entry is lookup's entry for key. build returns the message and, when it
// assembled the message's wire form from parts the cache holds encoded,
// those bytes, in pieces (nil: the server marshals the message); fresh builds the
// message the plain way, for the self-check. A function of the key's type
// so that a hit does not copy the key to the heap (the map's Load keeps
// it on the stack; only storing it moves it): a thousand default virtual
// hosts are looked up per route configuration, ~1 MB of keys per change.
func entry[K comparable](c *Cache, st *cacheState, key K, build func() (proto.Message, [][]byte), fresh func() proto.Message) *cacheEntry {
	v, ok := c.entries.Load(key)
	if !ok {
		v, _ = c.entries.LoadOrStore(key, &cacheEntry{kind: c.keyUse(key)})
	}
	e := v.(*cacheEntry)
	e.used.Store(e.kind.use(st.gen))
	built := false
	e.once.Do(func() {
		built = true
		c.misses.Add(1)
		var w [][]byte
		e.msg, w = build()
		switch {
		case e.msg == nil || isNilMessage(e.msg):
			e.msg = nil
		case w != nil:
			e.enc = model.EncodedWire(w...)
		default:
			e.enc = &model.Encoded{}
		}
	})
	if built {
		return e
	}
	c.hits.Add(1)
	if n := c.cfg.SelfCheck; n > 0 && c.lookups.Add(1)%uint64(n) == 0 {
		return c.selfCheck(key, e, fresh)
	}
	return e
}

func isNilMessage(m proto.Message) bool {
	v := reflect.ValueOf(m)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// selfCheck regenerates a cached resource without the cache and compares it,
// and the wire form the cache assembled for it, with the fresh one.
func (c *Cache) selfCheck(key any, e *cacheEntry, build func() proto.Message) *cacheEntry {
	c.checks.Add(1)
	fresh := build()
	if isNilMessage(fresh) {
		fresh = nil
	}
	if wireEqual(e.msg, fresh) && (e.enc == nil || e.enc.Wire() == nil || wireIs(e.enc.Wire(), fresh)) {
		return e
	}
	c.mismatches.Add(1)
	c.cfg.Logger.Log(context.Background(), slog.LevelError, "xds cache: a cached resource differs from a fresh one (a key misses an input); serving the fresh one",
		"key", strings.TrimSpace(reflect.TypeOf(key).String()), "resource", cachedName(fresh, e.msg))
	n := &cacheEntry{msg: fresh, kind: e.kind}
	if fresh != nil {
		n.enc = &model.Encoded{}
	}
	n.once.Do(func() {}) // built
	n.used.Store(e.used.Load())
	c.entries.Store(key, n)
	return n
}

// wireIs reports whether the pieces are m's deterministic encoding.
func wireIs(pieces [][]byte, m proto.Message) bool {
	x, err := deterministicMarshal(m)
	if err != nil {
		return false
	}
	for _, p := range pieces {
		if !bytes.HasPrefix(x, p) {
			return false
		}
		x = x[len(p):]
	}
	return len(x) == 0
}

// wireForm returns the entry's message in wire form, marshaled once: the
// encoding of a virtual host that route configurations are assembled from.
func (e *cacheEntry) wireForm() ([]byte, error) {
	e.wireOnce.Do(func() { e.wire, e.wireErr = deterministicMarshal(e.msg) })
	return e.wire, e.wireErr
}

func cachedName(ms ...proto.Message) string {
	for _, m := range ms {
		if m == nil {
			continue
		}
		if f := m.ProtoReflect().Descriptor().Fields().ByName("name"); f != nil {
			return m.ProtoReflect().Get(f).String()
		}
		if f := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name("cluster_name")); f != nil {
			return m.ProtoReflect().Get(f).String()
		}
	}
	return ""
}

func wireEqual(a, b proto.Message) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	x, err1 := deterministicMarshal(a)
	y, err2 := deterministicMarshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

func deterministicMarshal(m proto.Message) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// endpointsID is the identity of a host's endpoint list in the registry
// snapshot: its first element and length.
type endpointsID struct {
	first *registry.Endpoint
	n     int
}

func (g *gen) endpointsID(host string) endpointsID {
	if g.pc.Registry == nil {
		return endpointsID{}
	}
	eps := g.pc.Registry.Endpoints[host]
	if len(eps) == 0 {
		return endpointsID{}
	}
	return endpointsID{eps[0], len(eps)}
}

// drID is a resolved DestinationRule's identity: its spec and namespace.
type drID struct {
	spec *networking.DestinationRule
	ns   string
	host string
	// latency is the DestinationRule's latency-outlier annotation.
	latency string
}

func idOf(dr *model.DestinationRule) drID {
	if dr == nil {
		return drID{}
	}
	return drID{dr.Spec, dr.Namespace, dr.Host, dr.Annotations[config.LatencyOutlierAnnotation]}
}

// clusterKey is every input of serviceCluster.
type clusterKey struct {
	svc          *registry.Service
	port         registry.Port
	subset       string
	dr           drID
	endpoints    endpointsID // DNS clusters inline them; SANs and resolution NONE read them
	grpc         bool
	workloadCert bool
	security     *epoch // PeerAuthentications (endpoint tlsMode) and the mesh (trust domain)
	crl          *model.RevocationList
}

// cluster is serviceCluster through the cache, when there is one.
func (g *gen) cluster(svc *registry.Service, port registry.Port, subset string, dr *model.DestinationRule) (*clusterv3.Cluster, *model.Encoded) {
	if g.cache == nil {
		return g.serviceCluster(svc, port, subset, dr), nil
	}
	st := g.cache.state(g.pc)
	key := clusterKey{svc: svc, port: port, subset: subset, dr: idOf(dr), endpoints: g.endpointsID(svc.Hostname),
		grpc: g.grpc, workloadCert: g.p.HasWorkloadCert(), security: st.security, crl: g.pc.CRL}
	m, enc := g.cache.lookup(st, key, func() proto.Message { return g.serviceCluster(svc, port, subset, dr) })
	if m == nil {
		return nil, nil
	}
	return m.(*clusterv3.Cluster), enc
}

// edsKey is every input of loadAssignment for an EDS cluster.
type edsCacheKey struct {
	cluster   string
	svc       *registry.Service
	port      registry.Port
	dr        drID // subset labels
	endpoints endpointsID
	security  *epoch // PeerAuthentications decide endpoints' tlsMode
}

// loadAssignmentFor is cachedLoadAssignment through the cache, when there is one.
func (g *gen) loadAssignmentFor(name string, svc *registry.Service, port registry.Port, subset map[string]string, dr *model.DestinationRule) (*endpointv3.ClusterLoadAssignment, *model.Encoded) {
	if g.cache == nil {
		return g.cachedLoadAssignment(name, svc, port, subset, dr), nil
	}
	st := g.cache.state(g.pc)
	key := edsCacheKey{cluster: name, svc: svc, port: port, dr: idOf(dr), endpoints: g.endpointsID(svc.Hostname), security: st.security}
	m, enc := g.cache.lookup(st, key, func() proto.Message { return g.loadAssignment(name, svc, port, subset) })
	return m.(*endpointv3.ClusterLoadAssignment), enc
}

// routeKey is every input of a sidecar's route configuration.
type routeKey struct {
	name      string
	namespace string
	sidecarID sidecarID // the scope's Sidecar resource
	none      bool
	grpc      bool
	traced    bool // routes carry span names (decorate)
	// sources says which VirtualService sourceLabels the proxy matches
	// ('1') or not ('0'), in sourceSelectors' order.
	sources  string
	routing  *epoch // every VirtualService, DestinationRule, Sidecar, ... and the mesh
	services *epoch // the registry's services
}

type sidecarID struct {
	spec *networking.Sidecar
	key  config.Key
}

// sidecarRoute is a sidecar route configuration through the cache.
// A proxy that traces gets its routes with their span names (decorators),
// named once here, so that the cached bytes serve it as they are.
func (g *gen) sidecarRoute(name string, build func() *routev3.RouteConfiguration) (*routev3.RouteConfiguration, *model.Encoded) {
	traced := g.pc.Traced(g.p)
	decorated := func() *routev3.RouteConfiguration {
		rc := build()
		if traced && rc != nil {
			decorate(rc, nil)
		}
		return rc
	}
	if g.cache == nil {
		return decorated(), nil
	}
	st := g.cache.state(g.pc)
	key := g.routeKey(st, name, traced)
	m, enc := g.cache.lookup(st, key, func() proto.Message { return decorated() })
	if m == nil {
		return nil, nil
	}
	return m.(*routev3.RouteConfiguration), enc
}

// routeKey returns the cache key of the sidecar route configuration name.
func (g *gen) routeKey(st *cacheState, name string, traced bool) routeKey {
	key := routeKey{name: name, namespace: g.p.Namespace, none: g.p.InterceptionNone(), grpc: g.grpc, traced: traced,
		sources: g.sourceBits(st.sourceSelectors), routing: st.routing, services: st.services}
	if sc := g.scope.Sidecar; sc != nil {
		key.sidecarID = sidecarID{sc.Spec, sc.Key()}
	}
	return key
}

func (g *gen) sourceBits(selectors []map[string]string) string {
	if len(selectors) == 0 {
		return ""
	}
	b := make([]byte, len(selectors))
	for i, sel := range selectors {
		b[i] = '0'
		if model.LabelsMatch(sel, g.p.Labels) {
			b[i] = '1'
		}
	}
	return string(b)
}
