package generate

import (
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/mast-mesh/mast/internal/hostport"
	"github.com/mast-mesh/mast/internal/pilot/envoyfilter"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// VirtualHostType is VHDS's type URL: virtual hosts served on demand, over
// the incremental protocol only, to proxies whose route configurations say
// vhds (model.Proxy.OnDemandRoutes).
const VirtualHostType = "type.googleapis.com/envoy.config.route.v3.VirtualHost"

// onDemand reports whether the proxy's outbound route configurations
// ("PORT" with capture, "http_proxy" without) carry VHDS instead of their
// virtual hosts: a sidecar that asked for it. Bound egress ports' route
// configurations are scoped by their Sidecar already and stay whole. A
// proxy whose EnvoyFilters patch routes gets its route configurations whole
// too: the patches apply to whole route configurations (as Envoy's own
// VHDS leaves virtual hosts out of istiod's patching), so on demand they
// would match nothing.
func (g *gen) onDemand() bool {
	if g.onDemandMemo == 0 {
		g.onDemandMemo = 1
		if g.p.OnDemandRoutes() && !g.grpc && g.p.Type == model.SidecarProxy && !envoyfilter.PatchesRoutes(g.pc, g.p) {
			g.onDemandMemo = 2
		}
	}
	return g.onDemandMemo == 2
}

// vhdsStubKey is every input of a route configuration's VHDS stub: its
// name, once fullRoute has said the proxy has such a route configuration,
// and whether it ignores the port (portIgnored).
type vhdsStubKey struct {
	name       string
	ignorePort bool
}

// portIgnored reports whether the proxy's on-demand route configuration
// rcName (fullRoute) ignores the authority's port: a capturing sidecar's
// "PORT" ones do (sidecarRouteConfig), "http_proxy" does not.
func (g *gen) portIgnored(rcName string) bool {
	_, ok := portName(rcName)
	return ok && !g.p.InterceptionNone()
}

// fullRoute returns the builder of the proxy's full route configuration
// rcName ("PORT", or "http_proxy" without capture), or nil when the proxy
// has no such on-demand route configuration.
func (g *gen) fullRoute(rcName string) func() *routev3.RouteConfiguration {
	switch none := g.p.InterceptionNone(); {
	case none && rcName == httpProxyRouteName:
		return g.httpProxyRoute
	case none:
		return nil
	}
	port, ok := portName(rcName)
	if !ok {
		return nil
	}
	return func() *routev3.RouteConfiguration { return g.portRoute(port) }
}

// vhdsStub is route configuration name as sent to an on-demand proxy: the
// full one without its virtual hosts, which VHDS serves over ADS. It is
// built from the name alone, never from the full route configuration:
// portRoute and httpProxyRoute set nothing but the name, validate_clusters,
// ignore_port_in_host_matching (portRoute) and the virtual hosts, so the
// stub is those fields and VHDS (deriving it
// from the full configuration kept 10 x 10,000 virtual hosts as protos at
// 10,000 services). TestVHDSStubIsFullRouteWithoutVirtualHosts holds it to
// the full route configuration stripped of its virtual hosts.
func (g *gen) vhdsStub(name string) (*routev3.RouteConfiguration, *model.Encoded) {
	if g.fullRoute(name) == nil {
		return nil, nil
	}
	ignorePort := g.portIgnored(name)
	build := func() *routev3.RouteConfiguration {
		return &routev3.RouteConfiguration{
			Name:                     name,
			ValidateClusters:         boolv(false),
			IgnorePortInHostMatching: ignorePort,
			Vhds: &routev3.Vhds{ConfigSource: &corev3.ConfigSource{
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
				ResourceApiVersion:    corev3.ApiVersion_V3,
			}},
		}
	}
	if g.cache == nil {
		return build(), nil
	}
	st := g.cache.state(g.pc)
	m, enc := g.cache.lookup(st, vhdsStubKey{name, ignorePort}, func() proto.Message { return build() })
	return m.(*routev3.RouteConfiguration), enc
}

// virtualHosts returns the VHDS resources names asks for, each
// "ROUTECONFIG/HOST" (Envoy's naming: split at the last '/'). The resource
// is the virtual host of the full route configuration that HOST selects,
// as the proxy would select it (exact domain, longest suffix wildcard,
// longest prefix wildcard, "*"), named by the resource name and with HOST
// as its only domain: one resource per host the proxy met, so the proxy's
// merged table never has a domain twice and a host that first fell to a
// wildcard gets its own virtual host once a service claims it. A name that
// selects nothing (no "*" virtual host) is absent: the server then lists
// it as removed, which tells the proxy it does not exist.
//
// When the route configuration ignores the port (portIgnored), HOST is
// taken without its port (hostport.WithoutPort), as the proxy matches it;
// Envoy still names the resource by the authority it met, port included.
// The virtual host is then named "ROUTECONFIG/HOST-without-port" with that
// as its domain, so that "8080/svc:8080" and "8080/svc" are one virtual
// host to the proxy (Envoy keeps VHDS virtual hosts by name) and never two
// with domain "svc". A HOST that is only a port selects nothing.
func (g *gen) virtualHosts(names []string) []model.XDSResource {
	if !g.onDemand() {
		return nil
	}
	var st *cacheState
	if g.cache != nil {
		st = g.cache.state(g.pc)
	}
	indexes := map[string]*domainIndex{} // by route configuration name; nil: none
	var out []model.XDSResource
	for _, n := range names {
		i := strings.LastIndexByte(n, '/')
		if i <= 0 || i == len(n)-1 {
			continue
		}
		rcName, host, vhName := n[:i], n[i+1:], n
		if g.portIgnored(rcName) {
			if host = hostport.WithoutPort(host); host == "" {
				continue
			}
			vhName = n[:i+1+len(host)]
		}
		if st != nil && !g.p.InterceptionNone() {
			if r := g.cachedVirtualHost(st, rcName, host, n, vhName); r.Resource != nil {
				out = append(out, r)
			}
			continue
		}
		vh := g.selectFromFullRoute(st, indexes, rcName, host)
		if vh == nil {
			continue
		}
		if g.cache == nil {
			out = append(out, model.XDSResource{Name: n, Resource: ownVirtualHost(vh, vhName, host)})
			continue
		}
		out = append(out, g.onDemandResource(st, vh, n, vhName, host))
	}
	return out
}

// ownVirtualHost is vh as a VHDS resource: named vhName ("ROUTECONFIG/HOST"),
// with host its only domain.
func ownVirtualHost(vh *routev3.VirtualHost, vhName, host string) *routev3.VirtualHost {
	own := &routev3.VirtualHost{}
	shallowCopy(own, vh, "name", "domains")
	own.Name, own.Domains = vhName, []string{host}
	return own
}

// onDemandResource is the VHDS resource n of vh, as virtual host vhName
// with domain host (vhName's HOST), through the cache.
func (g *gen) onDemandResource(st *cacheState, vh *routev3.VirtualHost, n, vhName, host string) model.XDSResource {
	m, enc := g.cache.lookup(st, onDemandVhostKey{vh: vh, name: vhName}, func() proto.Message { return ownVirtualHost(vh, vhName, host) })
	return model.XDSResource{Name: n, Resource: m, Encoded: enc}
}

// vhdsMemoKey is every input of the VHDS resource name of a sidecar with
// capture, within one push context: the cache key of the route
// configuration the name selects a virtual host of (routeKey: exactly the
// inputs that configuration is generated from, the cached route
// configuration's own key) and the name, which holds the host.
type vhdsMemoKey struct {
	route routeKey
	name  string
}

// cachedVirtualHost is the VHDS resource name ("ROUTECONFIG/HOST") for a
// sidecar with capture, host and vhName as virtualHosts derives them from
// it; Resource is nil when the host selects nothing. It
// is looked up once per push context and vhdsMemoKey, by the first proxy
// that asks (which also marks the entries it used as used in this
// generation); the proxies with the same key (the same scope, namespace,
// Sidecar and matching source selectors) asking for the same name get the
// same resource without walking the port table, the VirtualService index
// and three cache lookups each. TestVHDSMemoMatchesUncached holds it to
// the uncached generator.
func (g *gen) cachedVirtualHost(st *cacheState, rcName, host, name, vhName string) model.XDSResource {
	key := vhdsMemoKey{route: g.routeKey(st, rcName, g.pc.Traced(g.p)), name: name}
	if r, ok := st.vhds.Load(key); ok {
		return r.(model.XDSResource)
	}
	r := model.XDSResource{Name: name}
	if vh := g.onDemandPortVhost(st, rcName, host); vh != nil {
		r = g.onDemandResource(st, vh, name, vhName, host)
	}
	st.vhds.Store(key, r)
	return r
}

// selectFromFullRoute returns the virtual host of the proxy's whole route
// configuration rcName that host selects: the uncached generator's way (the
// cache's oracle), and the cache's for a sidecar without capture.
func (g *gen) selectFromFullRoute(st *cacheState, indexes map[string]*domainIndex, rcName, host string) *routev3.VirtualHost {
	x, seen := indexes[rcName]
	if !seen {
		if full := g.fullRoute(rcName); full != nil {
			if rc, _ := g.sidecarRoute(rcName, full); rc != nil {
				x = g.domainIndex(st, rcName, rc)
			}
		}
		indexes[rcName] = x
	}
	if x == nil {
		return nil
	}
	return x.lookup(strings.ToLower(host))
}

// onDemandVhostKey is every input of a VHDS resource: the virtual host of
// the full route configuration its host selects (generated messages are
// never modified, so its identity stands for its content) and the virtual
// host's name, which holds its domain. A default virtual host is kept across pushes (defaultVhostKey), so
// after a change only the VHDS resources of virtual hosts it touched are
// rebuilt and re-encoded, not every one every proxy holds.
type onDemandVhostKey struct {
	vh   *routev3.VirtualHost
	name string
}

// domainIndex indexes a route configuration's domains, so that each
// on-demand name is selected in constant time instead of a scan of every
// domain (a 1,000-service configuration has ~10,000).
type domainIndex struct {
	rc       *routev3.RouteConfiguration
	table    *domainTable
	wildcard []*routev3.VirtualHost // the virtual hosts with a wildcard domain, in order
	lastUsed                        // lineage pruning
}

// domainTable is the part of a domain index that depends only on the
// domains of each virtual host by position: route configurations whose
// virtual hosts have the same domains at the same positions share it, so a
// change of routes (the usual VirtualService edit) reuses the previous
// push's table instead of indexing every domain again. Immutable.
type domainTable struct {
	exact    map[string]int // lower-case domain -> position of its first virtual host
	wildcard []int          // positions of the virtual hosts with a wildcard domain
}

type domainIndexKey struct{ rc *routev3.RouteConfiguration }

// domainLineage names the route configurations that succeed one another
// across pushes for one class of proxies: a route configuration's key
// without the epochs that change with every configuration change and the
// sourceLabels bits, whose length changes with them. It only
// says where to look for a table to reuse; reuse itself is decided by
// comparing domains (sameDomains), so a lineage that names something else
// costs a rebuild, never a wrong table.
type domainLineage struct{ route routeKey }

// domainIndex returns rc's index, built once per push context for a
// route configuration shared through the cache, from the table of the
// previous route configuration of its lineage when the domains are the same.
func (g *gen) domainIndex(st *cacheState, rcName string, rc *routev3.RouteConfiguration) *domainIndex {
	if g.cache == nil {
		return newDomainIndex(rc, buildDomainTable(rc))
	}
	lineage := domainLineage{g.routeKey(st, rcName, g.pc.Traced(g.p))}
	lineage.route.routing, lineage.route.services, lineage.route.sources = nil, nil, ""
	x := g.pc.Memo(domainIndexKey{rc}, func() any {
		var t *domainTable
		if v, ok := g.cache.indexes.Load(lineage); ok {
			if prev := v.(*domainIndex); prev.rc == rc || sameDomains(prev.rc, rc) {
				t = prev.table
			}
		}
		if t == nil {
			t = buildDomainTable(rc)
		}
		x := newDomainIndex(rc, t)
		g.cache.indexes.Store(lineage, x)
		return x
	}).(*domainIndex)
	x.used(st.gen)
	return x
}

func newDomainIndex(rc *routev3.RouteConfiguration, t *domainTable) *domainIndex {
	x := &domainIndex{rc: rc, table: t, wildcard: make([]*routev3.VirtualHost, len(t.wildcard))}
	for i, pos := range t.wildcard {
		x.wildcard[i] = rc.VirtualHosts[pos]
	}
	return x
}

func buildDomainTable(rc *routev3.RouteConfiguration) *domainTable {
	// Sized up front: growing a map of the ~100,000 domains of a
	// 10,000-service configuration rehashed it a dozen times, most of
	// an on-demand push's CPU at that size.
	n := 0
	for _, vh := range rc.VirtualHosts {
		n += len(vh.Domains)
	}
	t := &domainTable{exact: make(map[string]int, n)}
	for pos, vh := range rc.VirtualHosts {
		wild := false
		for _, d := range vh.Domains {
			if strings.IndexByte(d, '*') >= 0 {
				wild = true
				continue
			}
			if _, dup := t.exact[strings.ToLower(d)]; !dup {
				t.exact[strings.ToLower(d)] = pos
			}
		}
		if wild {
			t.wildcard = append(t.wildcard, pos)
		}
	}
	return t
}

// sameDomains reports whether a and b have the same number of virtual hosts
// with the same domains at every position: then a domain table built for one
// is exact for the other. Unchanged virtual hosts are the same message
// (the cache keeps them across pushes), so this is mostly pointer compares.
func sameDomains(a, b *routev3.RouteConfiguration) bool {
	if len(a.VirtualHosts) != len(b.VirtualHosts) {
		return false
	}
	for i, x := range a.VirtualHosts {
		if y := b.VirtualHosts[i]; x != y && !slices.Equal(x.GetDomains(), y.GetDomains()) {
			return false
		}
	}
	return true
}

func (x *domainIndex) lookup(host string) *routev3.VirtualHost {
	if pos, ok := x.table.exact[host]; ok {
		return x.rc.VirtualHosts[pos]
	}
	return selectVirtualHost(x.wildcard, host)
}

// selectVirtualHost picks the virtual host for a lower-case host the way
// Envoy (and mast-proxy) do.
func selectVirtualHost(vhs []*routev3.VirtualHost, host string) *routev3.VirtualHost {
	if i := selectDomains(len(vhs), func(i int) []string { return vhs[i].Domains }, host); i >= 0 {
		return vhs[i]
	}
	return nil
}

// selectDomains is selectVirtualHost over n virtual hosts given by their
// domains: the index of the one selected, -1 for none.
func selectDomains(n int, domains func(int) []string, host string) int {
	suffix, prefix, any := -1, -1, -1
	suffixLen, prefixLen := -1, -1
	for i := range n {
		for _, d := range domains(i) {
			d = strings.ToLower(d)
			switch {
			case d == "*":
				if any < 0 {
					any = i
				}
			case strings.HasPrefix(d, "*"):
				if fix := d[1:]; len(host) > len(fix) && strings.HasSuffix(host, fix) && len(fix) > suffixLen {
					suffix, suffixLen = i, len(fix)
				}
			case strings.HasSuffix(d, "*"):
				if fix := d[:len(d)-1]; len(host) > len(fix) && strings.HasPrefix(host, fix) && len(fix) > prefixLen {
					prefix, prefixLen = i, len(fix)
				}
			case d == host:
				return i
			}
		}
	}
	switch {
	case suffix >= 0:
		return suffix
	case prefix >= 0:
		return prefix
	}
	return any
}

// shallowCopy sets every populated field of src but the skipped ones on dst
// (same message type), sharing their values: generated messages are never
// modified once built.
func shallowCopy(dst, src proto.Message, skip ...protoreflect.Name) {
	d := dst.ProtoReflect()
	src.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		for _, s := range skip {
			if fd.Name() == s {
				return true
			}
		}
		d.Set(fd, v)
		return true
	})
}
