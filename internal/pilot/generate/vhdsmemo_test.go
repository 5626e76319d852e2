package generate

import (
	"bytes"
	"slices"
	"testing"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// TestVHDSMemoMatchesUncached: within one push context the VHDS resources
// of sidecars with capture are memoized by route configuration key and
// name (cachedVirtualHost). Proxies that differ in one input of their
// routes -- namespace, labels a VirtualService's sourceLabels match or not,
// the Sidecar that applies, a version label nothing selects on -- ask for
// the same names, in
// both orders (so each is first, and fills the memo, once), with and
// without tracing: each gets what the uncached generator gives it, byte
// for byte, and the name set is that of every proxy, so a name one proxy's
// scope does not have is asked too.
func TestVHDSMemoMatchesUncached(t *testing.T) {
	variants := []func() *model.Proxy{
		func() *model.Proxy { return onDemand(productpageProxy()) },
		func() *model.Proxy { return onDemand(relabel(productpageProxy(), "10.1.0.21", "ratings", "v1")) },
		func() *model.Proxy { return onDemand(relabel(productpageProxy(), "10.1.0.22", "reviews", "v2")) },
		func() *model.Proxy { return onDemand(relabel(productpageProxy(), "10.1.0.23", "reviews", "v3")) },
		func() *model.Proxy { return onDemand(otherProxy()) },
		func() *model.Proxy { return onDemand(relabel(otherProxy(), "10.1.0.24", "productpage", "v1")) },
		// as the ratings variant, in a namespace with no Sidecar
		func() *model.Proxy {
			p := relabel(productpageProxy(), "10.1.0.25", "ratings", "v1")
			p.Namespace = "ns2"
			return onDemand(p)
		},
		// as the reviews variants (no sourceLabels matched), with its own
		// Sidecar (egress hosts ./* on 9080)
		func() *model.Proxy { return onDemand(relabel(productpageProxy(), "10.1.0.26", "egress-client", "v1")) },
	}
	for _, mesh := range []model.MeshConfig{model.DefaultMeshConfig(), tracingMesh()} {
		pc := model.NewPushContext("v", mesh, configSnapshot(bookinfoConfig()), bookinfoRegistry())
		var names []string
		for _, v := range variants {
			names = append(names, vhdsProbeNames(t, pc, v())...)
		}
		slices.Sort(names)
		names = slices.Compact(names)
		for _, order := range [][]int{{0, 1, 2, 3, 4, 5, 6, 7}, {7, 6, 5, 4, 3, 2, 1, 0}} {
			c := NewCache(CacheConfig{})
			for _, i := range order {
				p := variants[i]()
				want, err := Generate(pc, p, VirtualHostType, names)
				if err != nil {
					t.Fatal(err)
				}
				got, err := c.Generate(pc, variants[i](), VirtualHostType, names)
				if err != nil {
					t.Fatal(err)
				}
				if a, b := namesOf(got), namesOf(want); !slices.Equal(a, b) {
					t.Fatalf("variant %d (order %v): memoized names %v, uncached %v", i, order, a, b)
				}
				for j := range want {
					if !bytes.Equal(wire(t, got[j].Resource), wire(t, want[j].Resource)) {
						t.Fatalf("variant %d (order %v): %s differs from the uncached virtual host", i, order, want[j].Name)
					}
				}
			}
		}
	}
}
