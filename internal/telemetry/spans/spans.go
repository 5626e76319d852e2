// Package spans reports finished requests as spans: one tracer per
// collector a proxy's configuration names, each with a bounded Batcher and
// an OTLP/gRPC or Zipkin v2 JSON exporter that reaches the collector
// through the proxy's own cluster of that name. The spans are mast-proxy's
// own records, encoded for OTLP with protowire (otlp.go): the OpenTelemetry
// SDK and its gRPC exporter are not linked into the sidecar. Only sampled
// requests get here: the decision and the header propagation are package
// tracing's.
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

	"github.com/mast-mesh/mast/internal/proxy/rpc"
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
	t := &Tracer{Provider: p, batcher: NewBatcher(exp, r.opts.Batcher)}
	r.m[key] = t
	return t, nil
}

func (r *Registry) exporter(p tracing.Provider) (Exporter, error) {
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
		conn, err := rpc.Dial("passthrough:///"+p.Cluster, rpc.Options{Authority: authority,
			Dial: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx, p.Cluster) }})
		if err != nil {
			return nil, fmt.Errorf("tracing: collector %q: %w", p.Cluster, err)
		}
		// No retries: a batch the collector does not take in one try is
		// counted as failed, so a dead collector never holds the queue.
		return &OTLPExporter{Conn: conn, ServiceName: p.ServiceName}, nil
	case tracing.Zipkin:
		host := p.Authority
		if host == "" {
			host = p.Cluster
		}
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx, p.Cluster) },
			MaxIdleConns: 2, IdleConnTimeout: time.Minute}
		return &ZipkinExporter{URL: "http://collector" + p.Path, Host: host, ServiceName: p.ServiceName,
			Client: &http.Client{Transport: tr}}, nil
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

// Attr is a span attribute (Envoy's span tags are all strings).
type Attr struct{ Key, Value string }

// Span is a finished request to report.
type Span struct {
	Name       string
	Kind       Kind
	Context    tracing.SpanContext
	Parent     tracing.SpanContext // zero SpanID: a root span
	Start, End time.Time
	Attributes []Attr
	Error      bool
}

// maxAttributes is the most attributes a span keeps, OpenTelemetry's
// default span limit (the SDK's AttributeCountLimit); the rest are counted
// as dropped.
const maxAttributes = 128

// attributes returns s's attributes as the OpenTelemetry SDK records
// them: one per key (the first position, the last value), none with an
// empty key, at most maxAttributes; dropped counts the others.
func (s *Span) attributes() (out []Attr, dropped uint32) {
	out = make([]Attr, 0, min(len(s.Attributes), maxAttributes))
	for _, a := range s.Attributes {
		if a.Key == "" {
			dropped++
			continue
		}
		if i := indexOf(out, a.Key); i >= 0 {
			out[i].Value = a.Value
			continue
		}
		if len(out) >= maxAttributes {
			dropped++
			continue
		}
		out = append(out, a)
	}
	return out, dropped
}

func indexOf(as []Attr, key string) int {
	for i := range as {
		if as[i].Key == key {
			return i
		}
	}
	return -1
}

// Report hands s to the tracer's queue (never blocking); s must not change
// afterwards.
func (t *Tracer) Report(s *Span) { t.batcher.Offer(s) }

// WritePrometheus writes each collector's counters in the text format,
// named as Envoy's tracer stats (tracing.<provider>.spans_sent, …): the
// families keep keeps (nil: all).
func (r *Registry) WritePrometheus(w io.Writer, keep func(family string) bool) {
	r.mu.Lock()
	ts := make([]*Tracer, 0, len(r.m))
	for _, t := range r.m {
		ts = append(ts, t)
	}
	r.mu.Unlock()
	sort.Slice(ts, func(i, j int) bool { return ts[i].Provider.Key() < ts[j].Provider.Key() })
	for _, stat := range []string{"spans_sent", "spans_dropped", "reports_failed"} {
		if keep != nil && !keep("envoy_tracing_"+stat) {
			continue
		}
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
		errs = append(errs, t.batcher.Shutdown(ctx))
		delete(r.m, k)
	}
	return errors.Join(errs...)
}
