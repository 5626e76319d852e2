package httpproxy

import (
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// BenchmarkOverloadPendingQueue offers 32 concurrent clients to a backend
// that takes 5 ms per request, behind a cluster of at most 4 connections
// (HTTP/1.1: 4 requests at once), with max_pending_requests 1 (almost no
// queue: the excess is refused with 503 UO) or 64 (everything waits). It
// reports the share of requests refused and the p50/p99 latency of the
// answered ones (ms; a loaded machine shifts them).
func BenchmarkOverloadPendingQueue(b *testing.B) {
	for _, pending := range []uint32{1, 64} {
		b.Run(map[uint32]string{1: "pending1", 64: "pending64"}[pending], func(b *testing.B) {
			addr, _ := recordingBackend(b, false, func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(5 * time.Millisecond)
				io.WriteString(w, "ok")
			})
			p := startTestProxy(b, addr, proxyOpts{cluster: func(c *clusterv3.Cluster) {
				c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
					MaxConnections: wrapperspb.UInt32(4), MaxPendingRequests: wrapperspb.UInt32(pending)}}}
			}})
			cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			var mu sync.Mutex
			var lat []time.Duration
			refused := 0
			next := make(chan struct{})
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := 0; w < 32; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range next {
						start := time.Now()
						resp, err := cl.Get("http://" + p.addr + "/x")
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						d := time.Since(start)
						mu.Lock()
						if resp.StatusCode == 503 {
							refused++
						} else {
							lat = append(lat, d)
						}
						mu.Unlock()
					}
				}()
			}
			for i := 0; i < b.N; i++ {
				next <- struct{}{}
			}
			close(next)
			wg.Wait()
			b.StopTimer()
			slices.Sort(lat)
			q := func(f float64) float64 {
				if len(lat) == 0 {
					return 0
				}
				return float64(lat[min(len(lat)-1, int(f*float64(len(lat))))]) / float64(time.Millisecond)
			}
			b.ReportMetric(float64(refused)/float64(b.N)*100, "%refused")
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(float64(p.srv.cfg.Load().Clusters["c"].Stats.RqPendingOverflow.Load()), "pending-overflow")
		})
	}
}
