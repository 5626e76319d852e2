package localratelimit

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	netlocalrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

var epoch = time.Unix(1_700_000_000, 0)

func fixedNow() time.Time { return epoch }

// sameBucket compares the parsed state of two buckets (their clocks are
// functions, which reflect.DeepEqual cannot compare).
func sameBucket(a, b *bucket) bool {
	return a.max == b.max && a.perFill == b.perFill && a.interval == b.interval &&
		a.tokens == b.tokens && a.lastFill.Equal(b.lastFill)
}

// compareNetwork parses b both ways: equal buckets or the same error.
// Bytes proto.Unmarshal refuses must be refused by the wire decoder (the
// wording of a decode error is its decoder's).
func compareNetwork(t testing.TB, b []byte) error {
	t.Helper()
	have, herr := parseNetwork(b, fixedNow)
	var m netlocalrlv3.LocalRateLimit
	if err := proto.Unmarshal(b, &m); err != nil {
		if herr == nil {
			t.Fatalf("%x: proto.Unmarshal refuses (%v), the wire decoder accepts", b, err)
		}
		return herr
	}
	want, werr := parseNetworkGenerated(&m, fixedNow)
	pbwiregen.SameParse(t, fmt.Sprintf("%x", b), want, werr, have, herr, "", func(w, h *Network) bool { return sameBucket(w.b, h.b) })
	return herr
}

// plausibleNetwork brings a lean message's fill_interval into the range
// the filter accepts (keeping absent fields absent), so that the accepting
// path is reached often.
func plausibleNetwork(m *netlocalrlv3.LocalRateLimit) {
	if d := m.GetTokenBucket().GetFillInterval(); d != nil {
		d.Seconds, d.Nanos = d.Seconds&0xff, d.Nanos&0x3fffffff%1e9
	}
}

// TestNetworkMatchesGenerated: random network LocalRateLimits (a quarter
// of them two concatenated, which merge) parse to equal buckets or the
// same error.
func TestNetworkMatchesGenerated(t *testing.T) {
	f := &pbwiregen.Filler{R: rand.New(rand.NewPCG(1, 2)), P: 0.5, OneofP: 0.9, MaxDepth: 4}
	lean := &pbwiregen.Filler{R: rand.New(rand.NewPCG(3, 4)), P: 0.9, OneofP: 1, MaxDepth: 4, Avoid: map[protoreflect.FullName]bool{
		"envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit.runtime_enabled": true,
		"envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit.share_key":       true,
	}}
	accepted, kinds := 0, map[bool]int{}
	for i := range 4000 {
		f := f
		if i%2 == 1 {
			f = lean
		}
		gen := func() []byte {
			m := &netlocalrlv3.LocalRateLimit{}
			f.Fill(m.ProtoReflect())
			if f == lean {
				plausibleNetwork(m)
			}
			b, _ := proto.Marshal(m)
			return b
		}
		b := gen()
		if i%4 == 3 {
			b = append(b, gen()...)
		}
		if compareNetwork(t, b) == nil {
			accepted++
			n, _ := parseNetwork(b, fixedNow)
			kinds[n.b.perFill != 1]++
		}
	}
	t.Logf("%d of 4000 accepted: %v", accepted, kinds)
	if accepted < 300 || len(kinds) < 2 {
		t.Errorf("%d accepted (%v): the generator does not reach the parser", accepted, kinds)
	}
}

// TestNetworkEdgeDurations: fill_interval values at durationpb's validity
// limits parse the same both ways.
func TestNetworkEdgeDurations(t *testing.T) {
	for _, d := range []*durationpb.Duration{
		{Seconds: 315_576_000_000}, {Seconds: 315_576_000_001}, {Seconds: -315_576_000_001},
		{Seconds: 1, Nanos: -1}, {Seconds: -1, Nanos: 1}, {Nanos: 999_999_999}, {Nanos: 1e9}, {Nanos: -1e9},
		{Seconds: 0, Nanos: 50_000_000}, {Seconds: 0, Nanos: 49_999_999},
	} {
		b, _ := proto.Marshal(&netlocalrlv3.LocalRateLimit{StatPrefix: "tcp", TokenBucket: tb(2, 1, 0)})
		m := &netlocalrlv3.LocalRateLimit{}
		_ = proto.Unmarshal(b, m)
		m.TokenBucket.FillInterval = d
		b, _ = proto.Marshal(m)
		compareNetwork(t, b)
	}
}

// FuzzParseNetwork: any bytes parse as the generated decoder parses them.
func FuzzParseNetwork(f *testing.F) {
	fl := &pbwiregen.Filler{R: rand.New(rand.NewPCG(5, 6)), P: 0.7, OneofP: 1, MaxDepth: 4}
	for range 8 {
		m := &netlocalrlv3.LocalRateLimit{}
		fl.Fill(m.ProtoReflect())
		plausibleNetwork(m)
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	b, _ := proto.Marshal(&netlocalrlv3.LocalRateLimit{StatPrefix: "tcp", TokenBucket: tb(2, 1, time.Second)})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) { compareNetwork(t, b) })
}
