package jwtauthn

import (
	"flag"
	"testing"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"

	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

var update = flag.Bool("update", false, "rewrite wire_gen.go from the descriptors")

// TestWireTable checks that wire_gen.go is what pbwiregen writes from the
// generated descriptors (-update rewrites it).
func TestWireTable(t *testing.T) {
	src, err := pbwiregen.Source("jwtauthn", "wireTable", []string{"wireJwtAuthentication"},
		(&jwtv3.JwtAuthentication{}).ProtoReflect().Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	pbwiregen.CheckFile(t, "wire_gen.go", src, *update, "./internal/proxy/filter/jwtauthn")
}
