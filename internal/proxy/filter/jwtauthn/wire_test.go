package jwtauthn

import (
	"fmt"
	"math/rand/v2"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

// compare parses b both ways: deep-equal configs or the same error (bytes
// that are not a protobuf encoding fail both ways, worded by their
// decoders).
func compare(t testing.TB, b []byte) error {
	t.Helper()
	a := &anypb.Any{TypeUrl: TypeURL, Value: b}
	want, werr := parseAnyGenerated(a)
	have, herr := ParseAny(a)
	pbwiregen.SameParse(t, fmt.Sprintf("%x", b), want, werr, have, herr, "typed_config: ", nil)
	return herr
}

var jwtStrings = []string{"origins-0", "p1", "issuer.example", "https://aud.example/", "x-jwt", "Bearer ", "/api", "sub", "a.b", "(a", "/x/.*"}

func jwtFiller(seed uint64) *pbwiregen.Filler {
	return &pbwiregen.Filler{R: rand.New(rand.NewPCG(seed, 5)), P: 0.3, OneofP: 0.8, MaxDepth: 6, Strings: jwtStrings,
		Skip: map[protoreflect.FullName]bool{"google.protobuf.Any": true, "google.protobuf.Struct": true}}
}

// fixJWKS gives most local_jwks the test key set, so that providers parse.
func fixJWKS(r *rand.Rand, jwks string, m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool { fixJWKS(r, jwks, mv.Message()); return true })
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := 0; i < v.List().Len(); i++ {
					fixJWKS(r, jwks, v.List().Get(i).Message())
				}
			}
		case fd.Message() != nil:
			if ds, ok := v.Message().Interface().(*corev3.DataSource); ok && r.IntN(5) > 0 {
				ds.Specifier = &corev3.DataSource_InlineString{InlineString: jwks}
				return true
			}
			fixJWKS(r, jwks, v.Message())
		}
		return true
	})
}

// TestParseMatchesGenerated: random JwtAuthentications (a quarter of them
// two concatenated, which merge) parse to deep-equal configs, or the same
// error, over the wire and through the generated types.
func TestParseMatchesGenerated(t *testing.T) {
	jwks := loadKeys().jwks
	f, lean := jwtFiller(1), jwtFiller(3)
	// lean leaves out the fields the filter refuses, so that most configs
	// reach the requirement and provider parsers.
	lean.P, lean.OneofP = 0.5, 1
	lean.Avoid = map[protoreflect.FullName]bool{}
	for _, n := range []string{"JwtProvider.subjects", "JwtProvider.normalize_payload_in_metadata", "JwtProvider.header_in_metadata",
		"JwtProvider.failed_status_in_metadata", "JwtProvider.jwt_cache_config", "JwtProvider.max_lifetime", "JwtProvider.clear_route_cache",
		"JwtProvider.remote_jwks", "JwtAuthentication.filter_state_rules", "JwtRequirement.extract_only_without_validation"} {
		lean.Avoid["envoy.extensions.filters.http.jwt_authn.v3."+protoreflect.FullName(n)] = true
	}
	for _, n := range []string{"headers", "query_parameters", "cookies", "grpc", "tls_context", "dynamic_metadata", "filter_state",
		"runtime_fraction", "connect_matcher", "path_match_policy"} {
		lean.Avoid["envoy.config.route.v3.RouteMatch."+protoreflect.FullName(n)] = true
	}
	accepted, withRules := 0, 0
	for i := range 1500 {
		f := f
		if i%2 == 1 {
			f = lean
		}
		gen := func() []byte {
			m := &jwtv3.JwtAuthentication{}
			f.Fill(m.ProtoReflect())
			fixJWKS(f.R, jwks, m.ProtoReflect())
			b, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		b := gen()
		if i%4 == 3 {
			b = append(b, gen()...)
		}
		if compare(t, b) == nil {
			accepted++
		}
	}
	// Istio's shape with random providers, matches and requirements
	// filled in, so that whole configs are accepted.
	for range 1500 {
		m := istioConfig(jwks, nil)
		p := m.Providers["origins-0"]
		lean.Fill(p.ProtoReflect())
		fixJWKS(lean.R, jwks, p.ProtoReflect())
		if p.GetLocalJwks() == nil || lean.R.IntN(2) == 0 {
			p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: jwks}}}
		}
		lean.Fill(m.Rules[0].Match.ProtoReflect())
		r := &jwtv3.RequirementRule{}
		lean.Fill(r.ProtoReflect())
		m.Rules = append(m.Rules, r)
		if lean.R.IntN(2) == 0 {
			m.RequirementMap = map[string]*jwtv3.JwtRequirement{"p1": {RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "origins-0"}}}
		}
		b, _ := proto.Marshal(m)
		if compare(t, b) == nil {
			accepted++
			withRules++
		}
	}
	t.Logf("%d of 3000 accepted, %d of them Istio-shaped", accepted, withRules)
	if accepted < 300 || withRules < 25 {
		t.Errorf("%d accepted, %d Istio-shaped: the generator does not reach the parser", accepted, withRules)
	}
}

// FuzzParse: any bytes parse as the generated decoder parses them.
func FuzzParse(f *testing.F) {
	jwks := loadKeys().jwks
	fl := jwtFiller(2)
	for range 8 {
		m := &jwtv3.JwtAuthentication{}
		fl.Fill(m.ProtoReflect())
		fixJWKS(fl.R, jwks, m.ProtoReflect())
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	b, _ := proto.Marshal(istioConfig(jwks, nil))
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) { compare(t, b) })
}

// CompareForTest is compare, for the corpus test (package jwtauthn_test:
// filtercorpus imports internal/config, which imports this package).
var CompareForTest = compare
