package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoControlPlaneLibraries keeps the sidecar lean: its binary must not
// link Kubernetes client libraries (client-go, apimachinery, api), Consul's
// client, or mastd-only packages; nor Istio's generated CA messages, which
// pull the legacy github.com/golang/protobuf (jsonpb) in (the agent encodes
// its two messages with protowire); nor the generated Envoy packages whose
// resources the proxy decodes itself with protowire (xdsparse's wire
// decoder: EDS, CDS with the outlier error matcher, LDS's listeners, the connection manager and tcp_proxy with their access logs
// and tracers, transport sockets), which would bring their code and
// tables back.
func TestLinksNoControlPlaneLibraries(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list -deps: %v", err)
	}
	forbidden := []string{
		"k8s.io/", "sigs.k8s.io/", "istio.io/client-go", "github.com/hashicorp/consul",
		"github.com/mast-mesh/mast/internal/controlplane", "github.com/mast-mesh/mast/internal/registry",
		"github.com/mast-mesh/mast/internal/config/kubestore", "github.com/mast-mesh/mast/internal/kube",
		"istio.io/api/security/", "github.com/golang/protobuf/",
		"github.com/envoyproxy/go-control-plane/envoy/config/cluster/",
		"github.com/envoyproxy/go-control-plane/envoy/config/endpoint/",
		"github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/",
		"github.com/envoyproxy/go-control-plane/envoy/config/common/matcher/",
		"github.com/envoyproxy/go-control-plane/envoy/config/listener/",
		// The connection manager, tcp_proxy, access logs and tracing (hcmwire.go).
		"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/",
		"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/",
		"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/",
		"github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/",
		"github.com/envoyproxy/go-control-plane/envoy/config/accesslog/",
		"github.com/envoyproxy/go-control-plane/envoy/data/accesslog/",
		"github.com/envoyproxy/go-control-plane/envoy/config/trace/",
		"github.com/envoyproxy/go-control-plane/envoy/type/http/",
		// The RBAC filters (internal/proxy/filter/rbac, pbwire).
		"github.com/envoyproxy/go-control-plane/envoy/config/rbac/",
		"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/",
		"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/",
		"github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/",
		// Listener filters and the transport sockets (tlswire.go; tls/v3
		// also left the agent's SDS and the admin, agent/secretwire.go).
		"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/",
		"github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/",
		// jwt_authn (internal/proxy/filter/jwtauthn).
		"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/",
		// fault (internal/proxy/filter/fault).
		"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/",
		"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/",
		// cors (internal/proxy/filter/cors).
		"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/",
		// adaptive_concurrency (internal/proxy/filter/adaptiveconcurrency).
		"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/adaptive_concurrency/",
		// local_ratelimit, HTTP and network (internal/proxy/filter/localratelimit).
		"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/",
		"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/",
		// ratelimit's ShouldRateLimit call (internal/proxy/filter/ratelimit),
		// and common/ratelimit with it.
		"github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/",
		"github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/",
		// ratelimit's filter config (internal/proxy/filter/ratelimit).
		"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/",
		"github.com/envoyproxy/go-control-plane/envoy/config/ratelimit/",
		// xdswire: the ADS and SDS messages and their gRPC services.
		"github.com/envoyproxy/go-control-plane/envoy/service/discovery/",
		"github.com/envoyproxy/go-control-plane/envoy/service/secret/",
		// ext_authz typed configs, HTTP and network (internal/proxy/filter/extauthz).
		"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/",
		"github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/",
		// The generated route and matcher parsers are test-only references
		// (match/matchgen, rlaction/rlactiongen).
		"github.com/envoyproxy/go-control-plane/envoy/config/route/",
		"github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/",
		"github.com/envoyproxy/go-control-plane/envoy/type/metadata/",
		"github.com/envoyproxy/go-control-plane/envoy/type/tracing/",
		// ext_authz writes and reads the Check call's messages with
		// protowire: no generated Envoy package is left at all.
		"github.com/envoyproxy/go-control-plane/",
		// Spans are mast-proxy's own records, encoded for OTLP with
		// protowire: no OpenTelemetry SDK, exporter or generated OTLP
		// package, nor what the exporter brought (grpc-gateway, errdetails).
		"go.opentelemetry.io/", "github.com/grpc-ecosystem/",
		"google.golang.org/genproto/googleapis/rpc/errdetails", "google.golang.org/genproto/googleapis/api/httpbody",
		// gRPC health probes encode grpc.health.v1 with protowire
		// (internal/proxy/rpc/grpchealth).
		"google.golang.org/grpc/health/",
		// No grpc-go at all: the xDS streams, the CA client, the SDS server,
		// health probes, ext_authz, rate limits, OTLP and the Mixer client run
		// on mast-proxy's own gRPC client and server (internal/proxy/rpc).
		"google.golang.org/grpc",
		// The stats filter's TypedStruct is read with protowire
		// (xdsparse.decodeTypedStruct): no cncf/xds package, nor CEL's and
		// protoc-gen-validate's generated types that came with it.
		"github.com/cncf/xds/", "cel.dev/expr", "github.com/envoyproxy/protoc-gen-validate/",
		"google.golang.org/genproto/googleapis/api/expr/",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages; expected the proxy's whole dependency tree", len(deps))
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("mast-proxy links %s", d)
			}
		}
	}
}

// TestTransportLinksNoEnvoyTypes: the xDS messages (xdswire) and the agent
// (CA client, SDS server) link no generated Envoy package at all, so they
// never bring one back into the proxy.
func TestTransportLinksNoEnvoyTypes(t *testing.T) {
	for _, pkg := range []string{"github.com/mast-mesh/mast/internal/proxy/xdswire", "github.com/mast-mesh/mast/internal/proxy/agent"} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Skipf("go list -deps: %v", err)
		}
		for _, d := range strings.Fields(string(out)) {
			if strings.HasPrefix(d, "github.com/envoyproxy/") {
				t.Errorf("%s links %s", pkg, d)
			}
		}
	}
}

// TestRPCLinksNoGRPC: mast-proxy's own gRPC client and the health check on
// it link neither grpc-go nor a generated protobuf package, so moving a
// caller onto them takes grpc-go out of its dependencies.
func TestRPCLinksNoGRPC(t *testing.T) {
	for _, pkg := range []string{"github.com/mast-mesh/mast/internal/proxy/rpc", "github.com/mast-mesh/mast/internal/proxy/rpc/grpchealth"} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Skipf("go list -deps: %v", err)
		}
		for _, d := range strings.Fields(string(out)) {
			if strings.HasPrefix(d, "google.golang.org/") && !strings.HasPrefix(d, "google.golang.org/protobuf/encoding/protowire") &&
				!strings.HasPrefix(d, "google.golang.org/protobuf/internal/") {
				t.Errorf("%s links %s", pkg, d)
			}
		}
	}
}
