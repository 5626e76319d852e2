// Package spans reports finished requests as spans through OpenTelemetry's
// Go SDK: one tracer provider per collector a proxy's configuration names,
// each with a bounded Batcher and an OTLP gRPC or Zipkin v2 JSON exporter
// that reaches the collector through the proxy's own cluster of that name.
// Only sampled requests get here: the decision and the header propagation
// are package tracing's, and cost no SDK call.
package spans

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/mast-mesh/mast/internal/telemetry/tracing"
)

// Dialer connects to one endpoint of a cluster of the proxy's
// configuration.
type Dialer func(ctx context.Context, cluster string) (net.Conn, error)

// Options configure a Registry.
type Options struct {
	// Dial reaches a collector's cluster.
	Dial Dialer
	// Batcher bounds each collector's queue.
	Batcher BatcherConfig
	// NodeID and Zone tag every span (node_id, zone); ServiceName names
	// the spans' service when the provider does not (Envoy's node cluster).
	NodeID, Zone, ServiceName string
	Logger                    *slog.Logger
}

// Node returns the node ID and zone spans are tagged with.
func (r *Registry) Node() (id, zone string) { return r.opts.NodeID, r.opts.Zone }

// Registry holds a tracer per collector. Providers are few (one per
// collector the mesh configures) and kept until Close.
type Registry struct {
	opts Options
	mu   sync.Mutex
	m    map[string]*Tracer
}

// NewRegistry returns an empty registry.
func NewRegistry(opts Options) *Registry {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Registry{opts: opts, m: map[string]*Tracer{}}
}

// Tracer reports spans to one collector.
type Tracer struct {
	Provider tracing.Provider
	tp       *sdktrace.TracerProvider
	tracer   trace.Tracer
	batcher  *Batcher
}

// Get returns the tracer for p, creating it the first time.
func (r *Registry) Get(p tracing.Provider) (*Tracer, error) {
	if p.ServiceName == "" {
		p.ServiceName = r.opts.ServiceName
	}
	key := p.Key()
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.m[key]; ok {
		return t, nil
	}
	exp, err := r.exporter(p)
	if err != nil {
		return nil, err
	}
	b := NewBatcher(exp, r.opts.Batcher)
	res := resource.NewSchemaless(attribute.String("service.name", p.ServiceName))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b), sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithIDGenerator(presetIDs{}))
	t := &Tracer{Provider: p, tp: tp, tracer: tp.Tracer("mast-proxy"), batcher: b}
	r.m[key] = t
	return t, nil
}

func (r *Registry) exporter(p tracing.Provider) (sdktrace.SpanExporter, error) {
	dial := r.opts.Dial
	if dial == nil {
		return nil, errors.New("tracing: no way to reach collector clusters")
	}
	switch p.Kind {
	case tracing.OpenTelemetry:
		authority := p.Authority
		if authority == "" {
			authority = p.Cluster
		}
		conn, err := grpc.NewClient("passthrough:///"+p.Cluster,
			grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(authority),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return dial(ctx, p.Cluster) }))
		if err != nil {
			return nil, fmt.Errorf("tracing: collector %q: %w", p.Cluster, err)
		}
		// No retries: a batch the collector does not take in one try is
		// counted as failed, so a dead collector never holds the queue.
		exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithGRPCConn(conn),
			otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("tracing: collector %q: %w", p.Cluster, err)
		}
		return exp, nil
	case tracing.Zipkin:
		host := p.Authority
		if host == "" {
			host = p.Cluster
		}
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx, p.Cluster) },
			MaxIdleConns: 2, IdleConnTimeout: time.Minute}
		return &ZipkinExporter{URL: "http://collector" + p.Path, Host: host, Client: &http.Client{Transport: tr}}, nil
	}
	return nil, fmt.Errorf("tracing: provider %v: not supported", p.Kind)
}

// Kind is a span's side of the call.
type Kind uint8

// Span kinds: Envoy's egress operation is a client span, ingress a server
// span.
const (
	Client Kind = iota
	Server
)

// Span is a finished request to report.
type Span struct {
	Name       string
	Kind       Kind
	Context    tracing.SpanContext
	Parent     tracing.SpanContext // zero SpanID: a root span
	Start, End time.Time
	Attributes []attribute.KeyValue
	Error      bool
}

type idsKey struct{}

// presetIDs hands the SDK the identifiers the proxy already propagated.
type presetIDs struct{}

func (presetIDs) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	s, _ := ctx.Value(idsKey{}).(*tracing.SpanContext)
	if s == nil {
		return trace.TraceID{1}, trace.SpanID{1}
	}
	return s.TraceID, s.SpanID
}

func (presetIDs) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	s, _ := ctx.Value(idsKey{}).(*tracing.SpanContext)
	if s == nil {
		return trace.SpanID{1}
	}
	return s.SpanID
}

// Report hands s to the tracer's queue (never blocking).
func (t *Tracer) Report(s *Span) {
	ctx := context.WithValue(context.Background(), idsKey{}, &s.Context)
	if s.Parent.SpanID != [8]byte{} {
		ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: s.Context.TraceID, SpanID: s.Parent.SpanID, TraceFlags: trace.FlagsSampled, Remote: true}))
	}
	kind := trace.SpanKindClient
	if s.Kind == Server {
		kind = trace.SpanKindServer
	}
	_, sp := t.tracer.Start(ctx, s.Name, trace.WithSpanKind(kind), trace.WithTimestamp(s.Start),
		trace.WithAttributes(s.Attributes...))
	if s.Error {
		sp.SetStatus(codes.Error, "")
	}
	sp.End(trace.WithTimestamp(s.End))
}

// WritePrometheus writes each collector's counters in the text format,
// named as Envoy's tracer stats (tracing.<provider>.spans_sent, …).
func (r *Registry) WritePrometheus(w io.Writer) {
	r.mu.Lock()
	ts := make([]*Tracer, 0, len(r.m))
	for _, t := range r.m {
		ts = append(ts, t)
	}
	r.mu.Unlock()
	sort.Slice(ts, func(i, j int) bool { return ts[i].Provider.Key() < ts[j].Provider.Key() })
	for _, stat := range []string{"spans_sent", "spans_dropped", "reports_failed"} {
		fmt.Fprintf(w, "# TYPE envoy_tracing_%s counter\n", stat)
		for _, t := range ts {
			v := t.batcher.Sent.Load()
			switch stat {
			case "spans_dropped":
				v = t.batcher.Dropped.Load()
			case "reports_failed":
				v = t.batcher.Failed.Load()
			}
			fmt.Fprintf(w, "envoy_tracing_%s{provider=%q,collector_cluster=%q} %d\n", stat, t.Provider.Kind.String(), t.Provider.Cluster, v)
		}
	}
}

// Stats returns a provider's counters: sent, dropped, failed.
func (t *Tracer) Stats() (sent, dropped, failed uint64) {
	return t.batcher.Sent.Load(), t.batcher.Dropped.Load(), t.batcher.Failed.Load()
}

// Close flushes and stops every tracer within ctx.
func (r *Registry) Close(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for k, t := range r.m {
		errs = append(errs, t.tp.Shutdown(ctx))
		delete(r.m, k)
	}
	return errors.Join(errs...)
}
