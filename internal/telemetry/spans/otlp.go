package spans

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/mast-mesh/mast/internal/proxy/pbwire"
	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

// exportMethod is OTLP's trace export call.
const exportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// scopeName is the instrumentation scope of every span.
const scopeName = "mast-proxy"

// OTLPExporter sends spans to an OpenTelemetry collector over OTLP/gRPC:
// one ExportTraceServiceRequest per batch, encoded with protowire as the
// OpenTelemetry Go SDK's exporter encodes it (otlp_test.go compares the
// two), without retries.
type OTLPExporter struct {
	Conn rpc.Conn
	// ServiceName is the resource's service.name.
	ServiceName string
}

var _ Exporter = (*OTLPExporter)(nil)

// Export implements Exporter. The response (a partial success at most) is
// not read: the SDK's exporter only logs it.
func (o *OTLPExporter) Export(ctx context.Context, spans []*Span) error {
	if len(spans) == 0 {
		return nil
	}
	if _, err := o.Conn.Invoke(ctx, exportMethod, appendExportRequest(nil, o.ServiceName, spans)); err != nil {
		return fmt.Errorf("otlp export of %d spans: %w", len(spans), err)
	}
	return nil
}

// Shutdown implements Exporter.
func (o *OTLPExporter) Shutdown(context.Context) error { return o.Conn.Close() }

// Field numbers of opentelemetry.proto.collector.trace.v1 and
// opentelemetry.proto.trace.v1 / common.v1 / resource.v1.
const (
	reqResourceSpans = 1 // ExportTraceServiceRequest.resource_spans
	rsResource       = 1 // ResourceSpans.resource
	rsScopeSpans     = 2
	resAttributes    = 1 // Resource.attributes
	ssScope          = 1 // ScopeSpans.scope (InstrumentationScope)
	ssSpans          = 2
	scopeNameField   = 1
	kvKey            = 1 // KeyValue.key
	kvValue          = 2 // KeyValue.value (AnyValue)
	anyString        = 1 // AnyValue.string_value
	spTraceID        = 1
	spSpanID         = 2
	spParentSpanID   = 4
	spName           = 5
	spKind           = 6
	spStart          = 7 // fixed64
	spEnd            = 8 // fixed64
	spAttributes     = 9
	spDroppedAttrs   = 10
	spStatus         = 15
	spFlags          = 16 // fixed32
	statusCodeField  = 3  // Status.code

	kindServer  = 2 // Span.SpanKind SPAN_KIND_SERVER
	kindClient  = 3 // SPAN_KIND_CLIENT
	statusError = 2 // Status.StatusCode STATUS_CODE_ERROR

	// Span flags as the SDK writes them: the W3C trace flags (sampled),
	// "whether the parent is remote is known", and "the parent is remote".
	flagSampled      = 0x01
	flagHasIsRemote  = 0x100
	flagParentRemote = 0x200
)

// appendExportRequest appends the ExportTraceServiceRequest of a batch:
// one resource (service.name) with one scope (mast-proxy) holding the
// spans. Strings that are not UTF-8 (a header value in a tag) are sent
// with U+FFFD in their place: protobuf requires UTF-8, and one bad tag
// must not lose the batch.
func appendExportRequest(b []byte, service string, spans []*Span) []byte {
	e := &pbwire.Enc{B: b}
	rs := e.Begin(reqResourceSpans)
	res := e.Begin(rsResource)
	appendAttr(e, resAttributes, Attr{Key: "service.name", Value: service})
	e.End(res)
	ss := e.Begin(rsScopeSpans)
	sc := e.Begin(ssScope)
	e.String(scopeNameField, "name", scopeName)
	e.End(sc)
	for _, s := range spans {
		m := e.Begin(ssSpans)
		appendSpan(e, s)
		e.End(m)
	}
	e.End(ss)
	e.End(rs)
	return e.B
}

func appendSpan(e *pbwire.Enc, s *Span) {
	e.Bytes(spTraceID, s.Context.TraceID[:])
	e.Bytes(spSpanID, s.Context.SpanID[:])
	flags := uint32(flagSampled | flagHasIsRemote)
	if s.Parent.SpanID != [8]byte{} {
		e.Bytes(spParentSpanID, s.Parent.SpanID[:])
		flags |= flagParentRemote
	}
	e.String(spName, "name", validUTF8(s.Name))
	kind := uint64(kindClient)
	if s.Kind == Server {
		kind = kindServer
	}
	e.Varint(spKind, kind)
	e.Fixed64(spStart, unixNano(s.Start.UnixNano()))
	e.Fixed64(spEnd, unixNano(s.End.UnixNano()))
	attrs, dropped := s.attributes()
	for _, a := range attrs {
		appendAttr(e, spAttributes, a)
	}
	e.Varint(spDroppedAttrs, uint64(dropped))
	st := e.Begin(spStatus)
	if s.Error {
		e.Varint(statusCodeField, statusError)
	}
	e.End(st)
	e.Fixed32(spFlags, flags)
}

// appendAttr writes a KeyValue with a string AnyValue (a oneof member,
// written even when empty).
func appendAttr(e *pbwire.Enc, num protowire.Number, a Attr) {
	kv := e.Begin(num)
	e.String(kvKey, "key", validUTF8(a.Key))
	v := e.Begin(kvValue)
	e.StringAlways(anyString, "string_value", validUTF8(a.Value))
	e.End(v)
	e.End(kv)
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// unixNano is a time as OTLP's fixed64 nanoseconds (times before 1970
// are 0, as the SDK sends them).
func unixNano(n int64) uint64 { return uint64(max(0, n)) }
