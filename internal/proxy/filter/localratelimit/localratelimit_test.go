package localratelimit

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rlcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	netlocalrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func tb(max, per uint32, every time.Duration) *typev3.TokenBucket {
	return &typev3.TokenBucket{MaxTokens: max, TokensPerFill: wrapperspb.UInt32(per), FillInterval: durationpb.New(every)}
}

func all() *corev3.RuntimeFractionalPercent {
	return &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100}}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func run(f filter.HTTPFilter, user string) (int, headers.List) {
	h := headers.List{}
	if user != "" {
		h.Add("x-user", user)
	}
	r := &filter.Request{Method: "GET", Path: "/", Headers: &h}
	st := f.DecodeHeaders(context.Background(), r)
	var out headers.List
	f.(filter.ResponseFilter).EncodeHeaders(r, 200, &out)
	if st == filter.Stop {
		return r.Reply.Status, out
	}
	return 200, out
}

func TestTokenBucketAndHeaders(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	cfg := &localrlv3.LocalRateLimit{StatPrefix: "x", TokenBucket: tb(3, 1, time.Second), FilterEnabled: all(), FilterEnforced: all(),
		EnableXRatelimitHeaders: rlcommonv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
		ResponseHeadersToAdd:    []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "X-Limited", Value: "yes"}}}}
	l, err := parse(mustAny(t, cfg), c.now)
	if err != nil {
		t.Fatal(err)
	}
	f := &Filter{name: Name, l: l}
	for i, want := range []string{"2", "1", "0"} {
		code, h := run(f, "")
		if code != 200 || h.Value("x-ratelimit-remaining") != want || h.Value("x-ratelimit-limit") != "3" || h.Value("x-limited") != "" {
			t.Fatalf("request %d: %d %v", i, code, h)
		}
	}
	code, h := run(f, "")
	if code != 429 || h.Value("x-ratelimit-remaining") != "0" || h.Value("x-ratelimit-reset") != "1" || h.Value("x-limited") != "yes" {
		t.Fatalf("over: %d %v", code, h)
	}
	c.add(2500 * time.Millisecond) // two fills
	for i := 0; i < 2; i++ {
		if code, _ := run(f, ""); code != 200 {
			t.Fatalf("after refill %d: %d", i, code)
		}
	}
	if code, _ := run(f, ""); code != 429 {
		t.Fatalf("refill gave more than two tokens: %d", code)
	}
}

func TestDescriptorsAndFractions(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	cfg := &localrlv3.LocalRateLimit{StatPrefix: "x", TokenBucket: tb(100, 100, time.Second), FilterEnabled: all(), FilterEnforced: all(),
		AlwaysConsumeDefaultTokenBucket: wrapperspb.Bool(false),
		Descriptors: []*rlcommonv3.LocalRateLimitDescriptor{{
			Entries: []*rlcommonv3.RateLimitDescriptor_Entry{{Key: "user", Value: "john"}}, TokenBucket: tb(1, 1, time.Hour)}},
		RateLimits: []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{
			RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{HeaderName: "x-user", DescriptorKey: "user"}}}}}}}
	l, err := parse(mustAny(t, cfg), c.now)
	if err != nil {
		t.Fatal(err)
	}
	f := &Filter{name: Name, l: l}
	if code, _ := run(f, "john"); code != 200 {
		t.Fatal("john's first request refused")
	}
	if code, _ := run(f, "john"); code != 429 {
		t.Fatal("john's second request allowed")
	}
	for i := 0; i < 10; i++ {
		if code, _ := run(f, "alice"); code != 200 {
			t.Fatal("alice limited by john's bucket")
		}
	}
	// Not enforced: over-limit requests pass, with the configured header.
	cfg.FilterEnforced = nil
	cfg.RequestHeadersToAddWhenNotEnforced = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-would-limit", Value: "1"}}}
	l, err = parse(mustAny(t, cfg), c.now)
	if err != nil {
		t.Fatal(err)
	}
	f = &Filter{name: Name, l: l}
	run(f, "john")
	h := headers.List{{Name: "x-user", Value: "john"}}
	r := &filter.Request{Method: "GET", Path: "/", Headers: &h}
	if f.DecodeHeaders(context.Background(), r) != filter.Continue || h.Value("x-would-limit") != "1" {
		t.Fatalf("not enforced: %v", h)
	}
	// Not enabled: nothing is counted.
	cfg.FilterEnabled = nil
	l, _ = parse(mustAny(t, cfg), c.now)
	f = &Filter{name: Name, l: l}
	for i := 0; i < 3; i++ {
		if code, h := run(f, "john"); code != 200 || len(h) != 0 {
			t.Fatal("disabled filter limited")
		}
	}
}

