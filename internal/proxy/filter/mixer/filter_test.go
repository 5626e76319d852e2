package mixer

import (
	"context"
	"encoding/base64"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/config"
	mixersrv "github.com/mast-mesh/mast/internal/mixer"
	"github.com/mast-mesh/mast/internal/mixer/api/clientpb"
	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb"
	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb/mixergrpc"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

// counting wraps the Mixer service to count Checks and keep the Reports'
// attribute bags.
type counting struct {
	*mixersrv.Service
	checks atomic.Int64

	mu       sync.Mutex
	reported []attribute.MapBag
}

func (c *counting) Report(ctx context.Context, r *mixerpb.ReportRequest) (*mixerpb.ReportResponse, error) {
	for _, ca := range r.GetAttributes() {
		bag, err := attribute.Decode(ca, attribute.GlobalDictionary(), int(r.GetGlobalWordCount()))
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.reported = append(c.reported, bag)
		c.mu.Unlock()
	}
	return c.Service.Report(ctx, r)
}

func (c *counting) Check(ctx context.Context, r *mixerpb.CheckRequest) (*mixerpb.CheckResponse, error) {
	c.checks.Add(1)
	return c.Service.Check(ctx, r)
}

// startMixer serves the Mixer with the given Istio files on a free port.
func startMixer(t testing.TB, files ...string) (string, *counting) {
	t.Helper()
	var all []config.Resource
	for _, f := range files {
		p := filepath.Join("..", "..", "..", "mixer", "testdata", "policy-mixer-era", f)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rs, probs := config.Load(p, data)
		if probs.HasErrors() {
			t.Fatal(probs)
		}
		all = append(all, rs...)
	}
	svc := &counting{Service: mixersrv.NewService(mixersrv.Options{}, nil)}
	svc.Update(config.NewSnapshot(all))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	mixergrpc.RegisterMixerServer(gs, svc)
	go gs.Serve(lis)
	t.Cleanup(func() { gs.Stop(); svc.Close() })
	return lis.Addr().String(), svc
}

func services(t testing.TB) *filter.Services {
	var mu sync.Mutex
	conns := map[string]rpc.Conn{}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	// The filter calls the Mixer (a grpc-go server) through mast-proxy's
	// own gRPC client, as the sidecar does.
	return &filter.Services{RPC: func(target string) (rpc.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if c := conns[target]; c != nil {
			return c, nil
		}
		c, err := rpc.Dial(target, rpc.Options{})
		if err == nil {
			conns[target] = c
		}
		return c, err
	}}
}

func str(s string) *mixerpb.Attributes_AttributeValue {
	return &mixerpb.Attributes_AttributeValue{Value: &mixerpb.Attributes_AttributeValue_StringValue{StringValue: s}}
}

func labels(m map[string]string) *mixerpb.Attributes_AttributeValue {
	return &mixerpb.Attributes_AttributeValue{Value: &mixerpb.Attributes_AttributeValue_StringMapValue{StringMapValue: &mixerpb.Attributes_StringMap{Entries: m}}}
}

// inbound builds the filter of a destination workload, as mastd generates it.
func inbound(t testing.TB, addr string, dest map[string]string, failOpen bool, quotas ...string) *Filter {
	t.Helper()
	policy := clientpb.NetworkFailPolicy_FAIL_CLOSE
	if failOpen {
		policy = clientpb.NetworkFailPolicy_FAIL_OPEN
	}
	sc := &clientpb.ServiceConfig{}
	for _, q := range quotas {
		sc.QuotaSpec = append(sc.QuotaSpec, &clientpb.QuotaSpec{Rules: []*clientpb.QuotaRule{{Quotas: []*clientpb.Quota{{Quota: q, Charge: 1}}}}})
	}
	cfg := &clientpb.HttpClientConfig{
		Transport: &clientpb.TransportConfig{CheckCluster: addr, NetworkFailPolicy: &clientpb.NetworkFailPolicy{Policy: policy},
			DisableQuotaCache: true},
		MixerAttributes: &mixerpb.Attributes{Attributes: map[string]*mixerpb.Attributes_AttributeValue{
			"destination.labels": labels(dest), "destination.namespace": str("default")}},
		ServiceConfigs:            map[string]*clientpb.ServiceConfig{"svc": sc},
		DefaultDestinationService: "svc",
	}
	a, _ := anypb.New(cfg)
	f, err := New(Name, a)
	if err != nil {
		t.Fatal(err)
	}
	return f.(*Filter)
}

// fromSource is a request from a mesh peer that forwarded its labels.
func fromSource(svcs *filter.Services, src map[string]string, hdrs ...headers.Field) *filter.Request {
	fa, _ := proto.Marshal(&mixerpb.Attributes{Attributes: map[string]*mixerpb.Attributes_AttributeValue{"source.labels": labels(src)}})
	h := headers.List{{Name: ForwardHeader, Value: base64.StdEncoding.EncodeToString(fa)}}
	h = append(h, hdrs...)
	return &filter.Request{Method: "GET", Path: "/ratings/0", Authority: "ratings:9080", Scheme: "http", Headers: &h,
		Conn:     &filter.Conn{Principal: "spiffe://cluster.local/ns/default/sa/bookinfo-reviews", TLS: true, Local: netip.MustParseAddrPort("127.0.0.5:9080")},
		RemoteIP: netip.MustParseAddr("127.0.0.7"), Services: svcs}
}

func TestDenyLabelThroughTheClient(t *testing.T) {
	addr, svc := startMixer(t, "mixer-rule-deny-label.yaml")
	svcs := services(t)
	f := inbound(t, addr, map[string]string{"app": "ratings", "version": "v1"}, false)
	for i := 0; i < 3; i++ {
		r := fromSource(svcs, map[string]string{"app": "reviews", "version": "v3"})
		if st := f.DecodeHeaders(context.Background(), r); st != filter.Stop || r.Reply.Status != 403 ||
			r.Reply.Body != "PERMISSION_DENIED:denyreviewsv3handler.handler.default:Not allowed" {
			t.Fatalf("v3: %v %+v", st, r.Reply)
		}
		if _, ok := r.Headers.Get(ForwardHeader); ok {
			t.Fatal("the forwarded attributes reached the application")
		}
		r = fromSource(svcs, map[string]string{"app": "reviews", "version": "v2"})
		if st := f.DecodeHeaders(context.Background(), r); st != filter.Continue {
			t.Fatalf("v2: %v %+v", st, r.Reply)
		}
	}
	// One Check per distinct answer: the rest came from the cache.
	if n := svc.checks.Load(); n != 2 {
		t.Errorf("%d Checks, want 2 (cache keyed by the referenced labels)", n)
	}
	// Without mTLS the forwarded labels are not believed.
	r := fromSource(svcs, map[string]string{"app": "reviews", "version": "v3"})
	r.Conn = &filter.Conn{}
	if st := f.DecodeHeaders(context.Background(), r); st != filter.Continue {
		t.Errorf("plaintext peer claiming v3: %v %+v", st, r.Reply)
	}
}

// A Report describes the request as the Check did, plus its outcome: the
// source attributes the peer forwarded, when the request arrived, when
// the response started and how long that took.
func TestReportCarriesSourceAndTimes(t *testing.T) {
	addr, svc := startMixer(t, "mixer-rule-deny-label.yaml")
	svcs := services(t)
	f := inbound(t, addr, map[string]string{"app": "ratings", "version": "v1"}, false)
	r := fromSource(svcs, map[string]string{"app": "reviews", "version": "v2"})
	r.Start = time.Now().Add(-30 * time.Millisecond)
	if st := f.DecodeHeaders(context.Background(), r); st != filter.Continue {
		t.Fatalf("v2: %v %+v", st, r.Reply)
	}
	f.EncodeHeaders(r, 200, &headers.List{{Name: "content-type", Value: "application/json"}})
	var bag attribute.MapBag
	for deadline := time.Now().Add(10 * time.Second); bag == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		svc.mu.Lock()
		if len(svc.reported) > 0 {
			bag = svc.reported[0]
		}
		svc.mu.Unlock()
	}
	if bag == nil {
		t.Fatal("no Report within 10 s")
	}
	if l, _ := bag["source.labels"].(map[string]string); l["version"] != "v2" {
		t.Errorf("source.labels %v, want the forwarded ones", bag["source.labels"])
	}
	if rt, _ := bag["request.time"].(time.Time); !rt.Equal(r.Start) {
		t.Errorf("request.time %v, want the request's arrival %v", bag["request.time"], r.Start)
	}
	rt, _ := bag["response.time"].(time.Time)
	d, _ := bag["response.duration"].(time.Duration)
	if skew := rt.Sub(r.Start.Add(d)).Abs(); d < 30*time.Millisecond || skew > time.Millisecond {
		t.Errorf("response.time %v, response.duration %v: want the response after the request, 30 ms or more", rt, d)
	}
	if bag["response.code"] != int64(200) {
		t.Errorf("response.code %v", bag["response.code"])
	}
}

