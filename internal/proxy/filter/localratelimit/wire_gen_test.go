package localratelimit

import (
	"flag"
	"testing"

	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	netlocalrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"

	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

var update = flag.Bool("update", false, "rewrite wire_gen.go from the descriptors")

// TestWireTable checks that wire_gen.go is what pbwiregen writes from the
// generated descriptors (-update rewrites it).
func TestWireTable(t *testing.T) {
	src, err := pbwiregen.Source("localratelimit", "wireTable", []string{"wireNetworkLocalRateLimit", "wireLocalRateLimit"},
		(&netlocalrlv3.LocalRateLimit{}).ProtoReflect().Descriptor(), (&localrlv3.LocalRateLimit{}).ProtoReflect().Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	pbwiregen.CheckFile(t, "wire_gen.go", src, *update, "./internal/proxy/filter/localratelimit")
}
