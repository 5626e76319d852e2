package ratelimit

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	rlcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/filter/rlaction"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

// TestRequestMatchesGenerated: appendRequest encodes what proto.Marshal
// encodes for the generated RateLimitRequest (byte for byte), for random
// domains and descriptors, empty strings included.
func TestRequestMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	strs := []string{"", "a", "user", "x-user", strings.Repeat("v", 200), "é"}
	for range 2000 {
		domain := strs[1+r.IntN(len(strs)-1)]
		want := &rlsv3.RateLimitRequest{Domain: domain}
		var descs [][]rlaction.Entry
		for range r.IntN(4) {
			var es []rlaction.Entry
			d := &rlcommonv3.RateLimitDescriptor{}
			for range 1 + r.IntN(3) {
				e := rlaction.Entry{Key: strs[r.IntN(len(strs))], Value: strs[r.IntN(len(strs))]}
				es = append(es, e)
				d.Entries = append(d.Entries, &rlcommonv3.RateLimitDescriptor_Entry{Key: e.Key, Value: e.Value})
			}
			descs = append(descs, es)
			want.Descriptors = append(want.Descriptors, d)
		}
		wb, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if hb := appendRequest(nil, domain, descs); string(hb) != string(wb) {
			t.Fatalf("%q %q: appendRequest %x, proto.Marshal %x", domain, descs, hb, wb)
		}
	}
}

// outcome is what the filter makes of a response: its headers, the
// retry-after value and whether it is over limit.
func outcome(sts func(r *filter.Request) int64, over bool) string {
	r := &filter.Request{}
	reset := sts(r)
	return fmt.Sprintf("%v %d %v", r.ResponseHeaders, reset, over)
}

// compareResponse reads b as the filter did with the generated types and
// as it does now: the same headers, retry-after and verdict.
func compareResponse(t testing.TB, b []byte) {
	t.Helper()
	var m rlsv3.RateLimitResponse
	uerr := proto.Unmarshal(b, &m)
	w, werr := pbwire.Decode(wireTable, wireRateLimitResponse, b)
	if (uerr != nil) != (werr != nil) {
		t.Fatalf("%x: proto.Unmarshal %v, pbwire %v", b, uerr, werr)
	}
	if uerr != nil {
		return
	}
	want := outcome(func(r *filter.Request) int64 {
		setDraft03Generated(r, m.GetStatuses())
		return minResetGenerated(m.GetStatuses())
	},
		m.GetOverallCode() == rlsv3.RateLimitResponse_OVER_LIMIT)
	have := outcome(func(r *filter.Request) int64 {
		setDraft03(r, w.Subs(respStatuses))
		return minReset(w.Subs(respStatuses))
	},
		w.I32(respOverallCode) == overLimit)
	if want != have {
		t.Fatalf("%x: generated %s\nwire %s", b, want, have)
	}
}

// TestResponseMatchesGenerated: random RateLimitResponses (a quarter of
// them two concatenated, which merge) give the same draft-03 headers,
// retry-after and verdict both ways.
func TestResponseMatchesGenerated(t *testing.T) {
	f := &pbwiregen.Filler{R: rand.New(rand.NewPCG(3, 4)), P: 0.6, OneofP: 1, MaxDepth: 4}
	withHeaders := 0
	for i := range 3000 {
		gen := func() []byte {
			m := &rlsv3.RateLimitResponse{}
			f.Fill(m.ProtoReflect())
			for _, s := range m.Statuses {
				if s.CurrentLimit != nil {
					s.CurrentLimit.Unit = rlsv3.RateLimitResponse_RateLimit_Unit(uint32(s.CurrentLimit.Unit) % 9)
				}
				s.Code = rlsv3.RateLimitResponse_Code(uint32(s.Code) % 3)
			}
			m.OverallCode = rlsv3.RateLimitResponse_Code(uint32(m.OverallCode) % 3)
			b, _ := proto.Marshal(m)
			return b
		}
		b := gen()
		if i%4 == 3 {
			b = append(b, gen()...)
		}
		compareResponse(t, b)
		w, _ := pbwire.Decode(wireTable, wireRateLimitResponse, b)
		r := &filter.Request{}
		setDraft03(r, w.Subs(respStatuses))
		if len(r.ResponseHeaders) > 0 {
			withHeaders++
		}
	}
	t.Logf("%d of 3000 responses set draft-03 headers", withHeaders)
	if withHeaders < 500 {
		t.Errorf("%d responses set headers: the generator does not reach setDraft03", withHeaders)
	}
}

// TestWindowUnits: every unit's window, with and without a multiplier,
// is the same both ways.
func TestWindowUnits(t *testing.T) {
	for u := range int32(9) {
		for _, mult := range []*uint32{nil, new(uint32), ptr(uint32(3))} {
			l := &rlsv3.RateLimitResponse_RateLimit{Unit: rlsv3.RateLimitResponse_RateLimit_Unit(u), RequestsPerUnit: 5}
			if mult != nil {
				l.UnitMultiplier = wrapperspb.UInt32(*mult)
			}
			b, _ := proto.Marshal(l)
			w, err := pbwire.Decode(wireTable, wireTable.Index("envoy.service.ratelimit.v3.RateLimitResponse.RateLimit"), b)
			if err != nil {
				t.Fatal(err)
			}
			if g, h := windowOfGenerated(l), windowOf(w); g != h {
				t.Errorf("unit %d multiplier %v: generated %v, wire %v", u, mult, g, h)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

// FuzzResponse: any bytes read as a RateLimitResponse give what the
// generated types gave.
func FuzzResponse(f *testing.F) {
	fl := &pbwiregen.Filler{R: rand.New(rand.NewPCG(5, 6)), P: 0.6, OneofP: 1, MaxDepth: 4}
	for range 8 {
		m := &rlsv3.RateLimitResponse{}
		fl.Fill(m.ProtoReflect())
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { compareResponse(t, b) })
}
