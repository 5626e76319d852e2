package ratelimit

import (
	"flag"
	"testing"

	rlhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

var update = flag.Bool("update", false, "rewrite wire_gen.go from the descriptors")

// TestWireTable checks that wire_gen.go is what pbwiregen writes from the
// generated descriptors (-update rewrites it).
func TestWireTable(t *testing.T) {
	src, err := pbwiregen.Source("ratelimit", "wireTable", []string{"wireRateLimitResponse", "wireRateLimit"},
		(&rlsv3.RateLimitResponse{}).ProtoReflect().Descriptor(), (&rlhttpv3.RateLimit{}).ProtoReflect().Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	pbwiregen.CheckFile(t, "wire_gen.go", src, *update, "./internal/proxy/filter/ratelimit")
}
