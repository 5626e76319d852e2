package spans

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/telemetry/tracing"
)

func ids(trace, span, parent string) (sc, p tracing.SpanContext) {
	hex.Decode(sc.TraceID[:], []byte(trace))
	hex.Decode(sc.SpanID[:], []byte(span))
	if parent != "" {
		hex.Decode(p.SpanID[:], []byte(parent))
	}
	return sc, p
}

func testSpan(kind Kind, parent string) *Span {
	sc, p := ids("4bf92f3577b34da6a3ce929d0e0e4736", "1111111111111111", parent)
	start := time.Unix(1700000000, 0)
	return &Span{Name: "details.default.svc.cluster.local:9080/*", Kind: kind, Context: sc, Parent: p, Start: start, End: start.Add(3 * time.Millisecond),
		Attributes: []Attr{{Key: "http.status_code", Value: "503"}}, Error: true}
}

func dialTo(addr string) Dialer {
	return func(ctx context.Context, cluster string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

// A span reaches a Zipkin v2 collector with the IDs the proxy propagated,
// its parent, kind, tags and the service name.
func TestZipkinExport(t *testing.T) {
	got := make(chan []map[string]any, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var spans []map[string]any
		if r.URL.Path != "/api/v2/spans" || r.Host != "zipkin.istio-system" || json.Unmarshal(b, &spans) != nil {
			t.Errorf("collector got %s %s host %s: %s", r.Method, r.URL.Path, r.Host, b)
		}
		w.WriteHeader(http.StatusAccepted)
		got <- spans
	}))
	defer srv.Close()
	reg := NewRegistry(Options{Dial: dialTo(srv.Listener.Addr().String()), ServiceName: "details.default", Batcher: BatcherConfig{Interval: 10 * time.Millisecond}})
	tr, err := reg.Get(tracing.Provider{Kind: tracing.Zipkin, Cluster: "outbound|9411||zipkin", Authority: "zipkin.istio-system", Path: "/api/v2/spans"})
	if err != nil {
		t.Fatal(err)
	}
	tr.Report(testSpan(Server, "00f067aa0ba902b7"))
	s := (<-got)[0]
	want := map[string]any{"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "id": "1111111111111111", "parentId": "00f067aa0ba902b7",
		"kind": "SERVER", "name": "details.default.svc.cluster.local:9080/*", "timestamp": float64(1700000000000000), "duration": float64(3000)}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("%s = %v, want %v", k, s[k], v)
		}
	}
	if le, _ := s["localEndpoint"].(map[string]any); le["serviceName"] != "details.default" {
		t.Errorf("localEndpoint %v", s["localEndpoint"])
	}
	if tags, _ := s["tags"].(map[string]any); tags["http.status_code"] != "503" || tags["error"] != "true" {
		t.Errorf("tags %v", s["tags"])
	}
	if err := reg.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sent, dropped, failed := tr.Stats(); sent != 1 || dropped != 0 || failed != 0 {
		t.Errorf("stats sent %d dropped %d failed %d", sent, dropped, failed)
	}
}

// A span reaches an OTLP gRPC collector (grpc-go's server with the
// generated TraceService) through the registry's tracer.
func TestOTLPExport(t *testing.T) {
	c, addr := startCollector(t)
	reg := NewRegistry(Options{Dial: dialTo(addr), Batcher: BatcherConfig{Interval: 10 * time.Millisecond}})
	tr, err := reg.Get(tracing.Provider{Kind: tracing.OpenTelemetry, Cluster: "outbound|4317||jaeger", ServiceName: "productpage.default"})
	if err != nil {
		t.Fatal(err)
	}
	tr.Report(testSpan(Client, ""))
	req := <-c.got
	rs := req.GetResourceSpans()[0]
	if v := rs.GetResource().GetAttributes()[0]; v.GetKey() != "service.name" || v.GetValue().GetStringValue() != "productpage.default" {
		t.Errorf("resource %v", rs.GetResource())
	}
	sp := rs.GetScopeSpans()[0].GetSpans()[0]
	if hex.EncodeToString(sp.GetTraceId()) != "4bf92f3577b34da6a3ce929d0e0e4736" || hex.EncodeToString(sp.GetSpanId()) != "1111111111111111" ||
		len(sp.GetParentSpanId()) != 0 || sp.GetKind().String() != "SPAN_KIND_CLIENT" || sp.GetStatus().GetCode().String() != "STATUS_CODE_ERROR" {
		t.Errorf("span %v", sp)
	}
	if err := reg.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sent, dropped, failed := tr.Stats(); sent != 1 || dropped != 0 || failed != 0 {
		t.Errorf("stats sent %d dropped %d failed %d", sent, dropped, failed)
	}
}

// blockingExporter never returns until released: a collector that is up
// but does not answer.
type blockingExporter struct {
	release chan struct{}
	once    sync.Once
}

func (b *blockingExporter) Export(ctx context.Context, _ []*Span) error {
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *blockingExporter) Shutdown(context.Context) error {
	b.once.Do(func() { close(b.release) })
	return nil
}

// A stuck collector never blocks the request path: spans beyond the
// queue are dropped and counted, stuck batches time out and are counted.
func TestBatcherBoundedWhenCollectorStuck(t *testing.T) {
	exp := &blockingExporter{release: make(chan struct{})}
	b := NewBatcher(exp, BatcherConfig{QueueSize: 8, BatchSize: 4, Interval: time.Millisecond, Timeout: 20 * time.Millisecond})
	for i := 0; i < 1000; i++ {
		b.Offer(testSpan(Client, "")) // must return: Offer never waits for the collector
	}
	if b.Dropped.Load() == 0 {
		t.Fatal("1000 spans into a queue of 8 with a stuck collector: none dropped")
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.Failed.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if b.Failed.Load() == 0 {
		t.Fatal("no batch counted as failed after the export timeout")
	}
	if got := b.Sent.Load() + b.Failed.Load() + b.Dropped.Load(); got > 1000 {
		t.Fatalf("counted %d of 1000 spans", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
