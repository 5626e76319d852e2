package generate

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/mast-mesh/mast/internal/hostport"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

// RouteScope says which of a proxy's resources a change can alter that
// changed only the HTTP routes of hosts (model.PushRequest.Hosts: the hosts
// of the VirtualServices that changed, FQDNs or wildcards): for each type
// URL, every one (all), or those keep accepts by name (keep nil: none). It
// is the generators' own account of what a sidecar's routes depend on, so
// that the ADS server wakes and regenerates only what such a change
// touches:
//
//   - a VirtualService reaches a sidecar's route configurations only as the
//     routes of the virtual hosts of the services in its scope that its
//     hosts name (SidecarScope.VirtualServicesFor), so a proxy whose scope
//     has none of them keeps every route configuration;
//   - an on-demand proxy's VHDS stubs ("PORT", "http_proxy") are its route
//     configurations without virtual hosts, which no route reaches;
//   - its virtual hosts ("RC/HOST") are selected by exact domain, and a
//     service's domains are its hostname, the short names of it and its
//     addresses (with the port too in "http_proxy"; "PORT" ignores the
//     authority's port), so only the names whose host, with or without its
//     port, is one of those of a named service can select a changed
//     virtual host.
//
// Other proxies (gateways, proxyless gRPC) and types get all. keep is
// conservative: it may accept a name that does not change, never the
// reverse: controlplane's TestPushCoversChange and
// TestVirtualServiceChangesSkipListeners hold it to the generators for every
// VirtualService of the tree's testdata, removed and restored.
//
// The proxy's scope, the touched services and whether it takes its virtual
// hosts on demand are looked up once, at the first type asked for: a push
// wakes every proxy, and an on-demand one asks for two types (RDS, VHDS).
func RouteScope(pc *model.PushContext, p *model.Proxy, hosts map[string]struct{}) func(typeURL string) (all bool, keep func(name string) bool) {
	if pc == nil || p == nil || p.Type != model.SidecarProxy || p.IsGRPC() || hosts == nil {
		return scopeAll
	}
	var g *gen
	var t *touchedDomains
	return func(typeURL string) (bool, func(string) bool) {
		switch typeURL {
		case RouteType, VirtualHostType:
		default:
			return true, nil
		}
		if g == nil {
			g = newGen(pc, p)
			t = g.touched(hosts)
		}
		return t.scope(g, typeURL)
	}
}

// scopeAll is RouteScope's answer for a proxy whose every resource a
// route change may alter.
func scopeAll(string) (bool, func(string) bool) { return true, nil }

// scope is RouteScope's answer for typeURL (RDS or VHDS) for g's proxy.
func (t *touchedDomains) scope(g *gen, typeURL string) (all bool, keep func(name string) bool) {
	onDemand := g.onDemand()
	if typeURL == RouteType {
		switch {
		case len(t.services) == 0:
			return false, nil
		case onDemand:
			// Stubs stay; route configurations served whole (bound egress
			// ports) may change.
			return false, func(n string) bool { return g.fullRoute(n) == nil }
		}
		return true, nil
	}
	if !onDemand {
		return true, nil // no virtual hosts to serve
	}
	switch {
	case len(t.services) == 0:
		return false, nil
	case t.wildcard:
		return true, nil // a wildcard service's virtual host is selected by suffix
	}
	return false, t.keepVirtualHost
}

// keepVirtualHost reports whether the virtual host name ("RC/HOST") may
// select a touched service's virtual host: whether HOST, lower-cased, is
// one of the domains, with or without its port (hostport.WithoutPort: any
// port, as a route configuration that ignores the port). Every proxy's
// every name is asked at each change, so an ASCII host is compared with a
// short list of domains as it is, byte by byte, lower-casing as it goes
// (keepLowered's answer without strings.ToLower's copy or two map lookups;
// TestKeepVirtualHostMatchesLowered, FuzzKeepVirtualHost).
func (t *touchedDomains) keepVirtualHost(n string) bool {
	i := strings.LastIndexByte(n, '/')
	if i < 0 {
		return true
	}
	host := n[i+1:]
	if t.list == nil || !isASCII(host) {
		return t.keepLowered(strings.ToLower(host))
	}
	bare := hostport.WithoutPort(host)
	ported := len(bare) < len(host)
	for _, d := range t.list {
		if equalLowerASCII(host, d) || ported && equalLowerASCII(bare, d) {
			return true
		}
	}
	return false
}

