package spans

import (
	"context"
	"runtime"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/mast-mesh/mast/internal/telemetry/tracing"
)

type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// What a sampled request costs to report (SDK span, attributes, queue).
func BenchmarkReportSampled(b *testing.B) {
	bt := NewBatcher(discard{}, BatcherConfig{})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(bt), sdktrace.WithIDGenerator(presetIDs{}))
	t := &Tracer{tp: tp, tracer: tp.Tracer("b"), batcher: bt}
	s := testSpan(Server, "00f067aa0ba902b7")
	b.ReportAllocs()
	for b.Loop() {
		t.Report(s)
	}
	tp.Shutdown(context.Background())
}

// The heap one OTLP collector's tracer holds (SDK provider, gRPC client,
// exporter, empty queue of 2048), the memory cost of turning tracing on.
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
