package generate

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// TestRouteScopeMemoPerHosts: RouteScope's domains are computed once per
// push context, scope and hosts; two pushes naming different hosts on the
// same push context, and proxies of two namespaces (short names), each get
// their own answer.
func TestRouteScopeMemoPerHosts(t *testing.T) {
	pc := bookinfoPush()
	const reviews, ratings = "reviews.default.svc.cluster.local", "ratings.default.svc.cluster.local"
	cases := []struct {
		proxy *model.Proxy
		hosts map[string]struct{}
		name  string
		keep  bool
	}{
		{onDemand(productpageProxy()), map[string]struct{}{reviews: {}}, "9080/" + reviews, true},
		{onDemand(productpageProxy()), map[string]struct{}{reviews: {}}, "9080/reviews", true},
		{onDemand(productpageProxy()), map[string]struct{}{reviews: {}}, "9080/" + ratings, false},
		{onDemand(productpageProxy()), map[string]struct{}{ratings: {}}, "9080/" + ratings, true},
		{onDemand(productpageProxy()), map[string]struct{}{ratings: {}}, "9080/" + reviews, false},
		{onDemand(otherProxy()), map[string]struct{}{reviews: {}}, "9080/reviews.default", true},
		{onDemand(otherProxy()), map[string]struct{}{reviews: {}}, "9080/reviews", false},
	}
	for i, c := range cases {
		all, keep := RouteScope(pc, c.proxy, c.hosts)(VirtualHostType)
		if all || keep == nil {
			t.Fatalf("case %d: all %v, keep nil %v; want a narrowed scope", i, all, keep == nil)
		}
		if got := keep(c.name); got != c.keep {
			t.Errorf("case %d: %s keeps %q: %v, want %v", i, c.proxy.Namespace, c.name, got, c.keep)
		}
	}
}

// keepDomains is a touchedDomains holding domains as touched builds it.
func keepDomains(domains ...string) *touchedDomains {
	t := &touchedDomains{domains: map[string]struct{}{}}
	for _, d := range domains {
		t.domains[strings.ToLower(d)] = struct{}{}
	}
	if len(t.domains) <= maxListedDomains {
		t.list = slices.Collect(maps.Keys(t.domains))
	}
	return t
}

// keepLoweredName is keepVirtualHost as it was: the host lower-cased with
// strings.ToLower, then looked up with and without its port.
func keepLoweredName(t *touchedDomains, n string) bool {
	i := strings.LastIndexByte(n, '/')
	if i < 0 {
		return true
	}
	return t.keepLowered(strings.ToLower(n[i+1:]))
}

// keepCases are domain sets for TestKeepVirtualHostMatchesLowered and
// FuzzKeepVirtualHost: a service's domains, non-ASCII ones, and more than
// maxListedDomains (looked up in the map).
func keepCases() []*touchedDomains {
	var many []string
	for i := range maxListedDomains + 3 {
		many = append(many, fmt.Sprintf("svc-%d.ns.svc.cluster.local", i))
	}
	return []*touchedDomains{
		keepDomains("reviews.default.svc.cluster.local", "reviews.default.svc", "reviews.default", "reviews", "10.0.0.7"),
		keepDomains("straße.example", "i.example", "k.example"),
		keepDomains(many...),
	}
}

// TestKeepVirtualHostMatchesLowered: the byte-wise comparison of ASCII
// hosts with the listed domains keeps exactly the names the lower-cased
// lookup keeps, whatever the case, port or alphabet.
func TestKeepVirtualHostMatchesLowered(t *testing.T) {
	names := []string{
		"9080/reviews.default.svc.cluster.local", "9080/Reviews.Default.SVC.cluster.local:9080",
		"9080/reviews:9080", "9080/REVIEWS:1", "9080/reviews:", "9080/reviews:90a", "9080/reviews:9080:9080",
		"9080/ratings", "9080/reviewsx", "9080/review", "9080/10.0.0.7:80", "9080/", "reviews", "a/b/reviews",
		"80/STRASSE.example", "80/straße.example", "80/STRAßE.EXAMPLE:80", "80/İ.example", "80/I.example", "80/\u212a.example",
		"80/K.EXAMPLE:443", "80/svc-3.ns.svc.cluster.local", "80/SVC-18.NS.svc.cluster.local:8080", "80/svc-19.ns.svc.cluster.local",
	}
	for i, td := range keepCases() {
		if i < 2 && td.list == nil {
			t.Fatalf("case %d: domains not listed", i)
		}
		for _, n := range names {
			if got, want := td.keepVirtualHost(n), keepLoweredName(td, n); got != want {
				t.Errorf("case %d: keepVirtualHost(%q) = %v, the lower-cased lookup says %v", i, n, got, want)
			}
		}
	}
}

// FuzzKeepVirtualHost holds keepVirtualHost to the lower-cased lookup for
// any name a client may subscribe to.
func FuzzKeepVirtualHost(f *testing.F) {
	for _, n := range []string{"9080/Reviews:9080", "80/straße.example", "80/\u212a.example:1", "x", "80/svc-1.ns.svc.cluster.local"} {
		f.Add(n)
	}
	cases := keepCases()
	f.Fuzz(func(t *testing.T, n string) {
		for i, td := range cases {
			if got, want := td.keepVirtualHost(n), keepLoweredName(td, n); got != want {
				t.Errorf("case %d: keepVirtualHost(%q) = %v, the lower-cased lookup says %v", i, n, got, want)
			}
		}
	})
}
