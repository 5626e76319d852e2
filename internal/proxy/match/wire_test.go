package match

import (
	"bytes"
	"flag"
	"os"
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
	if *update {
		if err := os.WriteFile("wire_gen.go", src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile("wire_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, src) {
		t.Fatal("wire_gen.go is stale: go test ./internal/proxy/match -run TestWireTable -update")
	}
}
