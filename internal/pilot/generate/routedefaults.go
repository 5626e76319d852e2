package generate

import (
	"sync/atomic"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/mast-mesh/mast/internal/registry"
)

// A route configuration "PORT" of a thousand services has about a thousand
// default virtual hosts (services without VirtualServices), and each one's
// cache entry costs a DestinationRule lookup (its key names the rule that
// applies) and a lookup in the cache's map. A VirtualService change
// changes none of them, so a layout keeps the entries its last assembly
// used with the inputs that chose them (defaultsKey); the next assembly
// with the same inputs takes them from there. Together with the layout's
// own key (the scope's services, the proxy's namespace, the port, the
// domain suffix), defaultsKey is every input of defaultVhostKey and of
// the DestinationRule lookup; TestCacheOracle and FuzzCacheOracle hold
// the result to the uncached generator.

// defaultsKey is what, besides its layout's key, decides the cache entries
// of a layout's default virtual hosts: which DestinationRule applies to
// each service (the DestinationRules and the mesh, rules; the proxy's
// labels against their workload selectors, ruleSources) and the rest of
// defaultVhostKey.
type defaultsKey struct {
	rules        *epoch
	ruleSources  string
	grpc, traced bool
}

// layoutDefaults are the default virtual hosts' entries of one assembly
// of a layout, by the layout's index (nil for a service that had
// VirtualServices then). Immutable.
type layoutDefaults struct {
	key     defaultsKey
	entries []*cacheEntry
}

// keptDefaults are a layout's latest layoutDefaults of distinct keys, the
// latest first, at most maxKeptDefaults: the proxies of a namespace that
// differ in which DestinationRules select them, or in tracing, each keep
// theirs. Immutable.
type keptDefaults []*layoutDefaults

const maxKeptDefaults = 4

// defaultsFor returns a layout's kept defaults for the proxy when their
// key is the proxy's (nil otherwise, and with SelfCheck, which must see
// every lookup), and the key.
func (g *gen) defaultsFor(st *cacheState, l *portLayout, traced bool) (*layoutDefaults, defaultsKey) {
	key := defaultsKey{rules: st.rules, ruleSources: g.sourceBits(st.ruleSelectors), grpc: g.grpc, traced: traced}
	if g.cache.cfg.SelfCheck > 0 {
		return nil, key
	}
	if kept := l.defaults.Load(); kept != nil {
		for _, d := range *kept {
			if d.key == key {
				return d, key
			}
		}
	}
	return nil, key
}

// defaultEntry returns the default virtual host of the layout's i-th
// service and its entry: kept's when it has one (aged as a lookup would),
// else through the cache.
func (g *gen) defaultEntry(st *cacheState, kept *layoutDefaults, i int, svc *registry.Service, port uint32, traced bool) (*routev3.VirtualHost, *cacheEntry) {
	if kept != nil {
		if e := kept.entries[i]; e != nil {
			e.used.Store(e.kind.use(st.gen))
			g.cache.hits.Add(1)
			return e.msg.(*routev3.VirtualHost), e
		}
	}
	return g.sharedDefaultVhost(svc, port, traced)
}

// keepDefaults stores an assembly's default entries in the layout, in place
// of those of the same key, dropping the oldest beyond maxKeptDefaults.
func keepDefaults(slot *atomic.Pointer[keptDefaults], key defaultsKey, entries []*cacheEntry) {
	d := &layoutDefaults{key: key, entries: entries}
	for {
		old := slot.Load()
		next := keptDefaults{d}
		if old != nil {
			for _, o := range *old {
				if o.key != key && len(next) < maxKeptDefaults {
					next = append(next, o)
				}
			}
		}
		if slot.CompareAndSwap(old, &next) {
			return
		}
	}
}
