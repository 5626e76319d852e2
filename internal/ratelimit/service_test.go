package ratelimit

import (
	"context"
	"testing"
	"time"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/quota"
)

const rules = `apiVersion: ratelimit.mast.io/v1alpha1
kind: RateLimit
metadata: {name: per-user, namespace: istio-system}
spec:
  dimensions:
  - {name: user, requestHeader: x-user}
  - {name: client, remoteAddress: true}
  maxAmount: 2
  validDuration: 10m
  overrides:
  - dimensions: {user: john}
    maxAmount: 0
---
apiVersion: ratelimit.mast.io/v1alpha1
kind: RateLimit
metadata: {name: local, namespace: istio-system}
spec: {mode: LOCAL, maxAmount: 1, validDuration: 1s}
`

func newService(t testing.TB) *Service {
	rs, ps := config.Load("rules.yaml", []byte(rules))
	if ps.HasErrors() {
		t.Fatal(ps)
	}
	snap := config.NewSnapshot(rs)
	s := NewService(quota.NewMemory(nil), nil)
	s.Update(Rules(snap))
	return s
}

func desc(kv ...string) *rlcommon.RateLimitDescriptor {
	d := &rlcommon.RateLimitDescriptor{}
	for i := 0; i < len(kv); i += 2 {
		d.Entries = append(d.Entries, &rlcommon.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

func TestShouldRateLimit(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	ask := func(d ...*rlcommon.RateLimitDescriptor) *rlsv3.RateLimitResponse {
		t.Helper()
		r, err := s.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: Domain, Descriptors: d})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	alice := desc(RuleKey, "istio-system/per-user", "user", "alice", RemoteAddressKey, "10.0.0.1")
	for i, want := range []uint32{1, 0} {
		r := ask(alice)
		st := r.GetStatuses()[0]
		if r.GetOverallCode() != rlsv3.RateLimitResponse_OK || st.GetLimitRemaining() != want ||
			st.GetCurrentLimit().GetRequestsPerUnit() != 2 || st.GetCurrentLimit().GetUnit() != rlsv3.RateLimitResponse_RateLimit_MINUTE ||
			st.GetCurrentLimit().GetUnitMultiplier().GetValue() != 10 || st.GetDurationUntilReset().AsDuration() <= 0 ||
			st.GetDurationUntilReset().AsDuration() > 10*time.Minute || st.GetDurationUntilReset().AsDuration()%time.Second != 0 {
			t.Fatalf("request %d: %v", i, r)
		}
	}
	if r := ask(alice); r.GetOverallCode() != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("third: %v", r)
	}
	// Another client address is another counter; john's override is 0.
	if r := ask(desc(RuleKey, "istio-system/per-user", "user", "alice", RemoteAddressKey, "10.0.0.2")); r.GetOverallCode() != rlsv3.RateLimitResponse_OK {
		t.Fatalf("other address: %v", r)
	}
	if r := ask(desc(RuleKey, "istio-system/per-user", "user", "john", RemoteAddressKey, "10.0.0.1")); r.GetOverallCode() != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("john: %v", r)
	}
	// Not Mast's descriptors, LOCAL rules and malformed ones are not limited.
	for _, d := range []*rlcommon.RateLimitDescriptor{
		desc("generic_key", "x"),
		desc(RuleKey, "istio-system/local"),
		desc(RuleKey, "istio-system/per-user", "user", "alice"),
		desc(RuleKey, "istio-system/per-user", "client", "alice", RemoteAddressKey, "10.0.0.1"),
	} {
		for i := 0; i < 3; i++ {
			if r := ask(d); r.GetOverallCode() != rlsv3.RateLimitResponse_OK || r.GetStatuses()[0].GetCurrentLimit() != nil {
				t.Fatalf("%v: %v", d, r)
			}
		}
	}
	if _, err := s.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: Domain}); err == nil {
		t.Fatal("empty request accepted")
	}
	if _, err := s.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: Domain, Descriptors: []*rlcommon.RateLimitDescriptor{{IsNegativeHits: true}}}); err == nil {
		t.Fatal("is_negative_hits accepted")
	}
}

// FuzzShouldRateLimit: any request a client sends is answered or refused
// with an error, never a panic.
func FuzzShouldRateLimit(f *testing.F) {
	s := newService(f)
	seed, _ := proto.Marshal(&rlsv3.RateLimitRequest{Domain: Domain, HitsAddend: 3,
		Descriptors: []*rlcommon.RateLimitDescriptor{desc(RuleKey, "istio-system/per-user", "user", "a", RemoteAddressKey, "1.2.3.4")}})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req rlsv3.RateLimitRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		resp, err := s.ShouldRateLimit(context.Background(), &req)
		if err == nil && len(resp.GetStatuses()) != len(req.GetDescriptors()) {
			t.Fatalf("%d statuses for %d descriptors", len(resp.GetStatuses()), len(req.GetDescriptors()))
		}
	})
}
