package rbac

import (
	"fmt"
	"math/rand/v2"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter/filtercorpus"
	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

var rbacStrings = []string{"/api", "GET", ":method", "x-user", "istio_authn", "request.auth.claims", "groups", "10.0.0.0",
	"::1", "192.168.0.1", "spiffe://cluster.local/ns/default/sa/a", "(a|b)", "[", "/x/{*}/y/{**}", "/{a=**}", "/a*b"}

// filler fills generated messages at random; an Any gets a
// UriTemplateMatchConfig (or, sometimes, junk) so that uri_template is
// reached.
func filler(seed uint64) *pbwiregen.Filler {
	return &pbwiregen.Filler{R: rand.New(rand.NewPCG(seed, 11)), P: 0.35, MaxDepth: 7, Strings: rbacStrings,
		Skip: map[protoreflect.FullName]bool{"google.protobuf.Any": true, "xds.type.matcher.v3.Matcher": true,
			"google.api.expr.v1alpha1.Expr": true, "google.api.expr.v1alpha1.CheckedExpr": true}}
}

// fixAnys gives the uri_template extensions a typed_config.
func fixAnys(r *rand.Rand, m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool { fixAnys(r, mv.Message()); return true })
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := 0; i < v.List().Len(); i++ {
					fixAnys(r, v.List().Get(i).Message())
				}
			}
		case fd.Message() != nil:
			if tc, ok := v.Message().Interface().(*corev3.TypedExtensionConfig); ok && fd.Name() == "uri_template" {
				switch r.IntN(4) {
				case 0:
					tc.TypedConfig = &anypb.Any{TypeUrl: "type.googleapis.com/x.Y"}
				case 1:
					tc.TypedConfig = &anypb.Any{TypeUrl: "type.googleapis.com/" + uriTemplateName, Value: []byte{0x0a, 0x05}}
				default:
					tc.TypedConfig, _ = anypb.New(&uritemplatev3.UriTemplateMatchConfig{PathTemplate: rbacStrings[r.IntN(len(rbacStrings))]})
				}
				return true
			}
			fixAnys(r, v.Message())
		}
		return true
	})
}

