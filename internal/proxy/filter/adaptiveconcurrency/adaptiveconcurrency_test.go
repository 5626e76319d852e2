package adaptiveconcurrency

import (
	"testing"
	"time"

	acv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/adaptive_concurrency/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
)

func cfg(t *testing.T, m *acv3.GradientControllerConfig) *anypb.Any {
	t.Helper()
	a, err := anypb.New(&acv3.AdaptiveConcurrency{ConcurrencyControllerConfig: &acv3.AdaptiveConcurrency_GradientControllerConfig{GradientControllerConfig: m}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func gradient(interval time.Duration) *acv3.GradientControllerConfig {
	return &acv3.GradientControllerConfig{
		ConcurrencyLimitParams: &acv3.GradientControllerConfig_ConcurrencyLimitCalculationParams{ConcurrencyUpdateInterval: durationpb.New(interval)},
		MinRttCalcParams: &acv3.GradientControllerConfig_MinimumRTTCalculationParams{Interval: durationpb.New(time.Hour),
			RequestCount: wrapperspb.UInt32(5), MinConcurrency: wrapperspb.UInt32(2)},
	}
}

func TestParseRefuses(t *testing.T) {
	if _, err := New(Name, cfg(t, &acv3.GradientControllerConfig{})); err == nil {
		t.Error("no concurrency_update_interval accepted")
	}
	g := gradient(time.Second)
	g.MinRttCalcParams.Interval = nil
	if _, err := New(Name, cfg(t, g)); err == nil {
		t.Error("no minRTT interval nor fixed value accepted")
	}
	if _, err := New(Name, cfg(t, gradient(time.Second))); err != nil {
		t.Error(err)
	}
}

// TestGradient drives the controller with latencies that grow with the
// limit: after the minRTT window the limit rises while samples are near
// minRTT and falls once they are far above it; requests over the limit are
// refused with Envoy's 503.
func TestGradient(t *testing.T) {
	f, err := New(Name, cfg(t, gradient(time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	c := f.(*Filter).c
	now := time.Now()
	// minRTT window: the limit is min_concurrency (2) until 5 samples.
	if c.limit.Load() != 2 || !c.inMinRTT {
		t.Fatalf("limit %d, minRTT window %v", c.limit.Load(), c.inMinRTT)
	}
	for i := 0; i < 5; i++ {
		c.acquire()
		c.release(now, 10*time.Millisecond)
	}
	if c.inMinRTT || c.minRTT != 10*time.Millisecond {
		t.Fatalf("minRTT %v, window %v", c.minRTT, c.inMinRTT)
	}
	// Fast samples: the limit grows (gradient 2 capped, plus headroom).
	for i := 0; i < 3; i++ {
		now = now.Add(2 * time.Millisecond)
		c.acquire()
		c.release(now, 10*time.Millisecond)
	}
	high := c.limit.Load()
	if high <= 4 {
		t.Fatalf("limit %d after fast samples, want it grown", high)
	}
	// Slow samples: gradient 0.5 each update; the limit falls.
	for i := 0; i < 3; i++ {
		now = now.Add(2 * time.Millisecond)
		c.acquire()
		c.release(now, 200*time.Millisecond)
	}
	if low := c.limit.Load(); low >= high {
		t.Fatalf("limit %d after slow samples, was %d", low, high)
	}
	// Over the limit: 503 reached concurrency limit.
	n := int(c.limit.Load())
	var r filter.Request
	for i := 0; i < n; i++ {
		if st := f.DecodeHeaders(t.Context(), &r); st != filter.Continue {
			t.Fatalf("request %d of %d refused", i, n)
		}
	}
	if st := f.DecodeHeaders(t.Context(), &r); st != filter.Stop || r.Reply.Status != 503 || r.Reply.Body != "reached concurrency limit" || r.Details != "reached_concurrency_limit" {
		t.Fatalf("over the limit: %v %+v %q", st, r.Reply, r.Details)
	}
	r.RunDone()
	if c.inflight.Load() != 0 || c.blocked.Load() != 1 {
		t.Fatalf("inflight %d blocked %d after the requests ended", c.inflight.Load(), c.blocked.Load())
	}
}
