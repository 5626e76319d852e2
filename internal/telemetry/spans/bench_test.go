package spans

import (
	"context"
	"runtime"
	"testing"

	"github.com/mast-mesh/mast/internal/telemetry/tracing"
)

type discard struct{}

func (discard) Export(context.Context, []*Span) error { return nil }
func (discard) Shutdown(context.Context) error        { return nil }

// What a sampled request costs to report (the queue; the span record is
// the caller's).
func BenchmarkReportSampled(b *testing.B) {
	t := &Tracer{batcher: NewBatcher(discard{}, BatcherConfig{})}
	s := testSpan(Server, "00f067aa0ba902b7")
	b.ReportAllocs()
	for b.Loop() {
		t.Report(s)
	}
	t.batcher.Shutdown(context.Background())
}

// What encoding a batch of 512 spans costs (the export goroutine's work).
func BenchmarkEncodeBatch(b *testing.B) {
	spans := make([]*Span, 512)
	for i := range spans {
		spans[i] = testSpan(Server, "00f067aa0ba902b7")
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = appendExportRequest(buf[:0], "productpage.default", spans)
	}
}

// The heap one OTLP collector's tracer holds (gRPC client, exporter,
// empty queue of 2048), the memory cost of turning tracing on.
func BenchmarkTracerMemory(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		reg := NewRegistry(Options{Dial: dialTo("127.0.0.1:1")})
		if _, err := reg.Get(tracing.Provider{Kind: tracing.OpenTelemetry, Cluster: "c", ServiceName: "s"}); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc), "heap-bytes/tracer")
		reg.Close(context.Background())
	}
}
