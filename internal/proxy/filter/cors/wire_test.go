package cors

import (
	"fmt"
	"math/rand/v2"
	"testing"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter/filtercorpus"
	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

// compare parses b both ways: deep-equal configs or the same error (bytes
// that are not a protobuf encoding fail both ways, worded by their
// decoders).
func compare(t testing.TB, b []byte) error {
	t.Helper()
	a := &anypb.Any{TypeUrl: PolicyTypeURL, Value: b}
	want, werr := perRouteGenerated(a)
	have, herr := PerRoute(a)
	pbwiregen.SameParse(t, fmt.Sprintf("%x", b), want, werr, have, herr, "decode ", nil)
	return herr
}

// TestParseMatchesGenerated: random CorsPolicies (a quarter of them two
// concatenated, which merge) parse to equal configs or the same error.
func TestParseMatchesGenerated(t *testing.T) {
	f := &pbwiregen.Filler{R: rand.New(rand.NewPCG(1, 2)), P: 0.3, OneofP: 0.9, MaxDepth: 4}
	lean := &pbwiregen.Filler{R: rand.New(rand.NewPCG(3, 4)), P: 0.7, OneofP: 0.9, MaxDepth: 4, Avoid: map[protoreflect.FullName]bool{}}
	lean.Avoid["envoy.extensions.filters.http.cors.v3.CorsPolicy.shadow_enabled"] = true
	lean.Avoid["envoy.type.matcher.v3.StringMatcher.custom"] = true
	accepted, kinds := 0, map[[2]bool]int{}
	for i := range 3000 {
		f := f
		if i%2 == 1 {
			f = lean
		}
		gen := func() []byte {
			m := &corsv3.CorsPolicy{}
			f.Fill(m.ProtoReflect())
			b, _ := proto.Marshal(m)
			return b
		}
		b := gen()
		if i%4 == 3 {
			b = append(b, gen()...)
		}
		if compare(t, b) == nil {
			accepted++
			c, _ := Parse(b)
			kinds[[2]bool{len(c.Origins) > 0, c.IgnoreUnmatchedPreflights}]++
		}
	}
	t.Logf("%d of 3000 accepted: %v", accepted, kinds)
	if accepted < 500 || len(kinds) < 4 {
		t.Errorf("%d accepted (%v): the generator does not reach the parser", accepted, kinds)
	}
}

const corsVirtualService = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings-cors, namespace: default}
spec:
  hosts: [ratings]
  http:
  - corsPolicy:
      allowOrigins: [{exact: "https://example.com"}, {prefix: "https://app."}, {regex: "https://.*[.]example[.]org"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-user]
      exposeHeaders: [x-trace]
      maxAge: 24h
      allowCredentials: true
      unmatchedPreflights: IGNORE
    route: [{destination: {host: ratings}}]
`

// TestParseGeneratedCorpus: the CORS policies mastd generates (Istio's
// samples) parse the same both ways and are accepted.
func TestParseGeneratedCorpus(t *testing.T) {
	corpus := filtercorpus.Configs(t, corsVirtualService)[PolicyTypeURL]
	if len(corpus) < 1 {
		t.Fatalf("%d CORS policies generated, want at least 2", len(corpus))
	}
	for _, b := range corpus {
		if err := compare(t, b); err != nil {
			t.Errorf("%v", err)
		}
	}
	t.Logf("%d CORS policies", len(corpus))
}

// FuzzParse: any bytes parse as the generated decoder parses them.
func FuzzParse(f *testing.F) {
	fl := &pbwiregen.Filler{R: rand.New(rand.NewPCG(5, 6)), P: 0.5, OneofP: 1, MaxDepth: 4}
	for range 8 {
		m := &corsv3.CorsPolicy{}
		fl.Fill(m.ProtoReflect())
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { compare(t, b) })
}
