// Package tracing is mast-proxy's distributed tracing: it reads and writes
// the trace context headers (B3 single and multi header, W3C traceparent and
// tracestate), makes Envoy's sampling decision, and reports finished
// requests as client or server spans through OpenTelemetry's Go SDK to an
// OTLP (gRPC) or Zipkin v2 (JSON) collector, batched in a bounded queue that
// drops, and counts, what a slow or dead collector cannot take.
package tracing

import (
	"encoding/hex"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// Header names of the propagation formats.
const (
	HeaderTraceparent  = "traceparent"
	HeaderTracestate   = "tracestate"
	HeaderB3           = "b3"
	HeaderB3TraceID    = "x-b3-traceid"
	HeaderB3SpanID     = "x-b3-spanid"
	HeaderB3ParentID   = "x-b3-parentspanid"
	HeaderB3Sampled    = "x-b3-sampled"
	HeaderB3Flags      = "x-b3-flags"
	HeaderClientTrace  = "x-client-trace-id"
	HeaderForceTrace   = "x-envoy-force-trace"
	HeaderRequestID    = "x-request-id"
	headerSampledTrue  = "1"
	headerSampledFalse = "0"
)

// Decision is a sampling decision carried by the incoming headers.
type Decision uint8

// Decisions: none (the proxy decides), sampled, not sampled.
const (
	Undecided Decision = iota
	Sampled
	NotSampled
)

// SpanContext is a span's identity as it travels between processes.
type SpanContext struct {
	TraceID [16]byte
	SpanID  [8]byte
	// Decision is the sampling decision the headers carried.
	Decision Decision
	// TraceState is W3C tracestate, passed on unchanged.
	TraceState string
	// B3Single records that the context came in a `b3` header, which is
	// then written back in the same form.
	B3Single bool
}

// Valid reports whether sc names a trace and a span.
func (sc *SpanContext) Valid() bool {
	return sc.TraceID != [16]byte{} && sc.SpanID != [8]byte{}
}

// Extract reads the trace context of a request: traceparent first, then
// b3, then the x-b3-* headers (a proxy that writes all of them writes the
// same identifiers). ok is false when no valid context is present; the
// returned Decision may still be set (a bare `b3: 0` or `x-b3-sampled: 0`
// is a decision without a trace).
func Extract(h headers.List) (sc SpanContext, ok bool) {
	if v, has := h.Get(HeaderTraceparent); has {
		if parseTraceparent(v, &sc) {
			sc.TraceState = h.Value(HeaderTracestate)
			return sc, true
		}
		sc = SpanContext{}
	}
	if v, has := h.Get(HeaderB3); has {
		if parseB3Single(v, &sc) {
			sc.B3Single = true
			return sc, sc.Valid()
		}
		sc = SpanContext{}
	}
	if v, has := h.Get(HeaderB3Sampled); has {
		switch v {
		case "1", "true", "d":
			sc.Decision = Sampled
		case "0", "false":
			sc.Decision = NotSampled
		}
	}
	if h.Value(HeaderB3Flags) == "1" {
		sc.Decision = Sampled // debug
	}
	tid, has := h.Get(HeaderB3TraceID)
	if !has || !parseTraceID(tid, &sc.TraceID) || !parseHex(h.Value(HeaderB3SpanID), sc.SpanID[:]) {
		sc.TraceID, sc.SpanID = [16]byte{}, [8]byte{}
		return sc, false
	}
	return sc, sc.Valid()
}

// parseTraceparent parses W3C's version-format-traceid-parentid-flags.
func parseTraceparent(v string, sc *SpanContext) bool {
	// 00-<32 hex>-<16 hex>-<2 hex>; later versions may append fields.
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return false
	}
	if v[:2] == "ff" || !isLowerHex(v[:2]) || (v[:2] == "00" && len(v) != 55) || (len(v) > 55 && v[55] != '-') {
		return false
	}
	var flags [1]byte
	if !parseHex(v[3:35], sc.TraceID[:]) || !parseHex(v[36:52], sc.SpanID[:]) || !parseHex(v[53:55], flags[:]) {
		return false
	}
	if !sc.Valid() {
		return false
	}
	if flags[0]&1 != 0 {
		sc.Decision = Sampled
	} else {
		sc.Decision = NotSampled
	}
	return true
}

