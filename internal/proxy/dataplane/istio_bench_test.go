package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/xdsclient"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/proxy/xdstest"
	"github.com/mast-mesh/mast/internal/proxy/xdswire"
	"github.com/mast-mesh/mast/internal/telemetry/peer"
	"github.com/mast-mesh/mast/internal/telemetry/reporter"
)

// The Istio-shaped two-hop topology: the names and settings dpbench's real
// sidecars get from mastd (bench/dataplane, configs.go), so that the
// in-process benchmark also counts what that configuration costs.
const (
	istioHost    = "server.default.svc.cluster.local"
	istioOut     = "outbound|8080||" + istioHost
	istioIn      = "inbound|8080||"
	istioClient  = "sidecar~127.0.0.1~client-0.default~default.svc.cluster.local"
	istioServer  = "sidecar~127.0.0.1~server-0.default~default.svc.cluster.local"
	istioSAName  = "server"
	istioCliName = "client"
)

// istioHCM is the connection manager Istio gives a sidecar's HTTP
// listeners: fault, CORS and router filters, normalize_path, websocket
// upgrades; inbound ones forward client certificate details.
func istioHCM(inbound bool, rds string, rc *routev3.RouteConfiguration) *hcmv3.HttpConnectionManager {
	h := xdstest.HCM(rds)
	h.StatPrefix = "outbound_0.0.0.0_8080"
	h.HttpFilters = append(h.HttpFilters[:1:1], &hcmv3.HttpFilter{Name: "envoy.filters.http.cors",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: xdstest.Any(&corsv3.Cors{})}}, h.HttpFilters[1])
	h.UseRemoteAddress = wrapperspb.Bool(false)
	h.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}}
	if inbound {
		h.StatPrefix = istioIn
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}
		h.ForwardClientCertDetails = hcmv3.HttpConnectionManager_APPEND_FORWARD
		h.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{
			Subject: wrapperspb.Bool(true), Dns: true, Uri: true}
	}
	return h
}

// istioOutboundRoutes is the client sidecar's route configuration for the
// service: Istio's domains and default retry policy.
func istioOutboundRoutes(name string) *routev3.RouteConfiguration {
	r := xdstest.RouteTo("/", istioOut)
	a := r.GetRoute()
	a.Timeout = durationpb.New(0)
	a.RetryPolicy = &routev3.RetryPolicy{RetryOn: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
		NumRetries: wrapperspb.UInt32(2), HostSelectionRetryMaxAttempts: 5, RetriableStatusCodes: []uint32{503},
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts"}}}
	r.Name = "default"
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{
		Name:    istioHost + ":8080",
		Domains: []string{istioHost + ":8080", "server.default.svc:8080", "server.default:8080", "server:8080", istioHost, "server"},
		Routes:  []*routev3.Route{r},
	}}}
}

// istioNodeFor is a sidecar's node as istio-agent describes it (what the
// metadata exchange and the metric labels are built from).
func istioNodeFor(tb testing.TB, id, name, sa string) *xdswire.Node {
	tb.Helper()
	node, err := xdsclient.BuildNode(xdsclient.NodeConfig{ID: id, Name: name + "-0", Namespace: "default",
		Labels: map[string]string{"app": name, "version": "v1"},
		Meta:   map[string]string{"SERVICE_ACCOUNT": sa, "WORKLOAD_NAME": name, "CLUSTER_ID": "Kubernetes", "INTERCEPTION_MODE": "NONE"}})
	if err != nil {
		tb.Fatal(err)
	}
	return node
}

// runProxy runs a proxy until the benchmark ends.
func runProxy(tb testing.TB, c Config) {
	p := New(c)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	tb.Cleanup(func() { cancel(); <-done })
}

// startIstioTwoHop runs the two sidecars of BenchmarkTwoHopIstio and
// returns the client sidecar's address and the sidecars' reporters
// (client, server).
func startIstioTwoHop(tb testing.TB, backend string) (string, []*reporter.Reporter) {
	tb.Helper()
	addrA, addrB := freeAddr(tb), freeAddr(tb)
	rc := xdstest.RouteConfig("inbound|8080||", []string{"*"}, xdstest.RouteTo("/", istioIn))
	lB := xdstest.ListenerWith("virtualInbound", addrB, istioHCM(true, "", rc))
	lB.TrafficDirection = corev3.TrafficDirection_INBOUND
	lA := xdstest.ListenerWith("0.0.0.0_8080", addrA, istioHCM(false, "8080", nil))
	lA.TrafficDirection = corev3.TrafficDirection_OUTBOUND
	srv := xdstest.Start(tb, "127.0.0.1:0", nil)
	toB, app := xdstest.EDSCluster(istioOut), xdstest.EDSCluster(istioIn)
	srv.Set(tb, istioClient, "1", xdstest.Resources(lA, istioOutboundRoutes("8080"), toB, xdstest.CLA(istioOut, addrB)))
	srv.Set(tb, istioServer, "1", xdstest.Resources(lB, app, xdstest.CLA(istioIn, backend)))
	var reps []*reporter.Reporter
	for _, s := range []struct {
		id, name, sa string
	}{{istioClient, istioCliName, istioCliName}, {istioServer, istioSAName, istioSAName}} {
		c := Config{XDSAddress: srv.Addr, AdminAddr: "127.0.0.1:0", DrainPeriod: 100 * time.Millisecond}
		c.Node = istioNodeFor(tb, s.id, s.name, s.sa)
		c.Telemetry = reporter.New(reporter.Config{Local: peer.FromNode(s.id, c.Node.Metadata), TrustDomain: "cluster.local"})
		reps = append(reps, c.Telemetry)
		runProxy(tb, c)
	}
	waitListening(tb, addrA)
	waitListening(tb, addrB)
	waitEndpointsAcked(tb, srv, 2)
	return addrA, reps
}

