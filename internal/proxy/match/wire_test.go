package match

import (
	"flag"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

var update = flag.Bool("update", false, "rewrite wire_gen.go from the descriptors")

// TestWireTable checks that wire_gen.go is what pbwiregen writes from the
// generated descriptors (-update rewrites it).
func TestWireTable(t *testing.T) {
	src, err := pbwiregen.Source("match", "wireTable", []string{"wireStringMatcher", "wireHeaderMatcher"},
		(&matcherv3.StringMatcher{}).ProtoReflect().Descriptor(), (&routev3.HeaderMatcher{}).ProtoReflect().Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	pbwiregen.CheckFile(t, "wire_gen.go", src, *update, "./internal/proxy/match")
}
