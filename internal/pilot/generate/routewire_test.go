package generate

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// TestSpliceRepeatedReusesPrev: a splice that references runs of
// unchanged parts in the previous assembly gives, joined, the bytes of one
// from scratch and of proto.Marshal, whichever parts changed, were added or
// removed; it has at most maxPieces pieces; and no later splice writes into
// the pieces of an earlier one (gRPC may still be sending them).
func TestSpliceRepeatedReusesPrev(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	vhost := func(i int) []byte {
		b, err := deterministicMarshal(&routev3.VirtualHost{Name: fmt.Sprintf("h%d-%d", i, rng.IntN(1000)), Domains: []string{"x"}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	head, err := deterministicMarshal(&routev3.RouteConfiguration{Name: "80", ValidateClusters: boolv(false)})
	if err != nil {
		t.Fatal(err)
	}
	type sent struct {
		a     *assembly
		bytes []byte // its bytes when it was made
	}
	var all []sent
	var prev *assembly
	parts := [][]byte{}
	pieced := 0
	for round := range 300 {
		next := append([][]byte(nil), parts...)
		switch {
		case round%7 == 3 && len(next) > 0:
			next = next[:len(next)-1-rng.IntN(len(next))]
		case round%3 == 0 || len(next) < 20:
			for range rng.IntN(4) + 1 {
				i := rng.IntN(len(next) + 1)
				switch rng.IntN(3) {
				case 0:
					next = append(next[:i], append([][]byte{vhost(i)}, next[i:]...)...)
				case 1:
					if i < len(next) {
						next[i] = vhost(i)
					}
				default:
					if i < len(next) {
						next[i] = append([]byte(nil), next[i]...) // same bytes, another slice
					}
				}
			}
		default: // one part changed, as a VirtualService change does
			i := rng.IntN(len(next))
			next[i] = vhost(i)
		}
		if round%11 == 5 {
			next = append(next, []byte{}) // an empty message
		}
		got := spliceRepeated(head, vhostsField, next, prev)
		fresh := spliceRepeated(head, vhostsField, next, nil)
		if got == nil || fresh == nil {
			t.Fatalf("round %d: nil assembly", round)
		}
		if len(fresh.wire) != 1 {
			t.Fatalf("round %d: a splice without a previous one is in %d pieces, want 1", round, len(fresh.wire))
		}
		if len(got.wire) > maxPieces {
			t.Fatalf("round %d: %d pieces, more than %d", round, len(got.wire), maxPieces)
		}
		if len(got.wire) > 1 {
			pieced++
		}
		joined := bytes.Join(got.wire, nil)
		if !bytes.Equal(joined, fresh.wire[0]) {
			t.Fatalf("round %d: splice with the previous assembly differs from one without", round)
		}
		if got.starts[len(got.wire)] != len(joined) || got.offs[len(next)] > len(joined) {
			t.Fatalf("round %d: starts %v, offs end %d for %d bytes", round, got.starts, got.offs[len(next)], len(joined))
		}
		rc := &routev3.RouteConfiguration{Name: "80", ValidateClusters: boolv(false)}
		for _, b := range next {
			vh := &routev3.VirtualHost{}
			if err := proto.Unmarshal(b, vh); err != nil {
				t.Fatal(err)
			}
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
		}
		if !wireIs(got.wire, rc) {
			t.Fatalf("round %d: splice is not the route configuration's encoding", round)
		}
		all = append(all, sent{got, joined})
		prev, parts = got, next
	}
	if pieced < 100 {
		t.Fatalf("only %d of 300 splices referenced the previous one", pieced)
	}
	for i, s := range all {
		if !bytes.Equal(bytes.Join(s.a.wire, nil), s.bytes) {
			t.Fatalf("splice %d's bytes were overwritten by a later one", i)
		}
	}
}

// TestSpliceRepeatedReferencesPrev: after one part changed, the unchanged
// runs are the previous assembly's bytes in memory, not copies, and only
// the changed part and the head are written.
func TestSpliceRepeatedReferencesPrev(t *testing.T) {
	head, err := deterministicMarshal(&routev3.RouteConfiguration{Name: "80", ValidateClusters: boolv(false)})
	if err != nil {
		t.Fatal(err)
	}
	parts := make([][]byte, 1000)
	for i := range parts {
		if parts[i], err = deterministicMarshal(&routev3.VirtualHost{Name: fmt.Sprintf("h%d", i), Domains: []string{"x", "y"}}); err != nil {
			t.Fatal(err)
		}
	}
	prev := spliceRepeated(head, vhostsField, parts, nil)
	next := append([][]byte(nil), parts...)
	next[500] = append([]byte(nil), parts[500]...)
	got := spliceRepeated(head, vhostsField, next, prev)
	in := func(p []byte, a *assembly) bool {
		for _, q := range a.wire {
			for k := range q {
				if &q[k] == &p[0] {
					return len(q)-k >= len(p)
				}
			}
		}
		return false
	}
	written := 0
	for _, p := range got.wire {
		if !in(p, prev) {
			written += len(p)
		}
	}
	if want := len(head) + got.offs[501] - got.offs[500]; written != want {
		t.Fatalf("%d bytes written fresh, want %d (the head and the changed part's field)", written, want)
	}
	if len(got.wire) != 5 {
		t.Fatalf("%d pieces, want 5: head, the run before, the changed part, the run after, the rest of head", len(got.wire))
	}
}

// TestEntryHitAllocatesNothing: looking up a cached entry by a struct key
// does not copy the key to the heap (a thousand default virtual hosts per
// route configuration).
func TestEntryHitAllocatesNothing(t *testing.T) {
	c := NewCache(CacheConfig{})
	st := &cacheState{gen: 1}
	key := defaultVhostKey{port: 80, namespace: "ns1", domainSuffix: "cluster.local"}
	build := func() proto.Message { return &routev3.VirtualHost{Name: "a"} }
	pair := func() (proto.Message, [][]byte) { return build(), nil }
	first := entry(c, st, key, pair, build)
	var got *cacheEntry
	if n := testing.AllocsPerRun(100, func() { got = entry(c, st, key, pair, build) }); n != 0 {
		t.Errorf("a hit allocates %v times, want 0", n)
	}
	if got != first {
		t.Error("a hit returned another entry")
	}
}

// TestLayoutKeepsDefaultEntries: after a VirtualService change, a route
// configuration's default virtual hosts come from its layout's kept
// entries, without a lookup in the cache's map (the entries dropped from
// it are not looked up and stored again); after a DestinationRule change
// they are looked up.
func TestLayoutKeepsDefaultEntries(t *testing.T) {
	c := NewCache(CacheConfig{})
	rs := cacheConfig()
	reg := bookinfoRegistry()
	p := relabel(productpageProxy(), "10.1.0.2", "reviews", "v1")
	cur := config.NewSnapshot(rs)
	pc := model.NextPushContext(nil, "v", model.DefaultMeshConfig(), cur, reg)
	defaults := func() int {
		n := 0
		c.entries.Range(func(k, _ any) bool {
			if _, ok := k.(defaultVhostKey); ok {
				n++
			}
			return true
		})
		return n
	}
	change := func(kind config.Kind) {
		t.Helper()
		i := slices.IndexFunc(rs, func(r config.Resource) bool { return r.Kind == kind })
		if kind == config.VirtualService { // still routing the same host
			r := rs[i]
			vs := proto.Clone(r.Spec).(*networking.VirtualService)
			vs.Http[0].Timeout = durp(7 * time.Second)
			r.Spec = vs
			cur = cur.Update([]config.Resource{r}, nil)
		} else {
			cur = cur.Update(nil, []config.Key{rs[i].Key()})
		}
		pc = model.NextPushContext(pc, "v", model.DefaultMeshConfig(), cur, reg)
		c.entries.Range(func(k, _ any) bool {
			if _, ok := k.(defaultVhostKey); ok {
				c.entries.Delete(k)
			}
			return true
		})
		if _, err := c.Generate(pc, p, RouteType, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Generate(pc, p, RouteType, nil); err != nil {
		t.Fatal(err)
	}
	if defaults() == 0 {
		t.Fatal("no default virtual host cached")
	}
	change(config.VirtualService)
	if n := defaults(); n != 0 {
		t.Fatalf("after a VirtualService change %d default virtual hosts were looked up in the cache, want 0", n)
	}
	change(config.DestinationRule)
	if defaults() == 0 {
		t.Fatal("after a DestinationRule change the default virtual hosts were not looked up")
	}
}
