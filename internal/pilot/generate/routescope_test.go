package generate

import (
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
