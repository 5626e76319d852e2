package dataplane

import (
	"slices"
	"testing"
	"time"
)

// measure runs op 200 times to warm the pools and connections, then b.N
// times under the timer, and reports the process's CPU (client, sidecars
// and backend) and the p50 and p99 latency per op.
func measure(b *testing.B, op func() error) {
	b.Helper()
	for i := 0; i < 200; i++ {
		if err := op(); err != nil {
			b.Fatalf("warm-up %d: %v", i, err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if err := op(); err != nil {
			b.Fatalf("op %d: %v", i, err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
