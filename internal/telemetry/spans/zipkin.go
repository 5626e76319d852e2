package spans

import (
	"context"
	"encoding/hex"
	"net/http"

	"github.com/mast-mesh/mast/internal/telemetry/zipkin"
)

// ZipkinExporter posts spans as Zipkin v2 JSON (Envoy's HTTP_JSON
// collector_endpoint_version).
type ZipkinExporter struct {
	// URL is the collector endpoint; Host overrides the Host header.
	URL, Host string
	// ServiceName is the spans' local endpoint.
	ServiceName string
	Client      *http.Client
}

var _ Exporter = (*ZipkinExporter)(nil)

// ZipkinSpans converts spans to Zipkin's v2 model.
func ZipkinSpans(spans []*Span, service string) []zipkin.Span {
	out := make([]zipkin.Span, 0, len(spans))
	for _, s := range spans {
		tid := hex.EncodeToString(s.Context.TraceID[:])
		if tid[:16] == "0000000000000000" {
			tid = tid[16:] // a 64-bit trace ID
		}
		z := zipkin.Span{TraceID: tid, ID: hex.EncodeToString(s.Context.SpanID[:]), Name: s.Name,
			Timestamp: s.Start.UnixMicro(), Duration: s.End.Sub(s.Start).Microseconds(),
			Tags: map[string]string{}, LocalEndpoint: &zipkin.Endpoint{ServiceName: service}}
		if z.Duration < 1 {
			z.Duration = 1
		}
		if s.Parent.SpanID != [8]byte{} {
			z.ParentID = hex.EncodeToString(s.Parent.SpanID[:])
		}
		switch s.Kind {
		case Server:
			z.Kind = "SERVER"
		case Client:
			z.Kind = "CLIENT"
		}
		attrs, _ := s.attributes()
		for _, a := range attrs {
			z.Tags[a.Key] = a.Value
		}
		if s.Error {
			z.Tags["error"] = "true"
		}
		out = append(out, z)
	}
	return out
}

// Export implements Exporter.
func (z *ZipkinExporter) Export(ctx context.Context, spans []*Span) error {
	return zipkin.Post(ctx, z.Client, z.URL, z.Host, ZipkinSpans(spans, z.ServiceName))
}

// Shutdown implements Exporter.
func (z *ZipkinExporter) Shutdown(context.Context) error {
	z.Client.CloseIdleConnections()
	return nil
}