// parseB3Single parses `b3: {traceid}-{spanid}[-{sampled}[-{parentspanid}]]`
// or a bare sampling state ("0", "1", "d").
func parseB3Single(v string, sc *SpanContext) bool {
	switch v {
	case "0":
		sc.Decision = NotSampled
		return true
	case "1", "d":
		sc.Decision = Sampled
		return true
	}
	i := indexByte(v, '-')
	if i < 0 || !parseTraceID(v[:i], &sc.TraceID) {
		return false
	}
	rest := v[i+1:]
	span := rest
	if j := indexByte(rest, '-'); j >= 0 {
		span, rest = rest[:j], rest[j+1:]
		state := rest
		if k := indexByte(rest, '-'); k >= 0 {
			state = rest[:k]
			var parent [8]byte
			if !parseHex(rest[k+1:], parent[:]) {
				return false
			}
		}
		switch state {
		case "1", "d":
			sc.Decision = Sampled
		case "0":
			sc.Decision = NotSampled
		default:
			return false
		}
	}
	return parseHex(span, sc.SpanID[:]) && sc.Valid()
}

// parseTraceID accepts B3's 64- or 128-bit trace IDs (a 64-bit one fills
// the low half).
func parseTraceID(s string, id *[16]byte) bool {
	switch len(s) {
	case 32:
		return parseHex(s, id[:])
	case 16:
		*id = [16]byte{}
		return parseHex(s, id[8:])
	}
	return false
}

// parseHex decodes exactly len(dst)*2 lowercase or uppercase hex digits.
func parseHex(s string, dst []byte) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	_, err := hex.Decode(dst, []byte(s))
	return err == nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// Inject writes the context of span (a child of parent, whose SpanID may be
// zero for a root) into h in every format: W3C traceparent (and tracestate
// when there is one), B3 multi header, and the b3 single header when the
// request came with one. All identifiers are slices of one string, so a
// request pays a single allocation for them.
func Inject(h *headers.List, span, parent *SpanContext, sampled bool) {
	const tp = len("00-") + 32 + 1 + 16 + len("-01")
	var buf [tp + 16]byte
	copy(buf[:], "00-")
	hex.Encode(buf[3:35], span.TraceID[:])
	buf[35] = '-'
	hex.Encode(buf[36:52], span.SpanID[:])
	copy(buf[52:], "-00")
	if sampled {
		buf[54] = '1'
	}
	n := tp
	hasParent := parent != nil && parent.SpanID != [8]byte{}
	if hasParent {
		hex.Encode(buf[tp:], parent.SpanID[:])
		n += 16
	}
	s := string(buf[:n])
	h.Set(HeaderTraceparent, s[:tp])
	if span.TraceState != "" {
		h.Set(HeaderTracestate, span.TraceState)
	}
	h.Set(HeaderB3TraceID, s[3:35])
	h.Set(HeaderB3SpanID, s[36:52])
	if hasParent {
		h.Set(HeaderB3ParentID, s[tp:n])
	} else {
		h.Del(HeaderB3ParentID)
	}
	if sampled {
		h.Set(HeaderB3Sampled, headerSampledTrue)
	} else {
		h.Set(HeaderB3Sampled, headerSampledFalse)
	}
	h.Del(HeaderB3Flags)
	if span.B3Single {
		state := "-0"
		if sampled {
			state = "-1"
		}
		v := s[3:35] + "-" + s[36:52] + state
		if hasParent {
			v += "-" + s[tp:n]
		}
		h.Set(HeaderB3, v)
	} else {
		h.Del(HeaderB3)
	}
}
