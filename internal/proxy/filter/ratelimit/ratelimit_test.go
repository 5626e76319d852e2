package ratelimit

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitconfv3 "github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rlhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/quota"
	"github.com/mast-mesh/mast/internal/ratelimit"
)

const rule = `apiVersion: ratelimit.mast.io/v1alpha1
kind: RateLimit
metadata: {name: r, namespace: ns}
spec:
  dimensions: [{name: user, requestHeader: x-user}]
  maxAmount: 2
  validDuration: 1h
`

// serve runs mastd's rate-limit service on a loopback port.
func serve(t *testing.T) string {
	rs, ps := config.Load("r.yaml", []byte(rule))
	if ps.HasErrors() {
		t.Fatal(ps)
	}
	svc := ratelimit.NewService(quota.NewMemory(nil), nil)
	svc.Update(ratelimit.Rules(config.NewSnapshot(rs)))
	gs := grpc.NewServer()
	svc.Register(gs)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	return l.Addr().String()
}

func config3(target string, deny bool) *rlhttpv3.RateLimit {
	return &rlhttpv3.RateLimit{
		Domain: "mast", FailureModeDeny: deny, Timeout: durationpb.New(2 * time.Second),
		EnableXRatelimitHeaders: rlhttpv3.RateLimit_DRAFT_VERSION_03,
		RateLimitService: &ratelimitconfv3.RateLimitServiceConfig{TransportApiVersion: corev3.ApiVersion_V3,
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: target, StatPrefix: "rl"}}}},
		RateLimits: []*routev3.RateLimit{{Actions: []*routev3.RateLimit_Action{
			{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: ratelimit.RuleKey, DescriptorValue: "ns/r"}}},
			{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{HeaderName: "x-user", DescriptorKey: "user"}}},
		}}},
	}
}

func newFilter(t *testing.T, c *rlhttpv3.RateLimit) filter.HTTPFilter {
	a, err := anypb.New(c)
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(Name, a)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func run(f filter.HTTPFilter, user string) (int, headers.List) {
	h := headers.List{}
	if user != "" {
		h.Add("x-user", user)
	}
	r := &filter.Request{Method: "GET", Path: "/", Headers: &h, RemoteIP: netip.MustParseAddr("10.1.2.3")}
	st := f.DecodeHeaders(context.Background(), r)
	var out headers.List
	f.(filter.ResponseFilter).EncodeHeaders(r, 200, &out)
	if st == filter.Stop {
		return r.Reply.Status, out
	}
	return 200, out
}

func TestAgainstMastdService(t *testing.T) {
	f := newFilter(t, config3(serve(t), false))
	for i, want := range []string{"1", "0"} {
		code, h := run(f, "alice")
		if code != 200 || h.Value("x-ratelimit-remaining") != want || h.Value("x-ratelimit-limit") != `2, 2;w=3600;name="ns/r"` {
			t.Fatalf("request %d: %d %v", i, code, h)
		}
	}
	code, h := run(f, "alice")
	if code != 429 || h.Value("x-envoy-ratelimited") != "true" || h.Value("x-ratelimit-remaining") != "0" || h.Value("x-ratelimit-reset") == "" {
		t.Fatalf("over limit: %d %v", code, h)
	}
	// No x-user: no descriptor, no call, no headers.
	if code, h := run(f, ""); code != 200 || len(h) != 0 {
		t.Fatalf("without the header: %d %v", code, h)
	}
}

func TestFailureMode(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	if code, _ := run(newFilter(t, config3(dead, false)), "alice"); code != 200 {
		t.Fatalf("failure_mode_deny false: %d", code)
	}
	c := config3(dead, true)
	c.Timeout = durationpb.New(200 * time.Millisecond)
	if code, _ := run(newFilter(t, c), "alice"); code != 500 {
		t.Fatalf("failure_mode_deny true: %d", code)
	}
}

func TestNACKs(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*rlhttpv3.RateLimit)
		want string
	}{
		{func(c *rlhttpv3.RateLimit) { c.MetadataNamespace = "x" }, "metadata_namespace: not supported"},
		{func(c *rlhttpv3.RateLimit) { c.RateLimitedAsResourceExhausted = true }, "rate_limited_as_resource_exhausted: not supported"},
		{func(c *rlhttpv3.RateLimit) {
			c.RateLimitService.GrpcService.TargetSpecifier = &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "rl"}}
		}, "envoy_grpc: not supported"},
		{func(c *rlhttpv3.RateLimit) { c.RequestType = "internal" }, "request_type"},
		{func(c *rlhttpv3.RateLimit) { c.RateLimits = nil }, "rate_limits: empty"},
		{func(c *rlhttpv3.RateLimit) {
			c.RateLimits[0].Actions = append(c.RateLimits[0].Actions, &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_DestinationCluster_{}})
		}, "rate_limits[0].actions[2]"},
		{func(c *rlhttpv3.RateLimit) { c.EnableXRatelimitHeaders = 7 }, "enable_x_ratelimit_headers"},
	} {
		c := config3("127.0.0.1:1", false)
		tc.mod(c)
		a, _ := anypb.New(c)
		_, err := New(Name, a)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

// FuzzNew: any typed config parses or is refused; never a panic.
func FuzzNew(f *testing.F) {
	b, _ := proto.Marshal(config3("127.0.0.1:1", true))
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		New(Name, &anypb.Any{TypeUrl: TypeURL, Value: data})
	})
}