func random(f *pbwiregen.Filler, m proto.Message) []byte {
	f.Fill(m.ProtoReflect())
	fixAnys(f.R, m.ProtoReflect())
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func compareHTTP(t testing.TB, b []byte) error {
	t.Helper()
	a := &anypb.Any{TypeUrl: TypeURL, Value: b}
	want, werr := newGenerated("f", a)
	have, herr := New("f", a)
	if herr == nil {
		pbwiregen.SameParse[any](t, fmt.Sprintf("http %x", b), want, werr, have.(*Filter), herr, "decode ", nil)
	} else {
		pbwiregen.SameParse[any](t, fmt.Sprintf("http %x", b), want, werr, nil, herr, "decode ", nil)
	}
	return herr
}

func compareNetwork(t testing.TB, b []byte) error {
	t.Helper()
	a := &anypb.Any{TypeUrl: NetworkTypeURL, Value: b}
	want, werr := newNetworkGenerated("f", a)
	have, herr := NewNetwork("f", a)
	if herr == nil {
		pbwiregen.SameParse[any](t, fmt.Sprintf("network %x", b), want, werr, have.(*Network), herr, "decode ", nil)
	} else {
		pbwiregen.SameParse[any](t, fmt.Sprintf("network %x", b), want, werr, nil, herr, "decode ", nil)
	}
	return herr
}

func comparePerRoute(t testing.TB, b []byte) error {
	t.Helper()
	a := &anypb.Any{TypeUrl: PerRouteURL, Value: b}
	want, werr := perRouteGenerated(a)
	have, herr := PerRoute(a)
	pbwiregen.SameParse[any](t, fmt.Sprintf("per-route %x", b), want, werr, have, herr, "decode ", nil)
	return herr
}

// TestDecodeMatchesGenerated: random HTTP and network RBAC filter configs
// and per-route configs (a quarter of them two messages concatenated,
// which merge) compile to deep-equal filters, or the same error, over the
// wire and through the generated types.
func TestDecodeMatchesGenerated(t *testing.T) {
	f := filler(1)
	var accepted [3]int
	for i := range 2400 {
		var b []byte
		var m func() proto.Message
		switch i % 3 {
		case 0:
			m = func() proto.Message { return &rbachttpv3.RBAC{} }
		case 1:
			m = func() proto.Message { return &rbacnetv3.RBAC{} }
		default:
			m = func() proto.Message { return &rbachttpv3.RBACPerRoute{} }
		}
		b = random(f, m())
		if i%4 == 3 {
			b = append(b, random(f, m())...)
		}
		var err error
		switch i % 3 {
		case 0:
			err = compareHTTP(t, b)
		case 1:
			err = compareNetwork(t, b)
		default:
			err = comparePerRoute(t, b)
		}
		if err == nil {
			accepted[i%3]++
		}
	}
	t.Logf("accepted http/network/per-route: %v", accepted)
	for i, n := range accepted {
		if n < 60 {
			t.Errorf("only %d of 800 accepted (%d): the generator does not reach the compiler", n, i)
		}
	}
}

func countKinds(n node, seen map[kind]int) {
	seen[n.kind]++
	for _, k := range n.kids {
		countKinds(k, seen)
	}
}

// TestCompileMatchesGeneratedSmall reaches the deep rules: one policy,
// one rule each, so that most configs are accepted.
func TestCompileMatchesGeneratedSmall(t *testing.T) {
	f := filler(2)
	f.P, f.OneofP, f.MaxDepth = 0.5, 1, 5
	f.Avoid = map[protoreflect.FullName]bool{}
	for _, n := range []string{"Permission.matcher", "Permission.sourced_metadata", "Principal.filter_state", "Principal.sourced_metadata", "Principal.custom"} {
		f.Avoid["envoy.config.rbac.v3."+protoreflect.FullName(n)] = true
	}
	accepted := 0
	kinds := map[kind]int{}
	for range 3000 {
		perm, id := &rbacv3.Permission{}, &rbacv3.Principal{}
		f.Fill(perm.ProtoReflect())
		fixAnys(f.R, perm.ProtoReflect())
		f.Fill(id.ProtoReflect())
		r := &rbacv3.RBAC{Action: rbacv3.RBAC_Action(f.R.IntN(3)), Policies: map[string]*rbacv3.Policy{"p": {Permissions: []*rbacv3.Permission{perm}, Principals: []*rbacv3.Principal{id}}}}
		b, _ := proto.Marshal(r)
		want, werr := compileGenerated(r)
		have, herr := Compile(b)
		pbwiregen.SameParse[any](t, fmt.Sprintf("%v", r), want, werr, have, herr, "decode ", nil)
		if herr == nil {
			accepted++
			for _, p := range have.Policies {
				for _, n := range append(p.Permissions, p.Principals...) {
					countKinds(n, kinds)
				}
			}
		}
	}
	t.Logf("%d of 3000 accepted; rule kinds %v", accepted, kinds)
	if len(kinds) < 14 {
		t.Errorf("accepted rule kinds %v: every kind should be reached", kinds)
	}
	if accepted < 300 {
		t.Errorf("only %d of 3000 accepted", accepted)
	}
}

// TestDecodeGeneratedCorpus: every RBAC config mastd generates for
// Bookinfo, Istio's samples and filtercorpus.Security compiles the same
// both ways and is accepted.
func TestDecodeGeneratedCorpus(t *testing.T) {
	corpus := filtercorpus.Configs(t)
	n := 0
	for typ, cmp := range map[string]func(testing.TB, []byte) error{TypeURL: compareHTTP, NetworkTypeURL: compareNetwork, PerRouteURL: comparePerRoute} {
		for _, b := range corpus[typ] {
			n++
			if err := cmp(t, b); err != nil {
				t.Errorf("%s: %v", typ, err)
			}
		}
	}
	if n < 4 {
		t.Fatalf("%d RBAC configs generated, want at least 4", n)
	}
	t.Logf("%d RBAC configs", n)
}

// FuzzDecodeFilters: the three filter configs decode as the generated
// decoder does on any bytes (byte 0 picks the message).
func FuzzDecodeFilters(f *testing.F) {
	fl := filler(3)
	for i := range 12 {
		var m proto.Message = &rbachttpv3.RBAC{}
		if i%3 == 1 {
			m = &rbacnetv3.RBAC{}
		} else if i%3 == 2 {
			m = &rbachttpv3.RBACPerRoute{}
		}
		f.Add(append([]byte{byte(i % 3)}, random(fl, m)...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		switch b[0] % 3 {
		case 0:
			compareHTTP(t, b[1:])
		case 1:
			compareNetwork(t, b[1:])
		default:
			comparePerRoute(t, b[1:])
		}
	})
}
