// Package zipkin is Mixer's zipkin adapter: tracespan instances (the spans
// the proxies' Reports describe) sent to a Zipkin v2 collector, sampled by
// trace ID with the handler's sampleProbability, as Istio 1.4's adapter did.
package zipkin

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/mixer/adapter"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
	"github.com/mast-mesh/mast/internal/mixer/template"
	"github.com/mast-mesh/mast/internal/telemetry/zipkin"
)

// Params are the adapter's params (Istio's adapter.zipkin.config.Params).
type Params struct {
	// URL is the collector's v2 endpoint, e.g. http://zipkin:9411/api/v2/spans.
	URL string `json:"url"`
	// SampleProbability is the share of traces sent, 0 (the default: none)
	// to 1.
	SampleProbability float64 `json:"sampleProbability"`
}

// Info describes the adapter.
var Info = &adapter.Info{Name: "zipkin", Templates: []string{"tracespan"}, Validate: validate, New: New}

func parse(params *structpb.Struct) (*Params, error) {
	var p Params
	if err := adapter.Decode(params, &p); err != nil {
		return nil, err
	}
	u, err := url.Parse(p.URL)
	switch {
	case p.URL == "":
		return nil, fmt.Errorf("params.url: required")
	case err != nil:
		return nil, fmt.Errorf("params.url: %v", err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return nil, fmt.Errorf("params.url: %q: want an http:// or https:// URL", p.URL)
	case !(p.SampleProbability >= 0 && p.SampleProbability <= 1):
		return nil, fmt.Errorf("params.sampleProbability: %v: must be between 0 and 1 inclusive", p.SampleProbability)
	}
	return &p, nil
}

func validate(params *structpb.Struct) error { _, err := parse(params); return err }

// Handler sends spans.
type Handler struct {
	url    string
	bound  uint64 // a trace is sampled when its 63 sampling bits are below it
	sample bool
	client *http.Client
}

var _ adapter.Reporter = (*Handler)(nil)

// New builds a handler. Sending uses env.HTTP (with its timeout).
func New(env adapter.Env, _ string, params *structpb.Struct) (adapter.Handler, error) {
	p, err := parse(params)
	if err != nil {
		return nil, err
	}
	h := &Handler{url: p.URL, sample: p.SampleProbability > 0, client: env.HTTP}
	if p.SampleProbability >= 1 {
		h.bound = 1 << 63
	} else {
		h.bound = uint64(p.SampleProbability * (1 << 63))
	}
	if h.client == nil {
		h.client = &http.Client{Timeout: 10 * time.Second}
	}
	return h, nil
}

// HandleReport implements adapter.Reporter: every sampled span of the batch
// in one POST.
func (h *Handler) HandleReport(ctx context.Context, insts []*template.Instance) error {
	if !h.sample {
		return nil
	}
	var out []zipkin.Span
	for _, in := range insts {
		if s, ok := h.span(in); ok {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return zipkin.Post(ctx, h.client, h.url, "", out)
}

// span converts one instance; false when its trace or span ID is not a B3
// hex ID, or its trace is not sampled.
func (h *Handler) span(in *template.Instance) (zipkin.Span, bool) {
	var tid [16]byte
	var sid, parent [8]byte
	if !parseID(in.String("trace_id"), tid[:]) || !parseID(in.String("span_id"), sid[:]) || !h.sampled(tid) {
		return zipkin.Span{}, false
	}
	hasParent := parseID(in.String("parent_span_id"), parent[:])
	client := truth(in.Fields["client_span"])
	if truth(in.Fields["rewrite_client_span_id"]) {
		// The client span gets an ID derived from the shared one and the
		// server span names it as its parent, so that the two are distinct
		// spans of one parent-child pair.
		if client {
			sid = rewrite(sid)
		} else {
			parent, hasParent = rewrite(sid), true
		}
	}
	start, _ := in.Fields["start_time"].(time.Time)
	end, _ := in.Fields["end_time"].(time.Time)
	s := zipkin.Span{TraceID: traceHex(tid), ID: hex.EncodeToString(sid[:]), Name: in.String("span_name"), Kind: "SERVER",
		Timestamp: start.UnixMicro(), Duration: max(end.Sub(start).Microseconds(), 1), Tags: map[string]string{}}
	if hasParent {
		s.ParentID = hex.EncodeToString(parent[:])
	}
	name, ip := in.Fields["destination_name"], in.Fields["destination_ip"]
	first, last := "RECV", "SENT" // a server receives the request, then sends the response
	if client {
		s.Kind = "CLIENT"
		name, ip = in.Fields["source_name"], in.Fields["source_ip"]
		first, last = "SENT", "RECV"
	}
	s.LocalEndpoint = endpoint(name, ip)
	s.Annotations = []zipkin.Annotation{{Timestamp: start.UnixMicro(), Value: first}, {Timestamp: end.UnixMicro(), Value: last}}
	// The template's size and protocol fields, which Istio's adapter
	// dropped, are tags named as the fields are (request_size and
	// response_size are also Envoy's tag names); span_tags may override.
	for _, f := range sizeFields {
		if n, ok := in.Fields[f].(int64); ok {
			s.Tags[f] = strconv.FormatInt(n, 10)
		}
	}
	if p, ok := in.Fields["api_protocol"].(string); ok && p != "" {
		s.Tags["api_protocol"] = p
	}
	if m, ok := in.Fields["span_tags"].(map[string]any); ok {
		for k, v := range m {
			s.Tags[k] = attribute.String(v)
		}
	}
	if code, ok := in.Fields["http_status_code"].(int64); ok && code > 0 {
		s.Tags["http.status_code"] = strconv.FormatInt(code, 10)
		if e := statusError(code); e != "" {
			s.Tags["error"] = e
		}
	}
	return s, true
}

// sizeFields are the tracespan template's byte-count fields.
var sizeFields = [...]string{"request_size", "request_total_size", "response_size", "response_total_size"}

// sampled decides by the trace ID alone, so that every span of a trace gets
// the same answer in every Mixer: the top 63 of the ID's 64 random bits
// (the last 8 bytes of a 64-bit B3 ID, the first 8 of a 128-bit one)
// against the bound. Istio's adapter read the first 8 bytes in both cases,
// which made every 64-bit trace sampled whatever the probability.
func (h *Handler) sampled(tid [16]byte) bool {
	b := tid[:8]
	if allZero(b) {
		b = tid[8:]
	}
	return binary.BigEndian.Uint64(b)>>1 < h.bound
}

// parseID reads a B3 hex ID of at most len(id) bytes into the low end of
// id; empty, malformed, too long and all-zero IDs are refused.
func parseID(s string, id []byte) bool {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 || len(b) > len(id) || allZero(b) {
		return false
	}
	copy(id[len(id)-len(b):], b)
	return true
}

// traceHex renders a trace ID as it came: 16 hex digits for a 64-bit ID,
// 32 for a 128-bit one.
func traceHex(id [16]byte) string {
	if allZero(id[:8]) {
		return hex.EncodeToString(id[8:])
	}
	return hex.EncodeToString(id[:])
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// pad is Istio's constant for rewritten client span IDs (XORed in), kept so
// that Mast's Mixer derives the same IDs as Istio's for the same spans.
var pad = [8]byte{0x3f, 0x6a, 0x2e, 0xc3, 0xc8, 0x10, 0xc2, 0xab}

func rewrite(id [8]byte) [8]byte {
	for i := range id {
		id[i] ^= pad[i]
	}
	return id
}

// truth reads a boolean field: a bool, or the strings "true"/"false".
func truth(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		b, _ := strconv.ParseBool(x)
		return b
	}
	return false
}

// endpoint is the span's local endpoint: the workload's name ("default"
// when the instance has none, as Istio's) and address.
func endpoint(name, ip any) *zipkin.Endpoint {
	ep := &zipkin.Endpoint{ServiceName: attribute.String(name)}
	if ep.ServiceName == "" {
		ep.ServiceName = "default"
	}
	var addr net.IP
	switch x := ip.(type) {
	case []byte:
		addr = net.IP(x)
	case string:
		addr = net.ParseIP(x)
	}
	if v4 := addr.To4(); v4 != nil {
		ep.IPv4 = v4.String()
	} else if addr.To16() != nil {
		ep.IPv6 = addr.String()
	}
	return ep
}

// statusError is the "error" tag of a span with this HTTP status: the
// canonical (gRPC) code the status maps to, "" for success — OpenCensus's
// mapping, which Istio's adapter reported.
func statusError(code int64) string {
	switch {
	case code >= 200 && code < 400:
		return ""
	case code == 400:
		return "INVALID_ARGUMENT"
	case code == 401:
		return "UNAUTHENTICATED"
	case code == 403:
		return "PERMISSION_DENIED"
	case code == 404:
		return "NOT_FOUND"
	case code == 429:
		return "RESOURCE_EXHAUSTED"
	case code == 501:
		return "UNIMPLEMENTED"
	case code == 503:
		return "UNAVAILABLE"
	case code == 504:
		return "DEADLINE_EXCEEDED"
	}
	return "UNKNOWN"
}

// Close releases idle connections.
func (h *Handler) Close() error {
	h.client.CloseIdleConnections()
	return nil
}
