package spans

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/mast-mesh/mast/internal/telemetry/zipkin"
)

// ZipkinExporter posts spans as Zipkin v2 JSON (Envoy's HTTP_JSON
// collector_endpoint_version). OpenTelemetry's own Zipkin exporter is not
// among the modules Mast may use; the format is a small JSON array.
type ZipkinExporter struct {
	// URL is the collector endpoint; Host overrides the Host header.
	URL, Host string
	Client    *http.Client
}

var _ sdktrace.SpanExporter = (*ZipkinExporter)(nil)

// ZipkinSpans converts spans to Zipkin's v2 model.
func ZipkinSpans(spans []sdktrace.ReadOnlySpan) []zipkin.Span {
	out := make([]zipkin.Span, 0, len(spans))
	for _, s := range spans {
		sc := s.SpanContext()
		tid := sc.TraceID().String()
		if tid[:16] == "0000000000000000" {
			tid = tid[16:] // a 64-bit trace ID
		}
		z := zipkin.Span{TraceID: tid, ID: sc.SpanID().String(), Name: s.Name(),
			Timestamp: s.StartTime().UnixMicro(), Duration: s.EndTime().Sub(s.StartTime()).Microseconds(),
			Tags: map[string]string{}}
		if z.Duration < 1 {
			z.Duration = 1
		}
		if p := s.Parent(); p.HasSpanID() {
			z.ParentID = p.SpanID().String()
		}
		switch s.SpanKind() {
		case trace.SpanKindServer:
			z.Kind = "SERVER"
		case trace.SpanKindClient:
			z.Kind = "CLIENT"
		}
		local := &zipkin.Endpoint{}
		if r := s.Resource(); r != nil {
			if v, ok := r.Set().Value("service.name"); ok {
				local.ServiceName = v.AsString()
			}
		}
		z.LocalEndpoint = local
		for _, kv := range s.Attributes() {
			z.Tags[string(kv.Key)] = attrString(kv.Value)
		}
		if s.Status().Code == 1 { // codes.Error
			z.Tags["error"] = "true"
		}
		out = append(out, z)
	}
	return out
}

func attrString(v attribute.Value) string {
	if v.Type() == attribute.STRING {
		return v.AsString()
	}
	return v.Emit()
}

// ExportSpans implements sdktrace.SpanExporter.
func (z *ZipkinExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	return zipkin.Post(ctx, z.Client, z.URL, z.Host, ZipkinSpans(spans))
}

// Shutdown implements sdktrace.SpanExporter.
func (z *ZipkinExporter) Shutdown(context.Context) error {
	z.Client.CloseIdleConnections()
	return nil
}
