package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/agent"
	"github.com/mast-mesh/mast/internal/proxy/rawsock"
	"github.com/mast-mesh/mast/internal/proxy/xdsclient"
	"github.com/mast-mesh/mast/internal/proxy/xdstest"
	"github.com/mast-mesh/mast/internal/testnet"
)

type staticSecrets struct{ s *agent.Secrets }

func (s staticSecrets) Secrets() *agent.Secrets { return s.s }

// meshSecrets issues SPIFFE certificates under one test root.
func meshSecrets(tb testing.TB, ids ...string) []*agent.Secrets {
	tb.Helper()
	now := time.Now()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rt := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench root"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, rt, rt, &rootKey.PublicKey, rootKey)
	root, _ := x509.ParseCertificate(der)
	var out []*agent.Secrets
	for i, id := range ids {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		u, _ := url.Parse(id)
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), NotBefore: now.Add(-time.Minute),
			NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, URIs: []*url.URL{u},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}, root, &key.PublicKey, rootKey)
		if err != nil {
			tb.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(der)
		s, err := agent.NewSecrets([]*x509.Certificate{leaf}, key, []*x509.Certificate{root}, now)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func sds(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{}}}
}

// istioTLS returns the transport sockets the control plane generates for
// ISTIO_MUTUAL: the client's (cluster) and the server's (filter chain).
func istioTLS(serverID string) (client, server *corev3.TransportSocket) {
	params := &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3}
	validation := func(sans ...*tlsv3.SubjectAltNameMatcher) *tlsv3.CommonTlsContext_CombinedValidationContext {
		return &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sans},
			ValidationContextSdsSecretConfig: sds("ROOTCA"),
		}}
	}
	up := &tlsv3.UpstreamTlsContext{Sni: "outbound_.8080_._.server", CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsParams: params, AlpnProtocols: []string{"istio-peer-exchange", "istio"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("default")},
		ValidationContextType: validation(&tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: serverID}}}),
	}}
	down := &tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsParams: params, AlpnProtocols: []string{"h2", "http/1.1", "istio-peer-exchange", "istio"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("default")},
		ValidationContextType:          validation(),
	}}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: xdstest.Any(up)}},
		&corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: xdstest.Any(down)}}
}

// startTwoHop runs a client sidecar A and a server sidecar B in process:
// bench client -> A (plain HTTP) -> B (mTLS or plaintext) -> backend. It
// returns A's address and the two proxies.
func startTwoHop(tb testing.TB, mtls bool) (string, []*Proxy) {
	return startTwoHopTo(tb, mtls, rawBackend(tb))
}

// startTwoHopTo is startTwoHop with B forwarding to backend.
func startTwoHopTo(tb testing.TB, mtls bool, backend string) (string, []*Proxy) {
	tb.Helper()
	const serverID = "spiffe://cluster.local/ns/default/sa/server"
	secrets := meshSecrets(tb, "spiffe://cluster.local/ns/default/sa/client", serverID)
	addrA, addrB := freeAddr(tb), freeAddr(tb)
	clientTS, serverTS := istioTLS(serverID)
	lB := xdstest.HTTPListener("inB", addrB, "rB")
	cB := xdstest.EDSCluster("toB")
	if mtls {
		lB.FilterChains[0].TransportSocket = serverTS
		cB.TransportSocket = clientTS
	}
	proxies := runTwoHop(tb, addrA, lB, cB, xdstest.EDSCluster("app"), backend, func(i int, c *Config) {
		c.Secrets = staticSecrets{secrets[i]}
	})
	return addrA, proxies
}

// runTwoHop serves and starts the two sidecars of a two-hop benchmark:
// bench client -> A (addrA) -> B (inbound listener lB, route rB) ->
// backend, A reaching B through cluster toB and B the backend through app.
// cfg, when set, adjusts sidecar i's Config (0: A, 1: B). It returns once
// both listen.
func runTwoHop(tb testing.TB, addrA string, lB *listenerv3.Listener, toB, app *clusterv3.Cluster, backend string, cfg func(i int, c *Config)) []*Proxy {
	tb.Helper()
	srv := xdstest.Start(tb, "127.0.0.1:0", nil)
	addrB := listenerAddr(lB)
	nodeA := "sidecar~127.0.0.1~a.default~default.svc.cluster.local"
	nodeB := "sidecar~127.0.0.1~b.default~default.svc.cluster.local"
	srv.Set(tb, nodeA, "1", xdstest.Resources(
		xdstest.HTTPListener("inA", addrA, "rA"),
		xdstest.RouteConfig("rA", []string{"*"}, xdstest.RouteTo("/", toB.GetName())),
		toB, xdstest.CLA(toB.GetName(), addrB),
	))
	srv.Set(tb, nodeB, "1", xdstest.Resources(
		lB,
		xdstest.RouteConfig("rB", []string{"*"}, xdstest.RouteTo("/", app.GetName())),
		app, xdstest.CLA(app.GetName(), backend),
	))
	var proxies []*Proxy
	for i, id := range []string{nodeA, nodeB} {
		node, err := xdsclient.BuildNode(xdsclient.NodeConfig{ID: id})
		if err != nil {
			tb.Fatal(err)
		}
		c := Config{XDSAddress: srv.Addr, Node: node, AdminAddr: "127.0.0.1:0", DrainPeriod: 100 * time.Millisecond}
		if cfg != nil {
			cfg(i, &c)
		}
		p := New(c)
		proxies = append(proxies, p)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { p.Run(ctx); close(done) }()
		tb.Cleanup(func() { cancel(); <-done })
	}
	waitListening(tb, addrA)
	waitListening(tb, addrB)
	return proxies
}

