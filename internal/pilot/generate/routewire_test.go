package generate

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
)

// TestSpliceRepeatedReusesPrev: a splice that copies runs of unchanged
// parts from the previous assembly gives the bytes of one from scratch
// and of proto.Marshal, whichever parts changed, were added or removed.
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
	var prev *assembly
	parts := [][]byte{}
	for round := range 200 {
		next := append([][]byte(nil), parts...)
		switch {
		case round%7 == 3 && len(next) > 0:
			next = next[:len(next)-1-rng.IntN(len(next))]
		default:
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
		}
		if round%11 == 5 {
			next = append(next, []byte{}) // an empty message
		}
		got := spliceRepeated(head, vhostsField, next, prev)
		fresh := spliceRepeated(head, vhostsField, next, nil)
		if got == nil || fresh == nil {
			t.Fatalf("round %d: nil assembly", round)
		}
		if !bytes.Equal(got.out, fresh.out) {
			t.Fatalf("round %d: splice with the previous assembly differs from one without", round)
		}
		rc := &routev3.RouteConfiguration{Name: "80", ValidateClusters: boolv(false)}
		for _, b := range next {
			vh := &routev3.VirtualHost{}
			if err := proto.Unmarshal(b, vh); err != nil {
				t.Fatal(err)
			}
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
		}
		if !wireIs(got.out, rc) {
			t.Fatalf("round %d: splice is not the route configuration's encoding", round)
		}
		prev, parts = got, next
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
	pair := func() (proto.Message, []byte) { return build(), nil }
	first := entry(c, st, key, pair, build)
	var got *cacheEntry
	if n := testing.AllocsPerRun(100, func() { got = entry(c, st, key, pair, build) }); n != 0 {
		t.Errorf("a hit allocates %v times, want 0", n)
	}
	if got != first {
		t.Error("a hit returned another entry")
	}
}
