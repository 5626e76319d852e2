package fault

import (
	"fmt"
	"math/rand/v2"
	"testing"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
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
	a := &anypb.Any{TypeUrl: TypeURL, Value: b}
	want, werr := parseAnyGenerated(a)
	have, herr := ParseAny(a)
	pbwiregen.SameParse(t, fmt.Sprintf("%x", b), want, werr, have, herr, "decode ", nil)
	return herr
}

// TestParseMatchesGenerated: random HTTPFaults (a quarter of them two
// concatenated, which merge) parse to equal configs or the same error.
func TestParseMatchesGenerated(t *testing.T) {
	f := &pbwiregen.Filler{R: rand.New(rand.NewPCG(1, 2)), P: 0.3, OneofP: 0.9, MaxDepth: 4}
	lean := &pbwiregen.Filler{R: rand.New(rand.NewPCG(3, 4)), P: 0.7, OneofP: 0.9, MaxDepth: 4, Avoid: map[protoreflect.FullName]bool{}}
	for _, n := range []string{"headers", "downstream_nodes", "upstream_cluster", "max_active_faults", "response_rate_limit", "filter_metadata"} {
		lean.Avoid["envoy.extensions.filters.http.fault.v3.HTTPFault."+protoreflect.FullName(n)] = true
	}
	lean.Avoid["envoy.extensions.filters.http.fault.v3.FaultAbort.response_body"] = true
	accepted, kinds := 0, map[[2]bool]int{}
	for i := range 3000 {
		f := f
		if i%2 == 1 {
			f = lean
		}
		gen := func() []byte {
			m := &faultv3.HTTPFault{}
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
			kinds[[2]bool{c.Delay != 0, c.AbortStatus != 0}]++
		}
	}
	t.Logf("%d of 3000 accepted: %v", accepted, kinds)
	if accepted < 500 || len(kinds) < 4 {
		t.Errorf("%d accepted (%v): the generator does not reach the parser", accepted, kinds)
	}
}

// TestParseGeneratedCorpus: the fault configs mastd generates (Istio's
// fault injection samples) parse the same both ways and are accepted.
func TestParseGeneratedCorpus(t *testing.T) {
	corpus := filtercorpus.Configs(t)[TypeURL]
	if len(corpus) < 2 {
		t.Fatalf("%d fault configs generated, want at least 2", len(corpus))
	}
	for _, b := range corpus {
		if err := compare(t, b); err != nil {
			t.Errorf("%v", err)
		}
	}
	t.Logf("%d fault configs", len(corpus))
}

// FuzzParse: any bytes parse as the generated decoder parses them.
func FuzzParse(f *testing.F) {
	fl := &pbwiregen.Filler{R: rand.New(rand.NewPCG(5, 6)), P: 0.5, OneofP: 1, MaxDepth: 4}
	for range 8 {
		m := &faultv3.HTTPFault{}
		fl.Fill(m.ProtoReflect())
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { compare(t, b) })
}

// TestParseRefusesResponseBody: an abort's response_body, which the filter
// does not send, is refused naming the field rather than ignored.
func TestParseRefusesResponseBody(t *testing.T) {
	m := &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
		ErrorType:    &faultv3.FaultAbort_HttpStatus{HttpStatus: 503},
		ResponseBody: "oops",
	}}
	b, _ := proto.Marshal(m)
	err := compare(t, b)
	if err == nil || err.Error() != "abort.response_body: not supported" {
		t.Fatalf("response_body: error %v, want abort.response_body: not supported", err)
	}
	m.Abort.ResponseBody = ""
	b, _ = proto.Marshal(m)
	if err := compare(t, b); err != nil {
		t.Fatalf("without response_body: %v", err)
	}
}
