package xdsparse

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// compareJSON renders m from the wire and with protojson (as /config_dump
// did with the generated types) and compares the two as JSON values.
func compareJSON(t *testing.T, m proto.Message) {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	want, err := protojson.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := ResourceJSON(a.GetTypeUrl(), a.GetValue())
	if !ok {
		t.Fatalf("%s: not in the table", a.GetTypeUrl())
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%v\n%s", err, got)
	}
	json.Unmarshal(want, &w)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("wire:      %s\nprotojson: %s", got, want)
	}
}

// TestResourceJSONMatchesProtojson: /config_dump renders clusters,
// assignments, route configurations and TLS contexts from the wire as protojson did from
// go-control-plane's types (Envoy's config_dump shape).
func TestResourceJSONMatchesProtojson(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 19))
	routes := 0
	for i := range 1000 {
		compareJSON(t, randomCluster(r))
		compareJSON(t, randomAssignment(r))
		// Some carry an Any protojson cannot render (an unknown type, bad bytes).
		if rc := randomRouteConfiguration(r); i%3 == 0 && protojsonOK(rc) {
			compareJSON(t, rc)
			routes++
		}
	}
	if routes < 150 {
		t.Errorf("%d of 334 route configurations compared", routes)
	}
	compareJSON(t, &tlsv3.UpstreamTlsContext{Sni: "outbound_.80_._.reviews", CommonTlsContext: istioCommon("spiffe://cluster.local/ns/default/sa/reviews")})
	// istiod's plaintext transport socket: an empty Any of a type outside
	// the table renders as protojson's {"@type": …} (mast proxy-status
	// compares it with mastd's rendering).
	compareJSON(t, &clusterv3.Cluster{Name: "outbound|9080|v1|details.default.svc.cluster.local", TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{{
		Name: "tlsMode-disabled", TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}}}}}})
	// Listeners, connection managers (with their tracers and loggers) and
	// tcp proxies.
	lr := rand.New(rand.NewPCG(7, 19))
	for range 100 {
		if l := randomListener(lr); protojsonOK(l) {
			compareJSON(t, l)
		}
		if h := randomHCM(lr); protojsonOK(h) {
			compareJSON(t, h)
		}
		if p := randomTCPProxy(lr); protojsonOK(p) {
			compareJSON(t, p)
		}
	}
	compareJSON(t, istioLikeHCM())
	ts := rand.New(rand.NewPCG(9, 19))
	for range 100 {
		if s := randomTransportSocket(ts); protojsonOK(s) {
			compareJSON(t, s)
		}
	}
	compareJSON(t, &tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte("-----BEGIN CERTIFICATE-----")}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "[redacted]"}}}}})
}

// TestTableRendersUnlinkedTypes: every typed config the proxy decodes
// itself (so its generated type is not linked into mast-proxy) is in the
// table, so that /config_dump renders it as JSON rather than base64.
func TestTableRendersUnlinkedTypes(t *testing.T) {
	for _, name := range []string{hcmConfigName, tcpProxyConfigName, "envoy.extensions.filters.http.router.v3.Router",
		"envoy.config.trace.v3.OpenTelemetryConfig", "envoy.config.trace.v3.ZipkinConfig",
		fileAccessLogName, stdoutAccessLogName, stderrAccessLogName,
		"envoy.extensions.filters.listener.original_dst.v3.OriginalDst", "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
		"envoy.extensions.filters.listener.http_inspector.v3.HttpInspector",
		"envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
		"envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer", "envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport",
		"envoy.extensions.transport_sockets.tls.v3.Secret",
	} {
		if findDesc(name) < 0 {
			t.Errorf("%s: not in wire_gen.go's table", name)
		}
	}
}

// FuzzResourceJSON: any bytes render as valid JSON without a crash (the
// Any contents the proxy did not validate are rendered best effort).
func FuzzResourceJSON(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 19))
	for range 8 {
		b, _ := proto.Marshal(randomCluster(r))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, _ := ResourceJSON(ClusterType, b)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %s", out)
		}
	})
}

// protojsonOK reports whether protojson renders m (an Any inside may hold
// an unknown type or bad bytes).
func protojsonOK(m proto.Message) bool {
	_, err := protojson.Marshal(m)
	return err == nil
}