// keepLowered is keepVirtualHost for the lower-cased host of a name.
func (t *touchedDomains) keepLowered(host string) bool {
	if _, ok := t.domains[host]; ok {
		return true
	}
	_, ok := t.domains[hostport.WithoutPort(host)]
	return ok
}

// maxListedDomains is the most domains keepVirtualHost compares one by
// one; more are looked up in the map.
const maxListedDomains = 16

// equalLowerASCII reports whether the ASCII string s, lower-cased, is
// lower (a lower-case domain).
func equalLowerASCII(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// isASCII reports whether s has no byte outside ASCII: lower-casing it
// then changes nothing but its letters A-Z, and not its length.
func isASCII(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 { // eight bytes at a time (one load)
		b := s[i : i+8]
		w := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
		if w&0x8080808080808080 != 0 {
			return false
		}
	}
	var or byte
	for ; i < len(s); i++ {
		or |= s[i]
	}
	return or < utf8.RuneSelf
}

// touchedKey names what touched derives from: the scope, the push's hosts
// (a request's map, never modified once made; the key keeps it alive, so
// its address stands for it) and the proxy's namespace (short names).
type touchedKey struct {
	scope     *model.SidecarScope
	hosts     unsafe.Pointer
	namespace string
}

// touchedDomains are the services of a scope that a push's hosts name, and
// the lower-case domains their virtual hosts are selected by.
type touchedDomains struct {
	services []*registry.Service
	wildcard bool // a touched service's hostname is a wildcard (domains nil)
	domains  map[string]struct{}
	// list holds the domains when there are at most maxListedDomains
	// (nil: more, or none).
	list []string
}

// touched returns the scope's services that hosts name and their domains,
// computed once per push context for the proxies of one scope and
// namespace: a push wakes every proxy, and building the domain set for
// each of a thousand was most of RouteScope's cost.
func (g *gen) touched(hosts map[string]struct{}) *touchedDomains {
	key := touchedKey{scope: g.scope, hosts: reflect.ValueOf(hosts).UnsafePointer(), namespace: g.p.Namespace}
	return g.pc.Memo(key, func() any {
		t := &touchedDomains{services: touchedServices(g.scope, hosts)}
		t.domains = map[string]struct{}{}
		for _, svc := range t.services {
			if strings.IndexByte(svc.Hostname, '*') >= 0 {
				t.wildcard, t.domains = true, nil
				break
			}
			t.domains[strings.ToLower(svc.Hostname)] = struct{}{}
			for _, s := range g.shortNames(svc.Hostname) {
				t.domains[strings.ToLower(s)] = struct{}{}
			}
			for _, vip := range svc.Addresses {
				t.domains[strings.ToLower(vipDomain(vip))] = struct{}{}
			}
		}
		if len(t.domains) <= maxListedDomains {
			t.list = slices.Collect(maps.Keys(t.domains))
		}
		return t
	}).(*touchedDomains)
}

// touchedServices returns the services of scope that hosts name as
// SidecarScope.VirtualServicesFor matches VirtualService hosts: an exact
// host names the service of that hostname, a wildcard every service it
// matches. Exact hosts are looked up, so that the usual change (a few exact
// hosts) costs a few map lookups per proxy, not a walk of its scope.
func touchedServices(scope *model.SidecarScope, hosts map[string]struct{}) []*registry.Service {
	var out []*registry.Service
	wildcard := false
	for h := range hosts {
		if strings.HasPrefix(h, "*") {
			wildcard = true
			continue
		}
		if svc := scope.Service(h); svc != nil {
			out = append(out, svc)
		}
	}
	if !wildcard {
		return out
	}
	out = out[:0]
	for _, svc := range scope.Services {
		for h := range hosts {
			if model.HostMatches(h, svc.Hostname) {
				out = append(out, svc)
				break
			}
		}
	}
	return out
}
