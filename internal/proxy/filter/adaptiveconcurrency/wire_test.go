package adaptiveconcurrency

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	acv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/adaptive_concurrency/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mast-mesh/mast/internal/proxy/filter/filtercorpus"
	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

// compare parses b both ways: deep-equal configs or the same error. Bytes
// proto.Unmarshal refuses must be refused by the wire decoder (the wording
// of a decode error is its decoder's).
func compare(t testing.TB, b []byte) error {
	t.Helper()
	have, herr := Parse(b)
	var m acv3.AdaptiveConcurrency
	if err := proto.Unmarshal(b, &m); err != nil {
		if herr == nil {
			t.Fatalf("%x: proto.Unmarshal refuses (%v), the wire decoder accepts", b, err)
		}
		return herr
	}
	want, werr := parseGenerated(&m)
	pbwiregen.SameParse(t, fmt.Sprintf("%x", b), want, werr, have, herr, "", nil)
	return herr
}

// TestParseMatchesGenerated: random AdaptiveConcurrency messages (a
// quarter of them two concatenated, which merge) parse to equal configs or
// the same error.
func TestParseMatchesGenerated(t *testing.T) {
	f := &pbwiregen.Filler{R: rand.New(rand.NewPCG(1, 2)), P: 0.5, OneofP: 0.9, MaxDepth: 4}
	lean := &pbwiregen.Filler{R: rand.New(rand.NewPCG(3, 4)), P: 0.8, OneofP: 1, MaxDepth: 4, Avoid: map[protoreflect.FullName]bool{
		"envoy.extensions.filters.http.adaptive_concurrency.v3.AdaptiveConcurrency.enabled": true,
	}}
	accepted, kinds := 0, map[[2]bool]int{}
	for i := range 6000 {
		f := f
		if i%2 == 1 {
			f = lean
		}
		gen := func() []byte {
			m := &acv3.AdaptiveConcurrency{}
			f.Fill(m.ProtoReflect())
			if f == lean {
				plausible(m)
			}
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
			kinds[[2]bool{c.FixedMinRTT != 0, c.Status != 503}]++
		}
	}
	t.Logf("%d of 6000 accepted: %v", accepted, kinds)
	if accepted < 250 || len(kinds) < 4 {
		t.Errorf("%d accepted (%v): the generator does not reach the parser", accepted, kinds)
	}
}

// plausible brings the random durations, percentile and uint32s of a lean
// message into the ranges the parser accepts (keeping 0s and nils), so
// that the accepting paths are reached often.
func plausible(m *acv3.AdaptiveConcurrency) {
	g := m.GetGradientControllerConfig()
	if g == nil {
		return
	}
	if p := g.GetSampleAggregatePercentile(); p != nil {
		p.Value = math.Mod(math.Abs(p.Value), 100)
		if math.IsNaN(p.Value) {
			p.Value = 50
		}
	}
	for _, d := range []*durationpb.Duration{g.GetConcurrencyLimitParams().GetConcurrencyUpdateInterval(),
		g.GetMinRttCalcParams().GetInterval(), g.GetMinRttCalcParams().GetFixedValue()} {
		if d != nil {
			d.Seconds, d.Nanos = d.Seconds&0xff, d.Nanos&0x3fffffff%1e9
		}
	}
	if v := g.GetConcurrencyLimitParams().GetMaxConcurrencyLimit(); v != nil && v.Value%4 != 0 {
		v.Value = 1 << 20
	}
}

// corpusYAML turns adaptive concurrency on for two Bookinfo services, with
// defaults and with every knob.
const corpusYAML = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ac-reviews
  namespace: default
  annotations: {networking.mast.io/adaptive-concurrency: "true"}
spec: {host: reviews.default.svc.cluster.local}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ac-productpage
  namespace: default
  annotations: {networking.mast.io/adaptive-concurrency: "updateInterval=50ms,minRTTInterval=30s,percentile=90,maxLimit=200,minConcurrency=4,requestCount=20,buffer=10,jitter=5"}
spec: {host: productpage.default.svc.cluster.local}
`

// TestParseGeneratedCorpus: the configs mastd generates for DestinationRules
// with the adaptive-concurrency annotation parse the same both ways and
// are accepted.
func TestParseGeneratedCorpus(t *testing.T) {
	corpus := filtercorpus.Configs(t, corpusYAML)[TypeURL]
	if len(corpus) < 2 {
		t.Fatalf("%d adaptive concurrency configs generated, want at least 2", len(corpus))
	}
	for _, b := range corpus {
		if err := compare(t, b); err != nil {
			t.Errorf("%v", err)
		}
	}
	t.Logf("%d adaptive concurrency configs", len(corpus))
}

// FuzzParse: any bytes parse as the generated decoder parses them.
func FuzzParse(f *testing.F) {
	fl := &pbwiregen.Filler{R: rand.New(rand.NewPCG(5, 6)), P: 0.7, OneofP: 1, MaxDepth: 4}
	for range 8 {
		m := &acv3.AdaptiveConcurrency{}
		fl.Fill(m.ProtoReflect())
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { compare(t, b) })
}
