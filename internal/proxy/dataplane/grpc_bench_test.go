package dataplane

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"golang.org/x/net/http2"

	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

// h2cBackend serves h with Go's HTTP/2 server over h2c and returns its
// address.
func h2cBackend(tb testing.TB, h http.HandlerFunc) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// grpcBackend is an h2c server answering like a unary gRPC method: one
// length-prefixed message and grpc-status in trailers.
func grpcBackend(tb testing.TB) string {
	return h2cBackend(tb, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("content-type", "application/grpc")
		w.Header().Set("trailer", "grpc-status")
		w.Write([]byte{0, 0, 0, 0, 2, 'o', 'k'})
		w.Header().Set("grpc-status", "0")
	})
}

// startTwoHopH2c runs client sidecar A and server sidecar B with HTTP/2
// (h2c) on every hop: client -> A -> B -> backend; it returns A's address.
func startTwoHopH2c(tb testing.TB, backend string) string {
	tb.Helper()
	addrA, addrB := freeAddr(tb), freeAddr(tb)
	runTwoHop(tb, addrA, xdstest.HTTPListener("inB", addrB, "rB"), h2Cluster("toB"), h2Cluster("app"), backend, nil)
	return addrA
}

// startTwoHopGRPC is startTwoHopH2c with the unary gRPC backend.
func startTwoHopGRPC(tb testing.TB) string { return startTwoHopH2c(tb, grpcBackend(tb)) }

// h2Cluster is an EDS cluster whose upstream speaks HTTP/2 (h2c).
func h2Cluster(name string) *clusterv3.Cluster {
	c := xdstest.EDSCluster(name)
	c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{}
	return c
}

func h2cClient() *http.Client {
	return &http.Client{Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
}

// grpcCall sends a unary-shaped gRPC request (streamed body, no
// content-length) and checks the answer and its trailer.
func grpcCall(c *http.Client, url string, msg []byte) error {
	req, _ := http.NewRequest("POST", url, io.NopCloser(bytes.NewReader(msg)))
	req.ContentLength = 0 // unknown: the body streams
	req.Header.Set("content-type", "application/grpc")
	req.Header.Set("te", "trailers")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || len(b) != 7 || resp.Trailer.Get("grpc-status") != "0" {
		return &unexpected{resp.StatusCode, b, resp.Trailer}
	}
	return nil
}

type unexpected struct {
	status  int
	body    []byte
	trailer http.Header
}

func (u *unexpected) Error() string {
	return "unexpected answer: " + http.StatusText(u.status) + " " + string(u.body) + " trailer " + u.trailer.Get("grpc-status")
}

// TestTwoHopGRPC checks the benchmark's topology: gRPC-shaped calls pass
// both sidecars over HTTP/2 with trailers.
func TestTwoHopGRPC(t *testing.T) {
	addr := startTwoHopGRPC(t)
	c := h2cClient()
	for i := 0; i < 5; i++ {
		if err := grpcCall(c, "http://"+addr+"/pkg.Svc/Method", []byte{0, 0, 0, 0, 1, 'x'}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

// BenchmarkTwoHopGRPC measures a unary gRPC-shaped call through two
// sidecars with HTTP/2 on every hop, connections reused; it reports the
// process's CPU per call (client, both sidecars, backend) and latency.
func BenchmarkTwoHopGRPC(b *testing.B) {
	addr := startTwoHopGRPC(b)
	c := h2cClient()
	url := "http://" + addr + "/pkg.Svc/Method"
	msg := []byte{0, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'}
	measure(b, func() error { return grpcCall(c, url, msg) })
}
