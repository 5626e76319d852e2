package admin

import (
	"encoding/json"
	"runtime"
	"testing"
)

func TestReadRuntime(t *testing.T) {
	before := ReadRuntime()
	sink := make([][]byte, 0, 64)
	for i := 0; i < 64; i++ {
		sink = append(sink, make([]byte, 1024))
	}
	runtime.KeepAlive(sink)
	runtime.GC()
	after := ReadRuntime()
	if after.GCCycles <= before.GCCycles {
		t.Errorf("gc cycles %d -> %d after runtime.GC", before.GCCycles, after.GCCycles)
	}
	if after.AllocBytes-before.AllocBytes < 64*1024 || after.AllocObjects-before.AllocObjects < 64 {
		t.Errorf("allocations %d B, %d objects, want at least 64 KiB in 64", after.AllocBytes-before.AllocBytes, after.AllocObjects-before.AllocObjects)
	}
	p := after.GCPauses.Sub(before.GCPauses)
	if len(p.Buckets) != len(p.Counts)+1 || p.Max() <= 0 {
		t.Errorf("GC pauses over a forced GC: %d buckets, %d counts, max %v", len(p.Buckets), len(p.Counts), p.Max())
	}
	// The open ends must survive JSON.
	if _, err := json.Marshal(after); err != nil {
		t.Fatal(err)
	}
}

func TestHistogramQuantile(t *testing.T) {
	h := Histogram{Buckets: []float64{0, 1, 2, 3, 4}, Counts: []uint64{90, 9, 0, 1}}
	for _, c := range []struct{ q, want float64 }{{0.5, 1}, {0.9, 1}, {0.95, 2}, {0.99, 2}, {0.999, 4}, {1, 4}} {
		if got := h.Quantile(c.q); got != c.want {
			t.Errorf("Quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if h.Max() != 4 {
		t.Errorf("Max = %v, want 4", h.Max())
	}
	d := h.Sub(Histogram{Buckets: h.Buckets, Counts: []uint64{90, 0, 0, 0}})
	if d.Quantile(0.5) != 2 || d.Counts[0] != 0 {
		t.Errorf("Sub: %v", d.Counts)
	}
	if (Histogram{}).Quantile(0.99) != 0 || (Histogram{}).Max() != 0 {
		t.Error("an empty histogram has quantiles")
	}
}