// waitEndpointsAcked waits until n proxies have ACKed version "1" of their
// endpoints. A listener listens once its routes are in, which can be
// before its cluster's endpoints: a first request then got a 503.
func waitEndpointsAcked(tb testing.TB, srv *xdstest.Server, n int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	acked := 0
	if srv.WaitRequest(ctx, func(r *discoveryv3.DiscoveryRequest) bool {
		if r.GetTypeUrl() == xdsparse.EndpointType && r.GetVersionInfo() == "1" && r.GetErrorDetail() == nil {
			acked++
		}
		return acked == n
	}) == nil {
		tb.Fatalf("%d of %d proxies ACKed their endpoints", acked, n)
	}
}

// TestTwoHopIstio checks the benchmark's topology: requests pass both
// sidecars, which exchange peer metadata and record Istio's request
// metric with each other's workload as the peer.
func TestTwoHopIstio(t *testing.T) {
	addr, reps := startIstioTwoHop(t, echoBackend(t))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	req := []byte("POST /echo HTTP/1.1\r\nHost: " + istioHost + ":8080\r\nContent-Length: 2\r\n\r\nhi")
	for i := 0; i < 3; i++ {
		if err := roundTrip(c, br, req, make([]byte, 2)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	// Without mTLS the server side cannot know the client's principal
	// (Istio's "unknown"); the client side names its own.
	peers := func(srcPrincipal string) string {
		return `source_workload="client",source_canonical_service="client",source_canonical_revision="v1",source_workload_namespace="default",` +
			`source_principal="` + srcPrincipal + `",source_app="client",source_version="v1",source_cluster="Kubernetes",` +
			`destination_workload="server",destination_workload_namespace="default",destination_principal="spiffe://cluster.local/ns/default/sa/server",`
	}
	// A sidecar records a request once its stream ends, which can be
	// after the client has read the response: wait for the third (a
	// guard, not a timing assertion).
	requests := func(i int) string {
		var b strings.Builder
		if err := reps[i].WritePrometheus(&b); err != nil {
			t.Fatal(err)
		}
		line := ""
		for l := range strings.Lines(b.String()) {
			if strings.HasPrefix(l, "istio_requests_total{") {
				line = l
			}
		}
		return line
	}
	for i, want := range []string{`{reporter="source",` + peers("spiffe://cluster.local/ns/default/sa/client"), `{reporter="destination",` + peers("unknown")} {
		line := requests(i)
		for deadline := time.Now().Add(10 * time.Second); !strings.HasSuffix(line, "} 3\n") && time.Now().Before(deadline); line = requests(i) {
			time.Sleep(5 * time.Millisecond)
		}
		if !strings.Contains(line, want) || !strings.HasSuffix(line, "} 3\n") {
			t.Errorf("sidecar %d: istio_requests_total is %q, want labels %s and 3 requests", i, line, want)
		}
	}
}

// BenchmarkTwoHopIstio is BenchmarkTwoHop/plaintext-post1k with the
// configuration dpbench's real sidecars run (Istio's, from mastd): both
// sidecars report Istio's standard metrics and exchange peer metadata,
// the outbound route has Istio's retry policy, both connection managers
// run the fault and CORS filters, the inbound one forwards client
// certificate details. The client sends the same request every time (as
// fortio does); the second hop's request differs in its x-request-id.
func BenchmarkTwoHopIstio(b *testing.B) {
	benchTwoHopIstio(b, istioRequest(""), nil)
}

// BenchmarkTwoHopIstioRequestID is BenchmarkTwoHopIstio with a request
// whose x-request-id differs every time (an application that propagates
// one): neither hop's request head is the last one again.
func BenchmarkTwoHopIstioRequestID(b *testing.B) {
	const id = "X-Request-Id: 3c1d6f0e-8a2b-4c5d-9e7f-000000000000\r\n"
	req := istioRequest(id)
	end := bytes.Index(req, []byte(id)) + len(id) - len("\r\n")
	benchTwoHopIstio(b, req, func(i int) { setHex(req[end-12:end], uint64(i)) })
}

// istioRequest is the benchmarks' request: fortio's head with extra
// field lines, and a 1 KiB body.
func istioRequest(extra string) []byte {
	return append([]byte("POST /echo HTTP/1.1\r\nHost: "+istioHost+":8080\r\nUser-Agent: fortio.org/fortio-1.69.1\r\n"+extra+
		"Content-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n"), bytes.Repeat([]byte("x"), 1024)...)
}

// setHex writes n's low nibbles into b in lower-case hex, the last nibble last.
func setHex(b []byte, n uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = "0123456789abcdef"[n&15]
		n >>= 4
	}
}

// benchTwoHopIstio sends req through startIstioTwoHop's sidecars b.N
// times, calling vary(i) (when not nil) before request i.
func benchTwoHopIstio(b *testing.B, req []byte, vary func(i int)) {
	addr, _ := startIstioTwoHop(b, echoBackend(b))
	body := make([]byte, 1024)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	n := 0
	send := func() error {
		if vary != nil {
			vary(n)
		}
		n++
		return roundTrip(c, br, req, body)
	}
	for i := 0; i < 200; i++ { // warm the pools and the peer caches
		if err := send(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if err := send(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
}
