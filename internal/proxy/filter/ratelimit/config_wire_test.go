package ratelimit

import (
	"fmt"
	"math/rand/v2"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rlhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

// compareConfig parses b both ways: equal filters and targets or the same
// error (bytes that are not a protobuf encoding fail both ways, worded by
// their decoders).
func compareConfig(t testing.TB, b []byte) error {
	t.Helper()
	want, wt, werr := parseConfigGenerated(&anypb.Any{TypeUrl: TypeURL, Value: b})
	have, ht, herr := parseConfig(b)
	pbwiregen.SameParse(t, fmt.Sprintf("%x", b), []any{wt, want}, werr, []any{ht, have}, herr, "decode ", nil)
	return herr
}

// plausibleConfig brings a lean message's enums, statuses, timeout and
// service into the ranges the filter accepts (absent fields stay absent),
// so that the accepting paths are reached often.
func plausibleConfig(m *rlhttpv3.RateLimit) {
	if m.Domain == "" {
		m.Domain = "d"
	}
	m.Stage, m.RequestType = 0, ""
	m.EnableXRatelimitHeaders &= 1
	if d := m.Timeout; d != nil {
		d.Seconds, d.Nanos = d.Seconds&0xff, d.Nanos&0x3fffffff%1e9
	}
	if s := m.RateLimitedStatus; s != nil {
		s.Code = 400 + s.Code&0xff
	}
	if s := m.StatusOnError; s != nil {
		s.Code = 400 + s.Code&0xff
	}
	m.RateLimitService = &ratelimitconfv3.RateLimitServiceConfig{TransportApiVersion: corev3.ApiVersion_V3,
		GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: "127.0.0.1:1"}}}}
	if len(m.RateLimits) == 0 {
		m.RateLimits = []*routev3.RateLimit{{}}
	}
	for _, rl := range m.RateLimits {
		rl.Stage, rl.DisableKey, rl.Limit, rl.HitsAddend, rl.ApplyOnStreamDone = nil, "", nil, nil, false
		if len(rl.Actions) == 0 {
			rl.Actions = append(rl.Actions, &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RemoteAddress_{RemoteAddress: &routev3.RateLimit_Action_RemoteAddress{}}})
		}
	}
}

// TestConfigMatchesGenerated: random filter configs (a quarter of them two
// concatenated, which merge) parse to equal filters or the same error.
func TestConfigMatchesGenerated(t *testing.T) {
	f := &pbwiregen.Filler{R: rand.New(rand.NewPCG(1, 2)), P: 0.4, OneofP: 0.9, MaxDepth: 5}
	lean := &pbwiregen.Filler{R: rand.New(rand.NewPCG(3, 4)), P: 0.6, OneofP: 1, MaxDepth: 5, Avoid: map[protoreflect.FullName]bool{}}
	for _, n := range []string{"rate_limited_as_resource_exhausted", "response_headers_to_add", "filter_enabled", "filter_enforced",
		"failure_mode_deny_percent", "metadata_namespace"} {
		lean.Avoid["envoy.extensions.filters.http.ratelimit.v3.RateLimit."+protoreflect.FullName(n)] = true
	}
	accepted, kinds := 0, map[[2]bool]int{}
	for i := range 4000 {
		f := f
		if i%2 == 1 {
			f = lean
		}
		gen := func() []byte {
			m := &rlhttpv3.RateLimit{}
			f.Fill(m.ProtoReflect())
			if f == lean {
				plausibleConfig(m)
			}
			b, _ := proto.Marshal(m)
			return b
		}
		b := gen()
		if i%4 == 3 {
			b = append(b, gen()...)
		}
		if compareConfig(t, b) == nil {
			accepted++
			c, _, _ := parseConfig(b)
			kinds[[2]bool{c.headers, c.timeout != defaultTimeout}]++
		}
	}
	t.Logf("%d of 4000 accepted: %v", accepted, kinds)
	if accepted < 300 || len(kinds) < 4 {
		t.Errorf("%d accepted (%v): the generator does not reach the parser", accepted, kinds)
	}
}

// FuzzParseConfig: any bytes parse as the generated decoder parses them.
func FuzzParseConfig(f *testing.F) {
	fl := &pbwiregen.Filler{R: rand.New(rand.NewPCG(5, 6)), P: 0.6, OneofP: 1, MaxDepth: 5}
	for range 8 {
		m := &rlhttpv3.RateLimit{}
		fl.Fill(m.ProtoReflect())
		plausibleConfig(m)
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { compareConfig(t, b) })
}

// TestConfigTimeoutEdges: timeouts at durationpb's validity limits parse
// the same both ways.
func TestConfigTimeoutEdges(t *testing.T) {
	for _, d := range []*durationpb.Duration{
		{Seconds: 315_576_000_000}, {Seconds: 315_576_000_001}, {Seconds: -315_576_000_001},
		{Seconds: 1, Nanos: -1}, {Seconds: -1, Nanos: 1}, {Nanos: 999_999_999}, {Nanos: 1e9}, {Nanos: -1e9}, {Seconds: 2},
	} {
		m := &rlhttpv3.RateLimit{}
		plausibleConfig(m)
		m.Timeout = d
		b, _ := proto.Marshal(m)
		compareConfig(t, b)
	}
}
