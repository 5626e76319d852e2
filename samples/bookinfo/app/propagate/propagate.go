// Package propagate copies the tracing, identity and session headers that the
// Bookinfo services forward from an incoming request to their outgoing calls,
// the list Istio's Bookinfo sample keeps in sync across its services.
package propagate

import "net/http"

// headers lists, in canonical form, the request headers every Bookinfo service
// forwards to the services it calls. It is a superset of the lists kept by
// Istio's productpage and reviews: request id, B3 (multi and single header),
// W3C trace context, Lightstep, Datadog, Cloud Trace, gRPC binary trace,
// SkyWalking, and the application headers end-user, user-agent, cookie,
// authorization and jwt.
var headers = [...]string{
	"X-Request-Id",
	"X-B3-Traceid",
	"X-B3-Spanid",
	"X-B3-Parentspanid",
	"X-B3-Sampled",
	"X-B3-Flags",
	"B3",
	"Traceparent",
	"Tracestate",
	"X-Ot-Span-Context",
	"X-Datadog-Trace-Id",
	"X-Datadog-Parent-Id",
	"X-Datadog-Sampling-Priority",
	"X-Datadog-Origin",
	"X-Datadog-Tags",
	"X-Cloud-Trace-Context",
	"Grpc-Trace-Bin",
	"Sw8",
	"End-User",
	"User-Agent",
	"Cookie",
	"Authorization",
	"Jwt",
}

// Names returns the forwarded header names in canonical form (a fresh slice).
func Names() []string {
	out := make([]string, len(headers))
	copy(out, headers[:])
	return out
}

// Copy sets on dst every forwarded header (see Names) that src carries. Values are shared,
// not copied: callers must not modify either header afterwards in place.
// A header absent from src is left untouched in dst.
func Copy(dst, src http.Header) {
	for _, k := range &headers {
		if v, ok := src[k]; ok && len(v) > 0 {
			dst[k] = v
		}
	}
}
