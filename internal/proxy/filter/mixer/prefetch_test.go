package mixer

import (
	"context"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/filter"
)

// fakeFetch records what a pool asks for and lets the test answer.
type fakeFetch struct {
	asked []int64
	done  []func(int64, time.Duration, error)
}

func (f *fakeFetch) fetch(amount int64, done func(int64, time.Duration, error)) {
	f.asked = append(f.asked, amount)
	f.done = append(f.done, done)
}

// TestPrefetchPool walks Istio's prefetch algorithm: an open pool lends
// the minimum prefetch (10) before it is granted, so 10 requests pass
// while the Mixer grants 2; the pool is then closed: it refuses, asks
// again only after the 500 ms close wait, then for what the last second
// used (11), and never lends.
func TestPrefetchPool(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC)
	now := t0
	p := &pool{now: func() time.Time { return now }}
	f := &fakeFetch{}
	at := func(ms int) time.Time { now = t0.Add(time.Duration(ms) * time.Millisecond); return now }
	for i := range 10 {
		if !p.check(1, at(i), f.fetch) {
			t.Fatalf("request %d refused: an open pool lends what it asked for", i)
		}
	}
	if len(f.asked) != 1 || f.asked[0] != minPrefetch {
		t.Fatalf("asked %v, want one fetch of %d", f.asked, minPrefetch)
	}
	at(20)
	f.done[0](2, 5*time.Second, nil) // the Mixer grants 2 of 10: the pool closes
	if p.check(1, at(30), f.fetch) {
		t.Error("a closed, empty pool let a request through")
	}
	if len(f.asked) != 1 {
		t.Errorf("asked again within the close wait: %v", f.asked)
	}
	if p.check(1, at(600), f.fetch) {
		t.Error("a closed pool lent an amount before it was granted")
	}
	if len(f.asked) != 2 || f.asked[1] != 11 {
		t.Fatalf("asked %v after the close wait, want a second fetch of 11 (the last second's use)", f.asked)
	}
	f.done[1](3, 5*time.Second, nil)
	for i := range 3 {
		if !p.check(1, at(700+i), f.fetch) {
			t.Errorf("granted amount %d of 3 refused", i)
		}
	}
	if p.check(1, at(710), f.fetch) {
		t.Error("a fourth request passed on 3 granted")
	}
}

// With disable_quota_cache false, the proxy answers quota'd requests from
// prefetched pools once the Check is cached: 50 requests under a 500 per
// second quota cost a handful of Mixer Checks instead of 50.
func TestPrefetchThroughTheClient(t *testing.T) {
	addr, svc := startMixer(t, "mixer-rule-productpage-ratelimit.yaml")
	svcs := services(t)
	f := inbound(t, addr, map[string]string{"app": "ratings", "version": "v1"}, false, "requestcountquota")
	f.prefetch = newQuotaPools(false)
	for i := range 50 {
		if st := f.DecodeHeaders(context.Background(), fromSource(svcs, nil)); st != filter.Continue {
			t.Fatalf("request %d refused under a 500/s quota", i)
		}
	}
	if n := svc.checks.Load(); n > 15 {
		t.Errorf("%d Mixer Checks for 50 requests, want at most 15 with prefetch (minimum prefetch 10)", n)
	}
}

// Exactness without prefetch (mastd's default): two proxies alternate
// under productpage's 2 per 5 s: exactly 2 pass.
func TestNoPrefetchIsExact(t *testing.T) {
	addr, _ := startMixer(t, "mixer-rule-productpage-ratelimit.yaml")
	svcs := services(t)
	pp := map[string]string{"app": "productpage", "version": "v1"}
	fs := []*Filter{inbound(t, addr, pp, false, "requestcountquota"), inbound(t, addr, pp, false, "requestcountquota")}
	ok := 0
	for i := range 8 {
		if fs[i%2].prefetch != nil {
			t.Fatal("prefetch on with disable_quota_cache true")
		}
		if fs[i%2].DecodeHeaders(context.Background(), fromSource(svcs, nil)) == filter.Continue {
			ok++
		}
	}
	if ok != 2 {
		t.Errorf("%d of 8 passed across two proxies, want exactly 2", ok)
	}
}
