package spans

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
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

type zipkinEndpoint struct {
	ServiceName string `json:"serviceName,omitempty"`
	IPv4        string `json:"ipv4,omitempty"`
	Port        int    `json:"port,omitempty"`
}

type zipkinSpan struct {
	TraceID        string            `json:"traceId"`
	ID             string            `json:"id"`
	ParentID       string            `json:"parentId,omitempty"`
	Name           string            `json:"name"`
	Kind           string            `json:"kind,omitempty"`
	Timestamp      int64             `json:"timestamp"`
	Duration       int64             `json:"duration"`
	LocalEndpoint  *zipkinEndpoint   `json:"localEndpoint,omitempty"`
	RemoteEndpoint *zipkinEndpoint   `json:"remoteEndpoint,omitempty"`
	Tags           map[string]string `json:"tags,omitempty"`
}

// ZipkinJSON renders spans in Zipkin's v2 JSON format.
func ZipkinJSON(spans []sdktrace.ReadOnlySpan) ([]byte, error) {
	out := make([]zipkinSpan, 0, len(spans))
	for _, s := range spans {
		sc := s.SpanContext()
		tid := sc.TraceID().String()
		if tid[:16] == "0000000000000000" {
			tid = tid[16:] // a 64-bit trace ID
		}
		z := zipkinSpan{TraceID: tid, ID: sc.SpanID().String(), Name: s.Name(),
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
		local := &zipkinEndpoint{}
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
	return json.Marshal(out)
}

func attrString(v attribute.Value) string {
	if v.Type() == attribute.STRING {
		return v.AsString()
	}
	return v.Emit()
}

// ExportSpans implements sdktrace.SpanExporter.
func (z *ZipkinExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	body, err := ZipkinJSON(spans)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, z.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("content-type", "application/json")
	if z.Host != "" {
		req.Host = z.Host
	}
	resp, err := z.Client.Do(req)
	if err != nil {
		return fmt.Errorf("zipkin collector: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("zipkin collector %s: %s", z.URL, resp.Status)
	}
	return nil
}

// Shutdown implements sdktrace.SpanExporter.
func (z *ZipkinExporter) Shutdown(context.Context) error {
	z.Client.CloseIdleConnections()
	return nil
}
