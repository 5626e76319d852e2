package localratelimit

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rlcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

// sameLimiter compares two parsed limiters: buckets by their parsed state,
// everything else deep-equal.
func sameLimiter(a, b *Limiter) bool {
	sb := func(x, y *bucket) bool { return (x == nil) == (y == nil) && (x == nil || sameBucket(x, y)) }
	if !sb(a.def, b.def) || len(a.descriptors) != len(b.descriptors) {
		return false
	}
	ca, cb := *a, *b
	ca.def, cb.def = nil, nil
	ca.descriptors, cb.descriptors = nil, nil
	for i := range a.descriptors {
		if !sb(a.descriptors[i].b, b.descriptors[i].b) || !reflect.DeepEqual(a.descriptors[i].entries, b.descriptors[i].entries) {
			return false
		}
	}
	return reflect.DeepEqual(ca, cb)
}

// compareHTTP parses b both ways: equal limiters or the same error (bytes
// that are not a protobuf encoding fail both ways, worded by their
// decoders).
func compareHTTP(t testing.TB, b []byte) error {
	t.Helper()
	a := &anypb.Any{TypeUrl: TypeURL, Value: b}
	want, werr := parseGenerated(a, fixedNow)
	have, herr := parse(a, fixedNow)
	pbwiregen.SameParse(t, fmt.Sprintf("%x", b), want, werr, have, herr, "decode ", sameLimiter)
	return herr
}

// plausibleHTTP brings a lean message's durations, enums and statuses into
// the ranges the filter accepts (keeping absent fields absent), so that
// the accepting paths are reached often.
func plausibleHTTP(m *localrlv3.LocalRateLimit) {
	if m.StatPrefix == "" {
		m.StatPrefix = "lrl"
	}
	tbs := []*typev3.TokenBucket{m.GetTokenBucket()}
	for _, ds := range m.GetDescriptors() {
		tbs = append(tbs, ds.GetTokenBucket())
		if len(ds.Entries) == 0 {
			ds.Entries = append(ds.Entries, &rlcommonv3.RateLimitDescriptor_Entry{Key: "k", Value: "v"})
		}
		for _, e := range ds.GetEntries() {
			if e.Value == "" {
				e.Value = "v"
			}
		}
	}
	for _, tb := range tbs {
		if tb == nil {
			continue
		}
		tb.MaxTokens |= 1
		if tb.TokensPerFill != nil {
			tb.TokensPerFill.Value |= 1
		}
		if d := tb.FillInterval; d != nil {
			d.Seconds, d.Nanos = d.Seconds&0xff+1, 0
		} else {
			tb.FillInterval = durationpb.New(time.Second)
		}
	}
	if s := m.GetStatus(); s != nil {
		s.Code = 400 + s.Code&0xff
	}
	m.EnableXRatelimitHeaders &= 1
	m.Stage = 0
	for _, f := range []*localrlv3.LocalRateLimit{m} {
		if e := f.GetFilterEnabled().GetDefaultValue(); e != nil {
			e.Denominator &= 1
		}
		if e := f.GetFilterEnforced().GetDefaultValue(); e != nil {
			e.Denominator &= 1
		}
	}
	for _, hs := range [][]*corev3.HeaderValueOption{m.RequestHeadersToAddWhenNotEnforced, m.ResponseHeadersToAdd} {
		for _, h := range hs {
			h.AppendAction &= 1
			h.Append, h.KeepEmptyValue = nil, false
			if h.Header == nil {
				h.Header = &corev3.HeaderValue{Key: "X-Key"}
			}
			if h.Header != nil {
				h.Header.RawValue = nil
				if h.Header.Key == "" {
					h.Header.Key = "X-Key"
				}
			}
		}
	}
	for _, rl := range m.GetRateLimits() {
		rl.Stage, rl.DisableKey, rl.Limit, rl.HitsAddend, rl.ApplyOnStreamDone = nil, "", nil, nil, false
		if len(rl.Actions) == 0 {
			rl.Actions = append(rl.Actions, &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RemoteAddress_{RemoteAddress: &routev3.RateLimit_Action_RemoteAddress{}}})
		}
	}
}

// TestHTTPMatchesGenerated: random HTTP LocalRateLimits (a quarter of them
// two concatenated, which merge) parse to equal limiters or the same error.
func TestHTTPMatchesGenerated(t *testing.T) {
	f := &pbwiregen.Filler{R: rand.New(rand.NewPCG(1, 2)), P: 0.4, OneofP: 0.9, MaxDepth: 5}
	lean := &pbwiregen.Filler{R: rand.New(rand.NewPCG(3, 4)), P: 0.6, OneofP: 1, MaxDepth: 5, Avoid: map[protoreflect.FullName]bool{}}
	for _, n := range []string{"local_rate_limit_per_downstream_connection", "local_cluster_rate_limit", "vh_rate_limits",
		"rate_limited_as_resource_exhausted", "max_dynamic_descriptors", "enable_retry_after_header"} {
		lean.Avoid["envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit."+protoreflect.FullName(n)] = true
	}
	lean.Avoid["envoy.extensions.common.ratelimit.v3.LocalRateLimitDescriptor.shadow_mode"] = true
	lean.Avoid["envoy.config.core.v3.RuntimeFractionalPercent.runtime_key"] = true
	accepted, kinds := 0, map[[3]bool]int{}
	for i := range 6000 {
		f := f
		if i%2 == 1 {
			f = lean
		}
		gen := func() []byte {
			m := &localrlv3.LocalRateLimit{}
			f.Fill(m.ProtoReflect())
			if f == lean {
				plausibleHTTP(m)
			}
			b, _ := proto.Marshal(m)
			return b
		}
		b := gen()
		if i%4 == 3 {
			b = append(b, gen()...)
		}
		if compareHTTP(t, b) == nil {
			accepted++
			l, _ := parseWire(b, fixedNow)
			kinds[[3]bool{l.def != nil, len(l.descriptors) > 0, len(l.actions) > 0}]++
		}
	}
	t.Logf("%d of 6000 accepted: %v", accepted, kinds)
	if accepted < 300 || len(kinds) < 4 {
		t.Errorf("%d accepted (%v): the generator does not reach the parser", accepted, kinds)
	}
}

// FuzzParseHTTP: any bytes parse as the generated decoder parses them.
func FuzzParseHTTP(f *testing.F) {
	fl := &pbwiregen.Filler{R: rand.New(rand.NewPCG(5, 6)), P: 0.6, OneofP: 1, MaxDepth: 5}
	for range 8 {
		m := &localrlv3.LocalRateLimit{}
		fl.Fill(m.ProtoReflect())
		plausibleHTTP(m)
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { compareHTTP(t, b) })
}