func TestNACKs(t *testing.T) {
	base := func() *localrlv3.LocalRateLimit {
		return &localrlv3.LocalRateLimit{StatPrefix: "x", TokenBucket: tb(1, 1, time.Second), FilterEnabled: all()}
	}
	for _, tc := range []struct {
		mod  func(*localrlv3.LocalRateLimit)
		want string
	}{
		{func(c *localrlv3.LocalRateLimit) { c.LocalRateLimitPerDownstreamConnection = true }, "local_rate_limit_per_downstream_connection: not supported"},
		{func(c *localrlv3.LocalRateLimit) { c.MaxDynamicDescriptors = wrapperspb.UInt32(3) }, "max_dynamic_descriptors: not supported"},
		{func(c *localrlv3.LocalRateLimit) { c.Stage = 2 }, "stage"},
		{func(c *localrlv3.LocalRateLimit) { c.TokenBucket.FillInterval = durationpb.New(time.Millisecond) }, "fill_interval: must be at least 50ms"},
		{func(c *localrlv3.LocalRateLimit) {
			c.Descriptors = []*rlcommonv3.LocalRateLimitDescriptor{{Entries: []*rlcommonv3.RateLimitDescriptor_Entry{{Key: "a", Value: "b"}}, TokenBucket: tb(1, 1, time.Second)}}
		}, "descriptors: need the filter's rate_limits"},
		{func(c *localrlv3.LocalRateLimit) { c.TokenBucket = nil }, "token_bucket: required"},
	} {
		c := base()
		tc.mod(c)
		_, err := New(Name, mustAny(t, c))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

func TestNetwork(t *testing.T) {
	n, err := NewNetwork(NetworkName, mustAny(t, &netlocalrlv3.LocalRateLimit{StatPrefix: "tcp", TokenBucket: tb(2, 1, time.Hour)}))
	if err != nil {
		t.Fatal(err)
	}
	got := []filter.Status{n.OnConnect(nil), n.OnConnect(nil), n.OnConnect(nil)}
	if got[0] != filter.Continue || got[1] != filter.Continue || got[2] != filter.Stop {
		t.Fatalf("connections: %v", got)
	}
	if _, err := NewNetwork(NetworkName, mustAny(t, &netlocalrlv3.LocalRateLimit{StatPrefix: "tcp", TokenBucket: tb(2, 1, time.Hour),
		ShareKey: "k"})); err == nil || !strings.Contains(err.Error(), "share_key") {
		t.Fatalf("share_key: %v", err)
	}
}

// FuzzParse: any bytes as the filter's typed config either parse or are
// refused with an error; a parsed filter serves a request.
func FuzzParse(f *testing.F) {
	cfg := &localrlv3.LocalRateLimit{StatPrefix: "x", TokenBucket: tb(3, 1, time.Second), FilterEnabled: all(), FilterEnforced: all()}
	b, _ := proto.Marshal(cfg)
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		flt, err := New(Name, &anypb.Any{TypeUrl: TypeURL, Value: data})
		if err != nil {
			return
		}
		run(flt, "u")
	})
}
