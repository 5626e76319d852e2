package admin

import (
	"math"
	"runtime/metrics"
)

// RuntimeStats is what /runtime reports: the Go runtime's allocation and
// GC counters and its GC-pause and scheduling-latency histograms, all
// cumulative since start, so that a benchmark can take the difference over
// a run (bench/dataplane does).
type RuntimeStats struct {
	GCCycles     uint64 `json:"gc_cycles"`
	AllocBytes   uint64 `json:"alloc_bytes"`
	AllocObjects uint64 `json:"alloc_objects"`
	// GCPauses are the stop-the-world pauses of the GC
	// (/sched/pauses/total/gc:seconds); SchedLatencies how long
	// goroutines waited runnable before they ran (/sched/latencies:seconds).
	GCPauses       Histogram `json:"gc_pauses_seconds"`
	SchedLatencies Histogram `json:"sched_latencies_seconds"`
}

// Histogram is a runtime/metrics histogram: Counts[i] samples fell in
// [Buckets[i], Buckets[i+1]).
type Histogram struct {
	Buckets []float64 `json:"buckets"`
	Counts  []uint64  `json:"counts"`
}

// ReadRuntime samples the runtime's metrics.
func ReadRuntime() RuntimeStats {
	s := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/gc/heap/allocs:objects"},
		{Name: "/sched/pauses/total/gc:seconds"},
		{Name: "/sched/latencies:seconds"},
	}
	metrics.Read(s)
	u := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	h := func(i int) Histogram {
		if s[i].Value.Kind() != metrics.KindFloat64Histogram {
			return Histogram{}
		}
		v := s[i].Value.Float64Histogram()
		b := make([]float64, len(v.Buckets))
		for j, x := range v.Buckets {
			// JSON has no infinities: the open ends become the largest
			// finite values.
			switch {
			case math.IsInf(x, -1):
				x = -math.MaxFloat64
			case math.IsInf(x, 1):
				x = math.MaxFloat64
			}
			b[j] = x
		}
		return Histogram{Buckets: b, Counts: append([]uint64(nil), v.Counts...)}
	}
	return RuntimeStats{GCCycles: u(0), AllocBytes: u(1), AllocObjects: u(2), GCPauses: h(3), SchedLatencies: h(4)}
}

// Sub returns the samples h gained since earlier (a histogram of the same
// buckets read before).
func (h Histogram) Sub(earlier Histogram) Histogram {
	out := Histogram{Buckets: h.Buckets, Counts: append([]uint64(nil), h.Counts...)}
	if len(earlier.Counts) == len(h.Counts) {
		for i := range out.Counts {
			out.Counts[i] -= min(earlier.Counts[i], out.Counts[i])
		}
	}
	return out
}

// Quantile returns the upper bound of the bucket holding quantile q
// (0 < q <= 1), 0 for an empty histogram.
func (h Histogram) Quantile(q float64) float64 {
	var total uint64
	for _, c := range h.Counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= want && c > 0 {
			return h.Buckets[i+1]
		}
	}
	return h.Buckets[len(h.Buckets)-1]
}

// Max returns the upper bound of the highest non-empty bucket, 0 for none.
func (h Histogram) Max() float64 {
	for i := len(h.Counts) - 1; i >= 0; i-- {
		if h.Counts[i] > 0 {
			return h.Buckets[i+1]
		}
	}
	return 0
}
