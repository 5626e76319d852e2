// Package zipkin is Zipkin's v2 JSON span model (what Envoy's HTTP_JSON
// collector_endpoint_version and Zipkin's /api/v2/spans take) and a bounded
// POST of a batch of spans. The proxy's tracer and Mixer's zipkin adapter
// both report through it.
package zipkin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Endpoint is a span's local or remote endpoint.
type Endpoint struct {
	ServiceName string `json:"serviceName,omitempty"`
	IPv4        string `json:"ipv4,omitempty"`
	IPv6        string `json:"ipv6,omitempty"`
	Port        int    `json:"port,omitempty"`
}

// Annotation is a timestamped event of a span.
type Annotation struct {
	Timestamp int64  `json:"timestamp"` // µs since the epoch
	Value     string `json:"value"`
}

// Span is one Zipkin v2 span. IDs are lower-case hex: 16 or 32 digits for
// the trace, 16 for spans.
type Span struct {
	TraceID        string            `json:"traceId"`
	ID             string            `json:"id"`
	ParentID       string            `json:"parentId,omitempty"`
	Name           string            `json:"name"`
	Kind           string            `json:"kind,omitempty"` // CLIENT, SERVER
	Timestamp      int64             `json:"timestamp"`      // µs since the epoch
	Duration       int64             `json:"duration"`       // µs, at least 1
	Shared         bool              `json:"shared,omitempty"`
	LocalEndpoint  *Endpoint         `json:"localEndpoint,omitempty"`
	RemoteEndpoint *Endpoint         `json:"remoteEndpoint,omitempty"`
	Annotations    []Annotation      `json:"annotations,omitempty"`
	Tags           map[string]string `json:"tags,omitempty"`
}

// Post sends spans to a collector's v2 endpoint (host, when set, is the
// Host header). The answer is read up to 64 KiB; a non-2xx status is an
// error naming the URL.
func Post(ctx context.Context, c *http.Client, url, host string, spans []Span) error {
	body, err := json.Marshal(spans)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("content-type", "application/json")
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("zipkin collector: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("zipkin collector %s: %s", url, resp.Status)
	}
	return nil
}
