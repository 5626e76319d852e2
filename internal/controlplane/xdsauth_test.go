package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/proxy/agent"
	"github.com/mast-mesh/mast/internal/testnet"
)

const clusterType = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

func freePort(t *testing.T) string {
	t.Helper()
	return testnet.FreeAddr(t)
}

// startMastd runs mastd with its CA and returns the plaintext and TLS xDS
// addresses and the CA directory.
func startMastd(t *testing.T) (plain, secure, caDir, mon string) {
	t.Helper()
	caDir = t.TempDir()
	secure = freePort(t)
	ready := make(chan [2]string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			ConfigDir: t.TempDir(), XDSAddr: "127.0.0.1:0", MonitoringAddr: "127.0.0.1:0",
			CADir: caDir, SecureXDSAddr: secure, Mesh: model.DefaultMeshConfig(),
			DebounceQuiet: 10 * time.Millisecond, DebounceMax: time.Second, MaxConnsPerNode: 2,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready:  func(xds, m net.Addr) { ready <- [2]string{xds.String(), m.String()} },
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	addrs := <-ready
	return addrs[0], secure, caDir, addrs[1]
}

// workloadCreds fetches a certificate for ns/sa from the running CA with a
// bootstrap token, as a proxy's agent does, and returns its credentials.
func workloadCreds(t *testing.T, secure, caDir, ns, sa string) credentials.TransportCredentials {
	t.Helper()
	return credentials.NewTLS(workloadAgent(t, secure, caDir, ns, sa).TLSConfig())
}

// workloadAgent runs an agent for ns/sa against the running CA and returns
// it once it holds its first certificate.
func workloadAgent(t *testing.T, secure, caDir, ns, sa string) *agent.Agent {
	t.Helper()
	c, err := ca.New(ca.Config{Dir: caDir, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := c.WriteTokenFile(tokFile, ns, sa, time.Hour); err != nil {
		t.Fatal(err)
	}
	id, _ := c.WorkloadID(ns, sa)
	a, err := agent.New(agent.Config{CAAddr: secure, RootCertFile: filepath.Join(caDir, "root-cert.pem"), TokenFile: tokFile, ID: id})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go a.Run(ctx)
	t.Cleanup(cancel)
	select {
	case <-a.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("no certificate")
	}
	return a
}

// firstResponse opens an ADS stream as node id in namespace ns with
// service account sa and returns the first response's error, if any.
func firstResponse(t *testing.T, addr string, creds credentials.TransportCredentials, id, ns, sa string) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": ns, "SERVICE_ACCOUNT": sa})
	if err := st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: clusterType, Node: &corev3.Node{Id: id, Metadata: md}}); err != nil {
		return err
	}
	_, err = st.Recv()
	return err
}

// TestXDSBindsNodeToCertificate: on 15012 a proxy must present a workload
// certificate, and its node's namespace and service account must be the
// certificate's. Before, a client without a certificate (or with another
// namespace's) received any node's configuration.
func TestXDSBindsNodeToCertificate(t *testing.T) {
	plain, secure, caDir, mon := startMastd(t)
	reviews := workloadCreds(t, secure, caDir, "default", "reviews")
	node := func(ns string) string { return "sidecar~127.0.1.3~reviews-v1." + ns + "~" + ns + ".svc.cluster.local" }

	if err := firstResponse(t, secure, reviews, node("default"), "default", "reviews"); err != nil {
		t.Fatalf("own identity over mTLS: %v", err)
	}
	for name, tc := range map[string]struct {
		ns, sa string
		want   codes.Code
	}{
		"other namespace":       {"prod", "reviews", codes.PermissionDenied},
		"other service account": {"default", "ratings", codes.PermissionDenied},
	} {
		if err := firstResponse(t, secure, reviews, node(tc.ns), tc.ns, tc.sa); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %s", name, err, tc.want)
		}
	}
	// A TLS client without a certificate.
	c, _ := ca.New(ca.Config{Dir: caDir, TrustDomain: "cluster.local"})
	anon := credentials.NewTLS(mustTLS(t, c))
	if err := firstResponse(t, secure, anon, node("default"), "default", "reviews"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no client certificate: %v, want Unauthenticated", err)
	}
	// The loopback plaintext port still serves (mast up's tools, tests).
	if err := firstResponse(t, plain, insecure.NewCredentials(), node("default"), "default", "reviews"); err != nil {
		t.Errorf("plaintext on loopback: %v", err)
	}
	// A revoked identity's certificate no longer opens a stream.
	tok, _ := os.ReadFile(filepath.Join(caDir, DebugTokenName))
	req, _ := http.NewRequest(http.MethodPost, "http://"+mon+"/debug/ca/revoke?identity=spiffe://cluster.local/ns/default/sa/reviews", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	if err := firstResponse(t, secure, reviews, node("default"), "default", "reviews"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("revoked identity: %v, want Unauthenticated", err)
	}
}

// TestXDSLimitsStreamsPerNode: one node ID may hold only MaxConnsPerNode
// streams; the review opened 3,000 streams on one connection.
func TestXDSLimitsStreamsPerNode(t *testing.T) {
	plain, _, _, _ := startMastd(t)
	conn, err := grpc.NewClient(plain, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	var errs []error
	for i := 0; i < 3; i++ {
		st, err := client.StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: clusterType, Node: &corev3.Node{Id: "sidecar~127.0.1.3~x.default~default.svc.cluster.local"}})
		_, err = st.Recv()
		errs = append(errs, err)
	}
	if errs[0] != nil || errs[1] != nil || status.Code(errs[2]) != codes.ResourceExhausted {
		t.Fatalf("streams for one node with limit 2: %v, want ok, ok, ResourceExhausted", errs)
	}
}

func mustTLS(t *testing.T, c *ca.CA) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	for _, r := range c.TrustBundle() {
		pool.AddCert(r)
	}
	return &tls.Config{RootCAs: pool, ServerName: "istiod.istio-system.svc"}
}
