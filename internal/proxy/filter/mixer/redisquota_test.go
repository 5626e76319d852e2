package mixer

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/mast-mesh/mast/internal/config"
	mixersrv "github.com/mast-mesh/mast/internal/mixer"
	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb/mixergrpc"
	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/quota/quotatest"
)

// startRedisMixer serves a Mixer with one of Istio's redisquota files,
// its redisServerUrl (Istio's in-cluster redis-release-master:6379)
// pointed at the test's Redis; nothing else in the file changes.
func startRedisMixer(t *testing.T, file, redisURL string) string {
	t.Helper()
	p := filepath.Join("..", "..", "..", "mixer", "testdata", "policy-mixer-era", file)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	hostPort := strings.TrimPrefix(redisURL, "redis://")
	data = []byte(strings.Replace(string(data), "redis-release-master:6379", hostPort, 1))
	rs, probs := config.Load(p, data)
	if probs.HasErrors() {
		t.Fatal(probs)
	}
	svc := mixersrv.NewService(mixersrv.Options{}, nil)
	svc.Update(config.NewSnapshot(rs))
	if pr := svc.Runtime().Problems; len(pr) > 0 {
		t.Fatalf("%s: %v", file, pr)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	mixergrpc.RegisterMixerServer(gs, svc)
	go gs.Serve(lis)
	t.Cleanup(func() { gs.Stop(); svc.Close() })
	return lis.Addr().String()
}

// TestRedisQuotaSharedAcrossMixers: Istio 1.4's redisquota files, two
// Mixers sharing one real Redis (redis-server from Debian, started by the
// test), two destination proxies each checking with its own Mixer, the
// requests alternating between them. The limit is global: exactly the
// file's amount passes across both, the rest get 429. (In-process
// Mixers and proxy filters over real gRPC; the mast up tier runs one
// Mixer.)
func TestRedisQuotaSharedAcrossMixers(t *testing.T) {
	redisURL := quotatest.StartRedis(t)
	svcs := services(t)
	run := func(t *testing.T, file string, dest map[string]string, src map[string]string, n int) int {
		t.Helper()
		var fs []*Filter
		for range 2 {
			fs = append(fs, inbound(t, startRedisMixer(t, file, redisURL), dest, false, "requestcountquota"))
		}
		ok := 0
		for i := range n {
			r := fromSource(svcs, src)
			switch {
			case fs[i%2].DecodeHeaders(context.Background(), r) == filter.Continue:
				ok++
			case r.Reply.Status != 429 || !strings.HasPrefix(r.Reply.Body, "RESOURCE_EXHAUSTED:"):
				t.Fatalf("request %d: %d %q, want 200 or 429 RESOURCE_EXHAUSTED", i, r.Reply.Status, r.Reply.Body)
			}
		}
		return ok
	}
	t.Run("fixed window: 1 per 30 s, 50 from the ingress gateway", func(t *testing.T) {
		// Fixed windows are aligned to the epoch: keep clear of an edge.
		if left := 30*time.Second - time.Duration(time.Now().UnixNano())%(30*time.Second); left < 10*time.Second {
			time.Sleep(left + 100*time.Millisecond)
		}
		const file = "mixer-rule-productpage-redis-quota-fixed-window.yaml"
		pp := map[string]string{"app": "productpage", "version": "v1"}
		if got := run(t, file, pp, map[string]string{"app": "reviews"}, 6); got != 1 {
			t.Errorf("reviews to productpage: %d of 6 passed, want exactly 1 across both Mixers", got)
		}
		if got := run(t, file, pp, map[string]string{"app": "istio-ingressgateway"}, 56); got != 50 {
			t.Errorf("gateway to productpage: %d of 56 passed, want exactly 50 (the override)", got)
		}
	})
	t.Run("rolling window: reviews 1 per second, productpage 2", func(t *testing.T) {
		const file = "mixer-rule-productpage-redis-quota-rolling-window.yaml"
		for _, c := range []struct {
			app  string
			want int
		}{{"reviews", 1}, {"productpage", 2}} {
			// A one-second window: a run slower than the 500 ms bucket
			// (a starved machine) proves nothing and is tried again.
			for attempt := 0; ; attempt++ {
				time.Sleep(1100 * time.Millisecond) // the previous attempt's window is gone
				start := time.Now()
				got := run(t, file, map[string]string{"app": c.app, "version": "v1"}, map[string]string{"app": "gateway"}, 5)
				if time.Since(start) > 400*time.Millisecond && attempt < 3 {
					continue
				}
				if got != c.want {
					t.Errorf("to %s: %d of 5 passed within %v, want exactly %d across both Mixers", c.app, got, time.Since(start), c.want)
				}
				break
			}
		}
	})
}
