package rlaction_test

import (
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/proxy/filter/rlaction"
	"github.com/mast-mesh/mast/internal/proxy/filter/rlaction/rlactiongen"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

// TestParseWireRefusesByName: the RateLimit fields mastd never generates
// are refused by their path, by the wire parser and its generated-type
// reference alike; the same messages without them are accepted.
func TestParseWireRefusesByName(t *testing.T) {
	table, err := pbwiregen.Table((&routev3.RateLimit{}).ProtoReflect().Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	generic := func(value, def string) *routev3.RateLimit_Action {
		return &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
			GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorValue: value, DefaultValue: def}}}
	}
	remote := &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RemoteAddress_{}}
	for _, c := range []struct {
		rl   *routev3.RateLimit
		want string
	}{
		{&routev3.RateLimit{Actions: []*routev3.RateLimit_Action{remote}}, ""},
		{&routev3.RateLimit{Actions: []*routev3.RateLimit_Action{remote}, XRatelimitOption: routev3.RateLimit_OFF},
			"rate_limits[0].x_ratelimit_option: not supported"},
		{&routev3.RateLimit{Actions: []*routev3.RateLimit_Action{remote}, XRatelimitOption: routev3.RateLimit_DRAFT_VERSION_03},
			"rate_limits[0].x_ratelimit_option: not supported"},
		{&routev3.RateLimit{Actions: []*routev3.RateLimit_Action{generic("v", "")}}, ""},
		{&routev3.RateLimit{Actions: []*routev3.RateLimit_Action{remote, generic("v", "d")}},
			"rate_limits[0].actions[1].generic_key.default_value: not supported"},
		{&routev3.RateLimit{Actions: []*routev3.RateLimit_Action{generic("", "d")}},
			"rate_limits[0].actions[0].generic_key.default_value: not supported"},
	} {
		b, err := proto.Marshal(c.rl)
		if err != nil {
			t.Fatal(err)
		}
		m, err := pbwire.Decode(table, 0, b)
		if err != nil {
			t.Fatal(err)
		}
		_, herr := rlaction.ParseWire("rate_limits", []*pbwire.Msg{m})
		_, werr := rlactiongen.Parse("rate_limits", []*routev3.RateLimit{c.rl})
		for _, got := range []struct {
			who string
			err error
		}{{"wire", herr}, {"generated", werr}} {
			switch {
			case c.want == "" && got.err != nil:
				t.Errorf("%v: %s parser: %v", c.rl, got.who, got.err)
			case c.want != "" && (got.err == nil || got.err.Error() != c.want):
				t.Errorf("%v: %s parser: %v, want %q", c.rl, got.who, got.err, c.want)
			}
		}
	}
}