func TestRatingsDenialThroughTheClient(t *testing.T) {
	addr, _ := startMixer(t, "mixer-rule-ratings-denial.yaml")
	svcs := services(t)
	f := inbound(t, addr, map[string]string{"app": "productpage"}, false)
	for _, u := range []string{"john", "jason", "john", ""} {
		r := fromSource(svcs, nil, headers.Field{Name: "x-user", Value: u})
		st := f.DecodeHeaders(context.Background(), r)
		if (u == "john") != (st == filter.Stop) {
			t.Errorf("x-user %q: %v %+v", u, st, r.Reply)
		}
	}
}

func TestQuotaThroughTheClient(t *testing.T) {
	addr, _ := startMixer(t, "mixer-rule-productpage-ratelimit.yaml")
	svcs := services(t)
	f := inbound(t, addr, map[string]string{"app": "productpage", "version": "v1"}, false, "requestcountquota")
	var codes []int
	for i := 0; i < 4; i++ {
		r := fromSource(svcs, nil)
		if f.DecodeHeaders(context.Background(), r) == filter.Continue {
			codes = append(codes, 200)
		} else {
			codes = append(codes, r.Reply.Status)
			if !strings.HasPrefix(r.Reply.Body, "RESOURCE_EXHAUSTED:") {
				t.Errorf("body %q", r.Reply.Body)
			}
		}
	}
	if want := []int{200, 200, 429, 429}; !equal(codes, want) {
		t.Errorf("statuses %v, want %v", codes, want)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMixerDown(t *testing.T) {
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := lis.Addr().String()
	lis.Close() // nothing listens there
	svcs := services(t)
	r := fromSource(svcs, nil)
	if st := inbound(t, addr, nil, false).DecodeHeaders(context.Background(), r); st != filter.Stop || r.Reply.Status != 503 ||
		!strings.HasPrefix(r.Reply.Body, "UNAVAILABLE:mixer unreachable") {
		t.Errorf("fail closed: %v %+v", st, r.Reply)
	}
	r = fromSource(svcs, nil)
	if st := inbound(t, addr, nil, true).DecodeHeaders(context.Background(), r); st != filter.Continue {
		t.Errorf("fail open: %v %+v", st, r.Reply)
	}
}

func TestUnsupportedFieldsNACK(t *testing.T) {
	for field, cfg := range map[string]*clientpb.HttpClientConfig{
		"transport.check_cluster": {},
		"http_api_spec": {Transport: &clientpb.TransportConfig{CheckCluster: "x:1"}, DefaultDestinationService: "s",
			ServiceConfigs: map[string]*clientpb.ServiceConfig{"s": {HttpApiSpec: []*clientpb.HTTPAPISpec{{}}}}},
		"rules[0].match": {Transport: &clientpb.TransportConfig{CheckCluster: "x:1"}, DefaultDestinationService: "s",
			ServiceConfigs: map[string]*clientpb.ServiceConfig{"s": {QuotaSpec: []*clientpb.QuotaSpec{{Rules: []*clientpb.QuotaRule{{Match: []*clientpb.AttributeMatch{{}}}}}}}}},
		"network_fail_policy": {Transport: &clientpb.TransportConfig{CheckCluster: "x:1", NetworkFailPolicy: &clientpb.NetworkFailPolicy{MaxRetry: 3}}},
	} {
		a, _ := anypb.New(cfg)
		if _, err := New(Name, a); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: got %v", field, err)
		}
	}
}

// BenchmarkCheckCacheHit: a Check answered from the cache.
func BenchmarkCheckCacheHit(b *testing.B) {
	addr, _ := startMixer(b, "mixer-rule-deny-label.yaml")
	svcs := services(b)
	f := inbound(b, addr, map[string]string{"app": "ratings", "version": "v1"}, false)
	r := fromSource(svcs, map[string]string{"app": "reviews", "version": "v2"})
	if f.DecodeHeaders(context.Background(), r) != filter.Continue {
		b.Fatal("denied")
	}
	fwd, _ := decodeForwarded(fromSource(svcs, map[string]string{"app": "reviews", "version": "v2"}).Headers.Value(ForwardHeader))
	bag := &reqBag{r: r, static: f.svc.static, fwd: fwd}
	for _, s := range f.cache.sigs {
		for _, e := range s.entries {
			e.uses.Store(1 << 62) // valid_use_count would end the run
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, ok := f.cache.lookup(bag, nowForBench); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkCheckMiss: a Check sent to the Mixer over loopback gRPC.
func BenchmarkCheckMiss(b *testing.B) {
	addr, _ := startMixer(b, "mixer-rule-deny-label.yaml")
	svcs := services(b)
	f := inbound(b, addr, map[string]string{"app": "ratings", "version": "v1"}, false)
	f.useCache = false
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := fromSource(svcs, map[string]string{"app": "reviews", "version": "v2"})
		if f.DecodeHeaders(context.Background(), r) != filter.Continue {
			b.Fatal("denied")
		}
	}
}

var nowForBench = timeNow()