// listenerAddr is a listener's socket address as host:port.
func listenerAddr(l *listenerv3.Listener) string {
	sa := l.GetAddress().GetSocketAddress()
	return net.JoinHostPort(sa.GetAddress(), fmt.Sprint(sa.GetPortValue()))
}

// cpuTime is the process's CPU time (both sidecars, backend and client).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	return testnet.FreeAddr(tb)
}

func waitListening(tb testing.TB, addr string) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s never listened", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// roundTrip sends one keep-alive request on c and reads the 2-byte answer.
func roundTrip(c net.Conn, br *bufio.Reader, req, body []byte) error {
	if _, err := c.Write(req); err != nil {
		return err
	}
	status := true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if status && (len(line) < 12 || string(line[:12]) != "HTTP/1.1 200") {
			return fmt.Errorf("answer %q, want HTTP/1.1 200", bytes.TrimSpace(line))
		}
		status = false
		if len(line) == 2 {
			break
		}
	}
	_, err := io.ReadFull(br, body)
	return err
}

// TestTwoHopMTLS checks the benchmark's topology: requests pass through
// both sidecars with mTLS between them.
func TestTwoHopMTLS(t *testing.T) {
	addr, proxies := startTwoHop(t, true)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	req := []byte("GET /x HTTP/1.1\r\nHost: server\r\n\r\n")
	for i := 0; i < 5; i++ {
		if err := roundTrip(c, br, req, make([]byte, 2)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if n := proxies[1].listeners.TLSStats.Handshakes.Load(); n != 1 {
		t.Fatalf("server sidecar completed %d TLS handshakes, want 1 (one reused connection)", n)
	}
}

// BenchmarkTwoHop measures a request through two sidecars (client -> A ->
// B -> backend) with plaintext or mTLS between A and B, connections reused;
// it reports the median and p99 latency. The plain modes are a GET answered
// with 2 bytes; the -post1k modes are dpbench's shape: a 1 KiB POST body
// echoed back by the backend.
func BenchmarkTwoHop(b *testing.B) {
	for _, mode := range []string{"plaintext", "mtls", "plaintext-post1k", "mtls-post1k"} {
		b.Run(mode, func(b *testing.B) {
			post := strings.HasSuffix(mode, "-post1k")
			backend := rawBackend
			req := []byte("GET /bench HTTP/1.1\r\nHost: server\r\nUser-Agent: b\r\nX-Request-Id: 8a3c4c3e-1d0b-4c4e-9c1f-1f9a1b7d2e11\r\n\r\n")
			body := make([]byte, 2)
			if post {
				backend = echoBackend
				payload := bytes.Repeat([]byte("x"), 1024)
				req = append([]byte("POST /echo HTTP/1.1\r\nHost: server\r\nUser-Agent: b\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n"), payload...)
				body = make([]byte, 1024)
			}
			addr, _ := startTwoHopTo(b, strings.HasPrefix(mode, "mtls"), backend(b))
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			measure(b, func() error { return roundTrip(c, br, req, body) })
		})
	}
}

// echoBackend answers every request with its body (Content-Length framed;
// fortio's /echo as dpbench uses it).
func echoBackend(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c = rawsock.Wrap(c) // its system calls do not wake the runtime (TestServeTwoHop)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				var out, body []byte
				for {
					n := 0
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) == 2 {
							break
						}
						if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("content-length")) {
							n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
						}
					}
					if cap(body) < n {
						body = make([]byte, n)
					}
					body = body[:n]
					if _, err := io.ReadFull(br, body); err != nil {
						return
					}
					out = append(out[:0], "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "...)
					out = strconv.AppendInt(out, int64(n), 10)
					out = append(out, "\r\n\r\n"...)
					out = append(out, body...)
					if _, err := c.Write(out); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestServeTwoHop serves the two-hop topology (plaintext, echo backend) for
// a load generator in another process, as dpbench's fixed rate drives a
// sidecar: the process then idles between requests. It runs only with
// MAST_DP_SERVE set to a file, where it writes A's address; it serves for
// MAST_DP_SERVE_FOR (default 60s). Run it with GOMAXPROCS=1 under taskset
// to pin it as dpbench pins a sidecar, and read the process's CPU and
// context switches from /proc around the load.
func TestServeTwoHop(t *testing.T) {
	out := os.Getenv("MAST_DP_SERVE")
	if out == "" {
		t.Skip("MAST_DP_SERVE not set")
	}
	d, err := time.ParseDuration(os.Getenv("MAST_DP_SERVE_FOR"))
	if err != nil {
		d = time.Minute
	}
	addr, _ := startTwoHopTo(t, os.Getenv("MAST_DP_SERVE_MTLS") != "", echoBackend(t))
	if err := os.WriteFile(out, []byte(addr), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
}
