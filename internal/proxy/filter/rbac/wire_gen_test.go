package rbac

import (
	"flag"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"

	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

var update = flag.Bool("update", false, "rewrite wire_gen.go from the descriptors")

// TestWireTable checks that wire_gen.go is what pbwiregen writes from the
// generated descriptors (-update rewrites it).
func TestWireTable(t *testing.T) {
	src, err := pbwiregen.Source("rbac", "wireTable", []string{"wireHTTP", "wirePerRoute", "wireNetwork", "wireRBAC", "wireURITemplate"},
		(&rbachttpv3.RBAC{}).ProtoReflect().Descriptor(), (&rbachttpv3.RBACPerRoute{}).ProtoReflect().Descriptor(),
		(&rbacnetv3.RBAC{}).ProtoReflect().Descriptor(), (&rbacv3.RBAC{}).ProtoReflect().Descriptor(),
		(&uritemplatev3.UriTemplateMatchConfig{}).ProtoReflect().Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	pbwiregen.CheckFile(t, "wire_gen.go", src, *update, "./internal/proxy/filter/rbac")
}
