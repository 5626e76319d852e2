package httpproxy

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// replicas starts two fast backends and one that answers after slow (or
// when its client goes away, which it counts).
func replicas(t testing.TB, slow time.Duration) (fast1, fast2, slowAddr string, cancelled *atomic.Int64) {
	cancelled = new(atomic.Int64)
	named := func(name string, d time.Duration) string {
		addr, _ := recordingBackend(t, false, func(w http.ResponseWriter, r *http.Request) {
			if d > 0 {
				select {
				case <-time.After(d):
				case <-r.Context().Done():
					cancelled.Add(1)
					return
				}
			}
			io.WriteString(w, name)
		})
		return addr
	}
	return named("a", 0), named("b", 0), named("c", slow), cancelled
}

// retryRoute gives route "/" a retry policy with a per-try timeout, hedged
// or not; retryOn connect-failure does not retry timeouts.
func retryRoute(perTry time.Duration, hedge bool) func(*routev3.RouteConfiguration) {
	return func(rc *routev3.RouteConfiguration) {
		for _, r := range rc.VirtualHosts[0].Routes {
			ra := r.GetRoute()
			if ra.GetCluster() != "c" {
				continue
			}
			ra.Timeout = durationpb.New(10 * time.Second)
			if perTry > 0 {
				ra.RetryPolicy = &routev3.RetryPolicy{RetryOn: "connect-failure", NumRetries: wrapperspb.UInt32(2), PerTryTimeout: durationpb.New(perTry)}
			}
			if hedge {
				ra.HedgePolicy = &routev3.HedgePolicy{HedgeOnPerTryTimeout: true}
			}
		}
	}
}

// TestHedgeOnPerTryTimeout: with hedging, every GET is answered by a fast
// replica and the slow tries are cancelled; a POST is not hedged (it gets
// the per-try timeout's 504 on the slow replica).
func TestHedgeOnPerTryTimeout(t *testing.T) {
	a, b, c, cancelled := replicas(t, 5*time.Second)
	p := startTestProxy(t, a, proxyOpts{more: []string{b, c}, routes: retryRoute(50*time.Millisecond, true)})
	cl := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < 12; i++ {
		resp, err := cl.Get("http://" + p.addr + "/x")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || (string(body) != "a" && string(body) != "b") {
			t.Fatalf("GET %d: %d %q", i, resp.StatusCode, body)
		}
	}
	st := p.srv.cfg.Load().Clusters["c"].Stats
	if st.RqHedged.Load() == 0 || st.RqHedgeCancelled.Load() != st.RqHedged.Load() {
		t.Fatalf("hedged %d, cancelled %d", st.RqHedged.Load(), st.RqHedgeCancelled.Load())
	}
	deadline := time.Now().Add(5 * time.Second)
	for cancelled.Load() != int64(st.RqHedgeCancelled.Load()) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if cancelled.Load() != int64(st.RqHedgeCancelled.Load()) {
		t.Fatalf("slow replica saw %d cancellations, the proxy cancelled %d", cancelled.Load(), st.RqHedgeCancelled.Load())
	}
	timeouts := 0
	for i := 0; i < 12; i++ {
		resp, err := cl.Post("http://"+p.addr+"/x", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 504 {
			timeouts++
		}
	}
	if timeouts == 0 {
		t.Error("no POST met the slow replica's per-try timeout: POSTs were hedged")
	}
}

// BenchmarkHedgeSlowReplica measures the latency of sequential GETs through
// the proxy to three replicas, one of which answers after 100 ms: without a
// per-try timeout (plain), and hedged on a 10 ms per-try timeout. It
// reports p50 and p99 in ms (a loaded machine shifts them all).
func BenchmarkHedgeSlowReplica(b *testing.B) {
	for _, tc := range []struct {
		name   string
		perTry time.Duration
		hedge  bool
	}{{"plain", 0, false}, {"hedge", 10 * time.Millisecond, true}} {
		b.Run(tc.name, func(b *testing.B) {
			fa, fb, slow, _ := replicas(b, 100*time.Millisecond)
			p := startTestProxy(b, fa, proxyOpts{more: []string{fb, slow}, routes: retryRoute(tc.perTry, tc.hedge)})
			cl := &http.Client{Timeout: 10 * time.Second}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				resp, err := cl.Get("http://" + p.addr + "/x")
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(fmt.Sprint("status ", resp.StatusCode))
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			q := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
			}
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
		})
	}
}
