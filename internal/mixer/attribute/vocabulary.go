package attribute

import (
	"sort"

	"github.com/mast-mesh/mast/internal/mixer/api/policypb"
)

// Type is an attribute's value type (istio.policy.v1beta1.ValueType).
type Type = policypb.ValueType

// Vocabulary maps attribute names to their types: Istio's attribute
// manifests (istio-proxy and kubernetes) plus any attributemanifest resources.
type Vocabulary map[string]Type

// DefaultVocabulary returns the attributes Istio 1.4's standard manifests
// declare, as mast-proxy fills them.
func DefaultVocabulary() Vocabulary {
	v := Vocabulary{}
	add := func(t Type, names ...string) {
		for _, n := range names {
			v[n] = t
		}
	}
	S, I, D, B := policypb.ValueType_STRING, policypb.ValueType_INT64, policypb.ValueType_DOUBLE, policypb.ValueType_BOOL
	T, IP, DU, M := policypb.ValueType_TIMESTAMP, policypb.ValueType_IP_ADDRESS, policypb.ValueType_DURATION, policypb.ValueType_STRING_MAP
	_ = D
	for _, side := range []string{"source", "destination"} {
		add(S, side+".uid", side+".name", side+".namespace", side+".principal", side+".owner", side+".user",
			side+".workload.uid", side+".workload.name", side+".workload.namespace", side+".cluster.id")
		add(IP, side+".ip")
		add(I, side+".port")
		add(M, side+".labels")
	}
	add(S, "destination.container.name", "destination.container.image", "destination.service.host",
		"destination.service.uid", "destination.service.name", "destination.service.namespace")
	add(IP, "origin.ip")
	add(S, "origin.uid", "origin.user")
	add(M, "request.headers", "request.query_params", "request.auth.claims", "response.headers")
	add(S, "request.id", "request.path", "request.url_path", "request.host", "request.method", "request.reason",
		"request.referer", "request.scheme", "request.useragent", "request.auth.principal", "request.auth.audiences",
		"request.auth.presenter", "request.auth.raw_claims", "request.api_key")
	add(I, "request.size", "request.total_size", "response.size", "response.total_size", "response.code")
	add(T, "request.time", "response.time", "context.time", "context.timestamp")
	add(DU, "response.duration", "connection.duration")
	add(S, "response.grpc_status", "response.grpc_message")
	add(S, "connection.id", "connection.event", "connection.requested_server_name")
	add(I, "connection.received.bytes", "connection.received.bytes_total", "connection.sent.bytes", "connection.sent.bytes_total")
	add(B, "connection.mtls", "check.cache_hit", "quota.cache_hit", "context.reporter.local")
	add(S, "context.protocol", "context.reporter.kind", "context.reporter.uid", "context.proxy_error_code", "context.proxy_version")
	add(S, "api.service", "api.version", "api.operation", "api.protocol")
	add(I, "check.error_code")
	add(S, "check.error_message")
	return v
}

// Names returns the vocabulary's names, sorted.
func (v Vocabulary) Names() []string {
	out := make([]string, 0, len(v))
	for n := range v {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Clone returns a copy that may be extended.
func (v Vocabulary) Clone() Vocabulary {
	out := make(Vocabulary, len(v))
	for k, t := range v {
		out[k] = t
	}
	return out
}
