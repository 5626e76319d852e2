package spans

import (
	"context"
	"math/rand/v2"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/telemetry/tracing"
	"github.com/mast-mesh/mast/internal/telemetry/zipkin"
)

// The reference: spans as the proxy reported them through the
// OpenTelemetry SDK before otlp.go (a tracer provider per collector with
// the service.name resource, preset IDs, a remote parent, the status), and
// the SDK's own OTLP/gRPC exporter and the SDK-span Zipkin conversion.

type idsKey struct{}

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

// sdkSpans records spans through the SDK as Tracer.Report did.
func sdkSpans(service string, spans []*Span) []sdktrace.ReadOnlySpan {
	rec := tracetest.NewSpanRecorder()
	res := resource.NewSchemaless(attribute.String("service.name", service))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithIDGenerator(presetIDs{}))
	tracer := tp.Tracer(scopeName)
	for _, s := range spans {
		ctx := context.WithValue(context.Background(), idsKey{}, &s.Context)
		if s.Parent.SpanID != [8]byte{} {
			ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: s.Context.TraceID, SpanID: s.Parent.SpanID, TraceFlags: trace.FlagsSampled, Remote: true}))
		}
		kind := trace.SpanKindClient
		if s.Kind == Server {
			kind = trace.SpanKindServer
		}
		attrs := make([]attribute.KeyValue, len(s.Attributes))
		for i, a := range s.Attributes {
			attrs[i] = attribute.String(a.Key, a.Value)
		}
		_, sp := tracer.Start(ctx, s.Name, trace.WithSpanKind(kind), trace.WithTimestamp(s.Start), trace.WithAttributes(attrs...))
		if s.Error {
			sp.SetStatus(codes.Error, "")
		}
		sp.End(trace.WithTimestamp(s.End))
	}
	return rec.Ended()
}

// zipkinSpansSDK is the Zipkin conversion of SDK spans the exporter used.
func zipkinSpansSDK(spans []sdktrace.ReadOnlySpan) []zipkin.Span {
	out := make([]zipkin.Span, 0, len(spans))
	for _, s := range spans {
		sc := s.SpanContext()
		tid := sc.TraceID().String()
		if tid[:16] == "0000000000000000" {
			tid = tid[16:]
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
			z.Tags[string(kv.Key)] = kv.Value.AsString()
		}
		if s.Status().Code == codes.Error {
			z.Tags["error"] = "true"
		}
		out = append(out, z)
	}
	return out
}

// capture is a collector that keeps the requests it is sent.
type capture struct {
	collectortrace.UnimplementedTraceServiceServer
	got chan *collectortrace.ExportTraceServiceRequest
}

func (c *capture) Export(_ context.Context, r *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.got <- r
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func startCollector(t testing.TB) (*capture, string) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	c := &capture{got: make(chan *collectortrace.ExportTraceServiceRequest, 16)}
	collectortrace.RegisterTraceServiceServer(srv, c)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return c, lis.Addr().String()
}

// randomSpans makes n spans with random IDs, parents, kinds, times,
// errors and attributes (repeated keys, empty keys and values, non-ASCII,
// sometimes more than the SDK's 128).
func randomSpans(r *rand.Rand, n int) []*Span {
	keys := []string{"http.url", "node_id", "zone", "", "é", "x", "http.status_code", "custom"}
	vals := []string{"", "v", "503", "https://a/b?c", "日本", strings.Repeat("w", 200)}
	out := make([]*Span, n)
	for i := range out {
		s := &Span{Name: vals[r.IntN(len(vals))] + "/op", Kind: Kind(r.IntN(2)), Error: r.IntN(2) == 0}
		for j := range s.Context.TraceID {
			s.Context.TraceID[j] = byte(r.IntN(256))
		}
		if r.IntN(4) == 0 {
			clear(s.Context.TraceID[:8]) // a 64-bit trace ID
		}
		for j := range s.Context.SpanID {
			s.Context.SpanID[j] = byte(1 + r.IntN(255))
		}
		if r.IntN(2) == 0 {
			for j := range s.Parent.SpanID {
				s.Parent.SpanID[j] = byte(r.IntN(256))
			}
		}
		s.Start = time.Unix(1700000000+r.Int64N(1e6), r.Int64N(1e9))
		s.End = s.Start.Add(time.Duration(r.Int64N(int64(time.Second))))
		na := r.IntN(20)
		if r.IntN(10) == 0 {
			na = 120 + r.IntN(30)
		}
		for j := range na {
			k := keys[r.IntN(len(keys))]
			if na > 100 {
				k += string(rune('a'+j%26)) + string(rune('a'+j/26))
			}
			s.Attributes = append(s.Attributes, Attr{Key: k, Value: vals[r.IntN(len(vals))]})
		}
		out[i] = s
	}
	return out
}

// TestOTLPMatchesSDK: for random spans, the request appendExportRequest
// writes decodes (with the generated OTLP type) to the request the SDK's
// otlptracegrpc exporter sent for the same spans, one span and a batch at
// a time; the Zipkin spans are those of the SDK's spans.
func TestOTLPMatchesSDK(t *testing.T) {
	c, addr := startCollector(t)
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithGRPCConn(cc),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(context.Background())
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 300 {
		spans := randomSpans(r, 1+r.IntN(4)*r.IntN(2))
		service := []string{"productpage.default", "", "é"}[r.IntN(3)]
		sdk := sdkSpans(service, spans)
		if err := exp.ExportSpans(context.Background(), sdk); err != nil {
			t.Fatal(err)
		}
		want := <-c.got
		var have collectortrace.ExportTraceServiceRequest
		b := appendExportRequest(nil, service, spans)
		if err := proto.Unmarshal(b, &have); err != nil {
			t.Fatalf("#%d: %x does not decode: %v", i, b, err)
		}
		if !proto.Equal(&have, want) {
			t.Fatalf("#%d: encoded\n%v\nSDK exporter sent\n%v", i, &have, want)
		}
		if wz, hz := zipkinSpansSDK(sdk), ZipkinSpans(spans, service); !reflect.DeepEqual(wz, hz) {
			t.Fatalf("#%d: zipkin\n%+v\nSDK\n%+v", i, hz, wz)
		}
	}
}

// TestOTLPInvalidUTF8: a tag value that is not UTF-8 is sent with U+FFFD
// in its place (the SDK's exporter failed the whole batch on it).
func TestOTLPInvalidUTF8(t *testing.T) {
	s := testSpan(Server, "")
	s.Attributes = append(s.Attributes, Attr{Key: "user_agent", Value: "a\xffb"})
	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(appendExportRequest(nil, "svc", []*Span{s}), &req); err != nil {
		t.Fatal(err)
	}
	attrs := req.GetResourceSpans()[0].GetScopeSpans()[0].GetSpans()[0].GetAttributes()
	if v := attrs[len(attrs)-1].GetValue().GetStringValue(); v != "a\uFFFDb" {
		t.Fatalf("user_agent sent as %q", v)
	}
}

// TestOTLPFieldNumbers: the span kinds and status code otlp.go writes are
// the generated enums'.
func TestOTLPFieldNumbers(t *testing.T) {
	if kindServer != int(tracepb.Span_SPAN_KIND_SERVER) || kindClient != int(tracepb.Span_SPAN_KIND_CLIENT) ||
		statusError != int(tracepb.Status_STATUS_CODE_ERROR) ||
		flagHasIsRemote != int(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK) ||
		flagParentRemote != int(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK) {
		t.Fatal("otlp.go's enum values differ from the generated ones")
	}
}
