package generate

import (
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
	"github.com/mast-mesh/mast/internal/registry/serviceentry"
)

// TestPortTableMatchesDomainMap holds the hashed port table to the map from
// lower-case domain to the first service claiming it that it replaces, for
// every capturing fixture proxy and HTTP port of Bookinfo and of
// onDemandEdgesConfig, probing every domain (in upper case too), hosts no
// domain has, and hosts selected by wildcards: as built, with every hash
// marked as shared by two domains (the walk), and with hosts no domain has
// given the hash entry of a service (a collision the check must refuse).
func TestPortTableMatchesDomainMap(t *testing.T) {
	rs, problems := config.Load("edges.yaml", []byte(onDemandEdgesConfig))
	if problems.HasErrors() {
		t.Fatal(problems)
	}
	mesh := model.DefaultMeshConfig()
	cfg := config.NewSnapshot(rs)
	edges := model.NewPushContext("v", mesh, cfg, serviceentry.Build(cfg, serviceentry.Options{TrustDomain: mesh.TrustDomain, DomainSuffix: mesh.DomainSuffix}))
	checked := 0
	for _, pc := range []*model.PushContext{bookinfoPush(), edges} {
		c := NewCache(CacheConfig{})
		st := c.state(pc)
		for _, fp := range cacheProxies() {
			p := fp.proxy()
			if p.InterceptionNone() || p.IsGRPC() || p.Type != model.SidecarProxy {
				continue
			}
			g := newGen(pc, p)
			g.cache = c
			ports := map[uint32]bool{}
			for _, svc := range g.scope.Services {
				for _, sp := range svc.Ports {
					if sp.Protocol.IsHTTP() {
						ports[sp.Number] = true
					}
				}
			}
			for port := range ports {
				// the reference: portRoute's layout into a map
				want := map[string]*registry.Service{}
				var probes []string
				ds := domainSet{}
				for _, svc := range g.scope.Services {
					if sp, ok := svc.PortByNumber(port); !ok || !sp.Protocol.IsHTTP() {
						continue
					}
					for _, d := range g.vhostDomains(ds, svc) {
						probes = append(probes, strings.ToLower(d), strings.ToLower(d)+"x", "x"+strings.ToLower(d))
						if strings.IndexByte(d, '*') >= 0 {
							continue
						}
						if _, dup := want[strings.ToLower(d)]; !dup {
							want[strings.ToLower(d)] = svc
						}
					}
				}
				probes = append(probes, "unknown.example.com", "a.example.com", "x.wiki.example.com")
				check := func(tb *portTable, how string) {
					for _, h := range probes {
						got, ok := tb.exactClaimer(g, port, h)
						if w, wok := want[h]; ok != wok || got != w && ok {
							t.Fatalf("%s %s port %d %s: %q selects %v (%v), want %v (%v)", fp.name, pc.Version, port, how, h, got, ok, w, wok)
						}
						checked++
					}
				}
				tb := g.portTable(st, port)
				check(tb, "as built")
				variant := func(hashes []uint64, claimers []int32) *portTable {
					return &portTable{seed: tb.seed, hashes: hashes, claimers: claimers, services: tb.services, wild: tb.wild, wildDomains: tb.wildDomains}
				}
				check(variant(tb.hashes, slices.Repeat([]int32{-1}, len(tb.claimers))), "every hash shared")
				if len(tb.services) == 0 {
					continue
				}
				// hosts no domain has, hashing to a service's entry
				collide := variant(slices.Clone(tb.hashes), slices.Clone(tb.claimers))
				for _, h := range probes {
					if _, ok := want[h]; ok {
						continue
					}
					x := maphash.String(tb.seed, h)
					if i, found := slices.BinarySearch(collide.hashes, x); !found {
						collide.hashes = slices.Insert(collide.hashes, i, x)
						collide.claimers = slices.Insert(collide.claimers, i, 0)
					}
				}
				check(collide, "colliding hosts")
			}
		}
	}
	if checked < 500 {
		t.Fatalf("only %d lookups checked", checked)
	}
}

// TestIsVhostDomainMatchesDomains holds isVhostDomain to its reference: a
// lower-cased domain of vhostDomains without a wildcard is host.
func TestIsVhostDomainMatchesDomains(t *testing.T) {
	services := []*registry.Service{
		{Hostname: "reviews.default.svc.cluster.local", Addresses: []string{"10.0.0.1", "0.0.0.0", "10.1.0.0/16", "2001:db8::1"}},
		{Hostname: "Ratings.Other.svc.cluster.local", Addresses: []string{"FD00::A"}},
		{Hostname: "*.wiki.example.com"},
		{Hostname: "api.example.com:80"},
		{Hostname: "a.b.other.svc.cluster.local"},
		{Hostname: ".default.svc.cluster.local"},
		{Hostname: "x.default.svc."},
		{Hostname: ""},
	}
	pc := bookinfoPush()
	checked := 0
	for _, ns := range []string{"default", "other"} {
		g := newGen(pc, &model.Proxy{Type: model.SidecarProxy, Namespace: ns})
		for _, port := range []uint32{80, 1, 9080, 65535} {
			for _, svc := range services {
				var probes []string
				for _, s := range services {
					for _, d := range g.vhostDomains(domainSet{}, s) {
						l := strings.ToLower(d)
						probes = append(probes, l, l+":80", l+":080", l+":1", l+"x", "x"+l, l[:len(l)/2])
					}
				}
				probes = append(probes, "", ":80", ":1", "reviews.default.svc.", "reviews.default.svc", "reviews")
				for _, h := range probes {
					want := false
					for _, d := range g.vhostDomains(domainSet{}, svc) {
						if strings.IndexByte(d, '*') < 0 && strings.ToLower(d) == h {
							want = true
						}
					}
					if got := g.isVhostDomain(svc, h); got != want {
						t.Fatalf("namespace %s port %d %q: isVhostDomain(%q) = %v, want %v", ns, port, svc.Hostname, h, got, want)
					}
					checked++
				}
			}
		}
	}
	t.Logf("%d probes", checked)
}

// portNameProbes are TestPortName's inputs and FuzzPortName's seeds.
var portNameProbes = []string{"", "0", "00", "080", "+80", "-1", "65536", "99999", "100000", "1_0", "8a", " 80", "80 ", "4294967297", "1", "80", "65535"}

// checkPortName holds portName to strconv.ParseUint, the range check and
// the round trip through itoa that it replaces.
func checkPortName(t *testing.T, s string) {
	v, err := strconv.ParseUint(s, 10, 32)
	wantOK := err == nil && v != 0 && v <= 65535 && s == itoa(uint32(v))
	got, ok := portName(s)
	if ok != wantOK || ok && uint64(got) != v {
		t.Fatalf("portName(%q) = %d, %v; want %d, %v", s, got, ok, v, wantOK)
	}
}

func TestPortName(t *testing.T) {
	for _, s := range portNameProbes {
		checkPortName(t, s)
	}
	for n := range 70000 {
		checkPortName(t, strconv.Itoa(n))
	}
}

// FuzzPortName: a route configuration name comes from the proxy's VHDS
// request (on-demand virtual hosts), so portName reads untrusted input.
func FuzzPortName(f *testing.F) {
	for _, s := range portNameProbes {
		f.Add(s)
	}
	f.Fuzz(checkPortName)
}
