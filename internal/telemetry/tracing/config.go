package tracing

import (
	"strconv"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// ProviderKind is the collector protocol.
type ProviderKind uint8

// Providers: OpenTelemetry (OTLP over gRPC) and Zipkin (v2 JSON over HTTP).
const (
	OpenTelemetry ProviderKind = iota + 1
	Zipkin
)

func (k ProviderKind) String() string {
	switch k {
	case OpenTelemetry:
		return "opentelemetry"
	case Zipkin:
		return "zipkin"
	}
	return "unknown"
}

// Provider is where spans go: Envoy's HCM tracing.provider.
type Provider struct {
	Kind ProviderKind
	// Cluster is the collector's cluster (envoy_grpc.cluster_name or
	// collector_cluster); Authority the gRPC :authority or the Zipkin Host.
	Cluster, Authority string
	// ServiceName is the spans' service (OpenTelemetryConfig.service_name;
	// for Zipkin the node's cluster, as Envoy).
	ServiceName string
	// Path is Zipkin's collector_endpoint ("/api/v2/spans").
	Path string
	// TraceID128 is Zipkin's trace_id_128bit (new roots get 128-bit IDs).
	TraceID128 bool
}

// Key identifies a provider among those a proxy reports to.
func (p Provider) Key() string {
	return p.Kind.String() + "|" + p.Cluster + "|" + p.Authority + "|" + p.ServiceName + "|" + p.Path + "|" + strconv.FormatBool(p.TraceID128)
}

// CustomTag is one of the HCM's tracing.custom_tags: a literal, an
// environment variable or a request header (with a default).
type CustomTag struct {
	Tag     string
	Literal string
	Env     string
	Header  string
	Default string
}

// Config is one HTTP connection manager's tracing.
type Config struct {
	Provider Provider
	// RandomSampling, ClientSampling and OverallSampling are Envoy's
	// percentages (0-100): random_sampling (default 100), client_sampling
	// (x-client-trace-id, default 100), overall_sampling (default 100).
	RandomSampling, ClientSampling, OverallSampling float64
	CustomTags                                      []CustomTag
	// MaxPathTagLength truncates http.url (default 256).
	MaxPathTagLength int
	// Server makes the connection manager's spans server spans (Envoy's
	// ingress operation: the listener's traffic direction is INBOUND).
	Server bool
}

// Decide makes Envoy's decision for a request whose incoming context
// carried d: a decision in the headers is honoured; otherwise a request
// with x-client-trace-id is traced at ClientSampling, others at
// RandomSampling, and OverallSampling caps both. roll returns a uniform
// number in [0, 100).
func (c *Config) Decide(d Decision, h headers.List, roll func() float64) bool {
	switch d {
	case Sampled:
		return true
	case NotSampled:
		return false
	}
	var traced bool
	if h.Has(HeaderClientTrace) {
		traced = roll() < c.ClientSampling
	} else {
		traced = roll() < c.RandomSampling
	}
	return traced && (c.OverallSampling >= 100 || roll() < c.OverallSampling)
}
