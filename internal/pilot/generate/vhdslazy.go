package generate

import (
	"hash/maphash"
	"maps"
	"slices"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/registry"
)

// With a cache, a capturing sidecar's VHDS resources of "PORT" are built
// one virtual host at a time instead of from the whole route configuration
// "PORT" (portRoute): a table of the port's domains, which depends only on
// the scope's services, the proxy's namespace and the port (not on any
// routing configuration, so it survives VirtualService changes), selects
// the service, and only that service's virtual host is built. Rebuilding
// the whole 1,000-virtual-host configuration for each namespace after every
// VirtualService change, to serve the few virtual hosts the change touched,
// was a quarter of mastd's CPU per change. The uncached generator still
// selects from the whole route configuration, and TestCacheOracle and its
// variants hold the two to byte-identical output.

// portTableKey is every input of a portTable: the scope's service list (a
// scope's list is never modified, and the key keeps its array alive, so
// its address stands for its content, and each service's identity for its
// hostname, addresses and ports), the port, and what the short names depend
// on.
type portTableKey struct {
	services     **registry.Service // &scope.Services[0], nil for none
	n            int
	port         uint32
	namespace    string
	domainSuffix string
}

// portTable is which service's virtual host of a sidecar's route
// configuration "PORT" each domain selects, as portRoute lays them out:
// services in scope order, each with its domains less those an earlier one
// took, and a service left with none has no virtual host. A domain is kept
// as a 64-bit hash, not as a string: at 10,000 services a table holds
// ~100,000 domains per namespace, and a map of strings with the strings
// themselves was 50 MB of mastd's heap for 10 namespaces. lookup verifies
// the service a hash names against the host, and hashes two domains share
// are marked and resolved by a walk of the scope. Immutable but for lastUsed.
type portTable struct {
	seed maphash.Seed
	// hashes are the hashes of the lower-case exact domains, sorted;
	// claimers[i] is the index in services of the first service claiming
	// the domain of hashes[i], or -1 when two domains have that hash.
	hashes   []uint64
	claimers []int32
	services []*registry.Service
	wild     []*registry.Service // services with a wildcard domain, in order
	// wildDomains are the domains of wild's services, as in the route
	// configuration (earlier claims removed).
	wildDomains [][]string
	lastUsed
}

func (g *gen) portTableKey(port uint32) portTableKey {
	key := portTableKey{n: len(g.scope.Services), port: port, namespace: g.p.Namespace, domainSuffix: g.pc.Mesh.DomainSuffix}
	if key.n > 0 {
		key.services = &g.scope.Services[0]
	}
	return key
}

func (g *gen) portTable(st *cacheState, port uint32) *portTable {
	return loadOrBuild(&g.cache.tables, g.portTableKey(port), st.gen, func() *portTable { return g.buildPortTable(port) })
}

// buildPortTable walks the scope's services as portRoute does.
func (g *gen) buildPortTable(port uint32) *portTable {
	t := &portTable{seed: maphash.MakeSeed()}
	type claim struct {
		domain  string
		claimer int32
	}
	claims := make(map[uint64]claim, 10*len(g.scope.Services))
	ds := make(domainSet, 10*len(g.scope.Services))
	for _, svc := range g.scope.Services {
		sp, ok := svc.PortByNumber(port)
		if !ok || !sp.Protocol.IsHTTP() {
			continue
		}
		domains := g.vhostDomains(ds, svc)
		if len(domains) == 0 {
			continue
		}
		idx := int32(len(t.services))
		t.services = append(t.services, svc)
		wild := false
		for _, d := range domains {
			if strings.IndexByte(d, '*') >= 0 {
				wild = true
				continue
			}
			d = strings.ToLower(d)
			h := maphash.String(t.seed, d)
			switch c, seen := claims[h]; {
			case !seen:
				claims[h] = claim{d, idx}
			case c.domain != d && c.claimer >= 0:
				claims[h] = claim{c.domain, -1} // two domains, one hash
			}
		}
		if wild {
			t.wild = append(t.wild, svc)
			t.wildDomains = append(t.wildDomains, domains)
		}
	}
	t.hashes = slices.Sorted(maps.Keys(claims))
	t.claimers = make([]int32, len(t.hashes))
	for i, h := range t.hashes {
		t.claimers[i] = claims[h].claimer
	}
	return t
}

// lookup returns the service whose virtual host a lower-case host selects,
// nil for the catch-all one.
func (t *portTable) lookup(g *gen, port uint32, host string) *registry.Service {
	if svc, ok := t.exactClaimer(g, port, host); ok {
		return svc
	}
	if i := selectDomains(len(t.wild), func(i int) []string { return t.wildDomains[i] }, host); i >= 0 {
		return t.wild[i]
	}
	return nil
}

// exactClaimer returns the first service in scope order with host among its
// domains (lower-cased), as a map from domain to service would. The service
// a hash names claimed the only domain with that hash, so it is the answer
// exactly when host is one of its domains; a host no domain has may share
// its hash and fails that check. A hash two domains share is resolved by
// walking the services.
func (t *portTable) exactClaimer(g *gen, port uint32, host string) (*registry.Service, bool) {
	i, found := slices.BinarySearch(t.hashes, maphash.String(t.seed, host))
	if !found {
		return nil, false
	}
	if c := t.claimers[i]; c >= 0 {
		svc := t.services[c]
		return svc, g.isVhostDomain(svc, host)
	}
	for _, svc := range t.services {
		if g.isVhostDomain(svc, host) {
			return svc, true
		}
	}
	return nil, false
}

// vsVhostKey is every input of the virtual host of a service port with
// VirtualServices: those of its route configuration, and the service port.
type vsVhostKey struct {
	route routeKey
	svc   *registry.Service
	port  uint32
}

// catchAllKey is every input of a route configuration's catch-all virtual
// host: those of the route configuration.
type catchAllKey struct{ route routeKey }

// onDemandPortVhost returns the virtual host of the capturing sidecar's
// route configuration rcName ("PORT") that host selects, as portRoute and
// sidecarRoute would build it but for its name and domains (which VHDS
// replaces), or nil when rcName is no such route configuration.
func (g *gen) onDemandPortVhost(st *cacheState, rcName, host string) *routev3.VirtualHost {
	p, ok := portName(rcName)
	if !ok {
		return nil
	}
	traced := g.pc.Traced(g.p)
	svc := g.portTable(st, p).lookup(g, p, strings.ToLower(host))
	switch {
	case svc == nil:
		m, _ := g.cache.lookup(st, catchAllKey{g.routeKey(st, rcName, traced)}, func() proto.Message {
			return decoratedVhost(g.catchAllVhost(), traced)
		})
		return m.(*routev3.VirtualHost)
	case len(g.scope.VirtualServicesFor(svc.Hostname)) == 0:
		return g.defaultVhost(domainSet{}, svc, p)
	}
	m, _ := g.cache.lookup(st, vsVhostKey{route: g.routeKey(st, rcName, traced), svc: svc, port: p}, func() proto.Message {
		return decoratedVhost(&routev3.VirtualHost{
			Name:   svc.Hostname + ":" + itoa(p),
			Routes: g.serviceRoutes(svc, p),
		}, traced)
	})
	return m.(*routev3.VirtualHost)
}

// decoratedVhost names vh's spans when the proxy traces, as sidecarRoute
// does for a whole route configuration.
func decoratedVhost(vh *routev3.VirtualHost, traced bool) *routev3.VirtualHost {
	if traced {
		decorate(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{vh}}, nil)
	}
	return vh
}
