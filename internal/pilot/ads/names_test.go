package ads

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

func TestNameSet(t *testing.T) {
	s := newNameSet([]string{"b", "*", "a", "b"})
	if got := s.strings(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("newNameSet = %v, want [a b]", got)
	}
	tests := []struct {
		list []string
		same bool
	}{
		{[]string{"a", "b"}, true},
		{[]string{"b", "a", "*"}, true},
		{[]string{"a", "a", "b"}, true},
		{[]string{"a", "a"}, false},
		{[]string{"a"}, false},
		{[]string{"a", "b", "c"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := s.sameAs(tt.list); got != tt.same {
			t.Errorf("sameAs(%v) = %v, want %v", tt.list, got, tt.same)
		}
	}
	if added := s.add([]string{"c", "a", "c", "*", "0"}); !slices.Equal(added, []string{"0", "c"}) {
		t.Fatalf("add returned %v, want [0 c]", added)
	}
	s.remove([]string{"a", "zz"})
	if got := s.strings(); !slices.Equal(got, []string{"0", "b", "c"}) {
		t.Fatalf("after add and remove: %v", got)
	}
	if !s.has("c") || s.has("a") {
		t.Fatal("has is wrong")
	}
	// Interned: two sets with the same name share one canonical handle.
	if other := newNameSet([]string{"c"}); other[0] != s[2] {
		t.Fatal("the same name in two sets is not the same handle")
	}
}

// BenchmarkNameSetRemoveHalf unsubscribes half of 20,000 names in one
// request: linear now (one compaction), quadratic before (one shift per
// name). go test -run '^$' -bench NameSetRemove ./internal/pilot/ads
func BenchmarkNameSetRemoveHalf(b *testing.B) {
	all := make([]string, 20000)
	for i := range all {
		all[i] = fmt.Sprintf("outbound|9080||svc-%05d.default.svc.cluster.local", i)
	}
	half := all[:len(all)/2]
	for b.Loop() {
		s := newNameSet(all)
		s.remove(half)
		if len(s) != len(all)-len(half) {
			b.Fatalf("%d names left", len(s))
		}
	}
}

func TestNameSetRemoveMany(t *testing.T) {
	s := newNameSet([]string{"a", "b", "c", "d", "e"})
	s.remove([]string{"e", "a", "c", "x", "a"})
	if got := strings.Join(s.strings(), ","); got != "b,d" {
		t.Fatalf("after remove: %s", got)
	}
	s.remove([]string{"b", "d"})
	if len(s) != 0 {
		t.Fatalf("not empty: %v", s.strings())
	}
}

// TestNameTablesShare: equal sets of at least minShared names are one
// backing array, changing one watch's set leaves the others' alone, and a
// set nobody holds leaves the table.
func TestNameTablesShare(t *testing.T) {
	tables := newNameTables()
	var names []string
	for i := range 40 {
		names = append(names, fmt.Sprintf("outbound|80||svc%02d.default.svc.cluster.local", i))
	}
	rev := slices.Clone(names)
	slices.Reverse(rev)
	a := tables.share(newNameSet(names))
	b := tables.share(newNameSet(rev))
	if &a[0] != &b[0] {
		t.Fatal("equal sets are not shared")
	}
	if c := tables.share(newNameSet(names[1:])); &c[0] == &a[0] {
		t.Fatal("a different set got the shared one")
	}
	if small := newNameSet(names[:minShared-1]); &tables.share(small)[0] != &small[0] {
		t.Fatal("a set below minShared was shared")
	}
	// Copy on write: b's changes do not reach a.
	b.remove(names[:10])
	b.add([]string{"zzz"})
	b = tables.share(b)
	if got := a.strings(); !slices.Equal(got, names) {
		t.Fatalf("a changed with b: %v", got)
	}
	if got := b.strings(); len(got) != 31 || got[30] != "zzz" {
		t.Fatalf("b = %v", got)
	}
	// The sets held above stay; once nobody holds them they are forgotten.
	if n := tables.len(); n != 3 {
		t.Fatalf("table holds %d sets, want 3", n)
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	a, b = nil, nil
	eventually(t, "collected sets leave the table", func() bool {
		runtime.GC()
		return tables.len() == 0
	})
}

// TestDeltaSubscriptionsShared: two proxies subscribing to the same
// clusters hold one set; one unsubscribing leaves the other's set whole.
func TestDeltaSubscriptionsShared(t *testing.T) {
	m := newTestMesh()
	e := newEnv(t, m)
	e.ads.Push(m.set("v1", baseState()), nil)
	var names []string
	for i := range 2 * minShared {
		names = append(names, clusterName(fmt.Sprintf("s%02d.default.svc.cluster.local", i)))
	}
	var clients []*deltaClient
	for _, id := range []string{"p1", "p2"} {
		c := e.delta(t, e.dial(t), id)
		c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResourceNamesSubscribe: names})
		c.recv()
		c.barrier()
		clients = append(clients, c)
	}
	subs := func() map[string]nameSet {
		out := map[string]nameSet{}
		e.ads.mu.RLock()
		defer e.ads.mu.RUnlock()
		for c := range e.ads.conns {
			c.mu.Lock()
			out[c.proxy.ID] = c.watches[EndpointType].names
			c.mu.Unlock()
		}
		return out
	}
	s := subs()
	p1, p2 := s[nodeID("p1")], s[nodeID("p2")]
	if len(p1) != len(names) || &p1[0] != &p2[0] {
		t.Fatalf("the proxies do not share their subscription (%d and %d names)", len(p1), len(p2))
	}
	clients[0].send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResourceNamesUnsubscribe: names[:3]})
	clients[0].barrier()
	s = subs()
	if got := s[nodeID("p2")].strings(); !slices.Equal(got, names) {
		t.Fatalf("p2's subscription changed with p1's: %v", got)
	}
	if got := s[nodeID("p1")].strings(); !slices.Equal(got, names[3:]) {
		t.Fatalf("p1's subscription: %v", got)
	}
}
