package xdsparse

import (
	"math/rand/v2"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// memoTables are route tables that answer some authorities differently:
// Bookinfo's, the same domains moved to other virtual hosts (as an update
// would), and a table that ignores ports with and without a catch-all.
func memoTables(t testing.TB) []*RouteTable {
	vh := func(name string, domains ...string) *routev3.VirtualHost {
		return &routev3.VirtualHost{Name: name, Domains: domains, Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: act(name)}}}
	}
	rcs := []*routev3.RouteConfiguration{
		{Name: "moved", VirtualHosts: []*routev3.VirtualHost{
			vh("reviews-moved", "reviews:9080", "*.api.example.com"),
			vh("example", "*.example.com", "ratings.*"),
		}},
		{Name: "8080", IgnorePortInHostMatching: true, VirtualHosts: []*routev3.VirtualHost{
			vh("svc", "svc.ns.svc.cluster.local", "svc.ns", "10.0.0.6", "[fd00::6]"),
			vh("any", "*"),
		}},
		{Name: "8080", IgnorePortInHostMatching: true, VirtualHosts: []*routev3.VirtualHost{
			vh("svc", "svc.ns.svc.cluster.local", "svc.ns"),
		}},
	}
	tabs := []*RouteTable{bookinfoTable(t), bookinfoTable(t)} // equal tables, two identities
	for _, rc := range rcs {
		tab, err := ParseRouteConfiguration(rc)
		if err != nil {
			t.Fatal(err)
		}
		tabs = append(tabs, tab)
	}
	return tabs
}

// memoAuthority draws an authority from names the tables know (exactly, by
// a wildcard, with another case, with or without a port) and ones they
// do not.
func memoAuthority(r *rand.Rand) string {
	hosts := []string{"reviews", "reviews.default", "reviews.default.svc.cluster.local", "a.example.com",
		"x.api.example.com", "ratings.local", "svc.ns", "svc.ns.svc.cluster.local", "10.0.0.6", "[fd00::6]",
		"unknown", "example.com", ""}
	ports := []string{"", ":9080", ":8080", ":"}
	b := []byte(hosts[r.IntN(len(hosts))] + ports[r.IntN(len(ports))])
	if r.IntN(4) == 0 && len(b) > 0 {
		i := r.IntN(len(b))
		b[i] = strings.ToUpper(string(b[i]))[0]
	}
	return string(b)
}

// TestVirtualHostMemoMatchesDirectLookup: over random sequences of
// (table, authority), a memo answers what VirtualHostFor answers. The
// sequences change the table alone (an update) and the authority alone.
func TestVirtualHostMemoMatchesDirectLookup(t *testing.T) {
	tabs := memoTables(t)
	r := rand.New(rand.NewPCG(1, 2))
	var m VirtualHostMemo
	tab, auth := tabs[0], "reviews:9080"
	for i := range 20000 {
		switch r.IntN(3) {
		case 0:
			tab = tabs[r.IntN(len(tabs))]
		case 1:
			auth = memoAuthority(r)
		}
		got, want := tab.VirtualHostForMemo(auth, &m), tab.VirtualHostFor(auth)
		if got != want {
			t.Fatalf("step %d: table %q, %q: memo %v, direct %v", i, tab.Name, auth, memoName(got), memoName(want))
		}
		in := Input{Authority: auth, Method: "GET", Path: "/"}
		if got, want := tab.MatchMemo(&in, &m), tab.Match(&in); got != want {
			t.Fatalf("step %d: table %q, %q: MatchMemo and Match differ", i, tab.Name, auth)
		}
	}
}

// TestVirtualHostMemoKeyedByTableAndAuthority: a remembered answer is not
// given for another table (an update moved the domain) nor for another
// authority.
func TestVirtualHostMemoKeyedByTableAndAuthority(t *testing.T) {
	tabs := memoTables(t)
	var m VirtualHostMemo
	if vh := tabs[0].VirtualHostForMemo("reviews:9080", &m); memoName(vh) != "reviews" {
		t.Fatalf("Bookinfo's reviews:9080: %s", memoName(vh))
	}
	if vh := tabs[2].VirtualHostForMemo("reviews:9080", &m); memoName(vh) != "reviews-moved" {
		t.Fatalf("after the update, reviews:9080: %s, want reviews-moved", memoName(vh))
	}
	if vh := tabs[2].VirtualHostForMemo("a.example.com", &m); memoName(vh) != "example" {
		t.Fatalf("another authority: %s, want example", memoName(vh))
	}
	if vh := tabs[2].VirtualHostForMemo("unknown", &m); vh != nil {
		t.Fatalf("an unknown authority: %s, want none", memoName(vh))
	}
}

// TestVirtualHostMemoAllocs: a remembered answer costs no allocation.
func TestVirtualHostMemoAllocs(t *testing.T) {
	tab := bookinfoTable(t)
	var m VirtualHostMemo
	in := Input{Authority: "reviews:9080", Method: "GET", Path: "/"}
	if n := testing.AllocsPerRun(100, func() { tab.MatchMemo(&in, &m) }); n != 0 {
		t.Errorf("%v allocations per match", n)
	}
}

// FuzzVirtualHostMemo: any two authorities asked for in any order of two
// tables get VirtualHostFor's answers through one memo.
func FuzzVirtualHostMemo(f *testing.F) {
	f.Add("reviews:9080", "REVIEWS:9080", uint8(0x5a))
	f.Add("svc.ns:8080", "svc.ns", uint8(0x0f))
	f.Add("a.example.com", "x.api.example.com", uint8(0x33))
	tabs := memoTables(f)
	f.Fuzz(func(t *testing.T, a, b string, order uint8) {
		var m VirtualHostMemo
		for i := range 8 {
			auth := a
			if order>>i&1 != 0 {
				auth = b
			}
			tab := tabs[(i+int(order))%len(tabs)]
			if got, want := tab.VirtualHostForMemo(auth, &m), tab.VirtualHostFor(auth); got != want {
				t.Fatalf("table %q, %q: memo %v, direct %v", tab.Name, auth, memoName(got), memoName(want))
			}
		}
	})
}

func memoName(vh *VirtualHost) string {
	if vh == nil {
		return "<none>"
	}
	return vh.Name
}
