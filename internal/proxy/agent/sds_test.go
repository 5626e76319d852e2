package agent_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/agent"
)

// sdsToken is the token of the TCP SDS servers in these tests.
const sdsToken = "sds-test-token"

// startSDS serves a's secrets on addr ("unix://..." or host:port, then with
// a token file) and returns a go-control-plane SDS client that sends the
// token.
func startSDS(t *testing.T, a *agent.Agent, addr string) secretv3.SecretDiscoveryServiceClient {
	t.Helper()
	return startSDSClient(t, a, addr, sdsToken)
}

func startSDSClient(t *testing.T, a *agent.Agent, addr, clientToken string) secretv3.SecretDiscoveryServiceClient {
	t.Helper()
	tokenFile := ""
	if !strings.HasPrefix(addr, "unix://") {
		tokenFile = filepath.Join(t.TempDir(), "sds-token")
		os.WriteFile(tokenFile, []byte(sdsToken+"\n"), 0o600)
	}
	l, err := agent.ListenSDS(addr, tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { agent.NewSDS(a).Serve(ctx, l, tokenFile); close(done) }()
	target := "passthrough:///" + l.Addr().String()
	if l.Addr().Network() == "unix" {
		target = "unix://" + l.Addr().String()
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if clientToken != "" {
		opts = append(opts, grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, o ...grpc.CallOption) error {
			return inv(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+clientToken), method, req, reply, cc, o...)
		}), grpc.WithStreamInterceptor(func(ctx context.Context, d *grpc.StreamDesc, cc *grpc.ClientConn, method string, st grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
			return st(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+clientToken), d, cc, method, o...)
		}))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); cancel(); <-done })
	return secretv3.NewSecretDiscoveryServiceClient(conn)
}

func decodeSecrets(t *testing.T, res []*anypb.Any) map[string]*tlsv3.Secret {
	t.Helper()
	out := map[string]*tlsv3.Secret{}
	for _, a := range res {
		var s tlsv3.Secret
		if err := a.UnmarshalTo(&s); err != nil {
			t.Fatal(err)
		}
		out[s.GetName()] = &s
	}
	return out
}

func TestSDSStreamServesAndPushesRenewals(t *testing.T) {
	for _, addr := range []string{"unix://" + filepath.Join(t.TempDir(), "sds.sock"), "127.0.0.1:0"} {
		t.Run(addr[:4], func(t *testing.T) {
			s := newCAServer(t)
			id := s.id("default", "reviews")
			cfg := s.agentConfig(id)
			cfg.CertTTL = 2 * time.Second
			a := runAgent(t, cfg)
			client := startSDS(t, a, addr)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			stream, err := client.StreamSecrets(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: agent.SecretType, ResourceNames: []string{agent.WorkloadSecret, agent.RootSecret}}); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			got := decodeSecrets(t, resp.GetResources())
			tc := got[agent.WorkloadSecret].GetTlsCertificate()
			cert, err := tls.X509KeyPair(tc.GetCertificateChain().GetInlineBytes(), tc.GetPrivateKey().GetInlineBytes())
			if err != nil {
				t.Fatalf("the default secret is not a usable key pair: %v", err)
			}
			if cert.Leaf == nil || len(cert.Leaf.URIs) != 1 || cert.Leaf.URIs[0].String() != id.String() {
				t.Fatalf("default secret is for %v, want %s", cert.Leaf.URIs, id)
			}
			roots := got[agent.RootSecret].GetValidationContext().GetTrustedCa().GetInlineBytes()
			if !bytes.Equal(roots, a.Secrets().RootsPEM) || len(roots) == 0 {
				t.Fatal("ROOTCA secret is not the agent's trust bundle")
			}
			// ACK, then expect the renewals to be pushed.
			version := resp.GetVersionInfo()
			for i := 0; i < 2; i++ {
				if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: agent.SecretType, VersionInfo: version,
					ResponseNonce: resp.GetNonce(), ResourceNames: []string{agent.WorkloadSecret, agent.RootSecret}}); err != nil {
					t.Fatal(err)
				}
				if resp, err = stream.Recv(); err != nil {
					t.Fatal(err)
				}
				if resp.GetVersionInfo() == version {
					t.Fatalf("push %d repeats version %s", i, version)
				}
				version = resp.GetVersionInfo()
				next := decodeSecrets(t, resp.GetResources())[agent.WorkloadSecret].GetTlsCertificate()
				if bytes.Equal(next.GetCertificateChain().GetInlineBytes(), tc.GetCertificateChain().GetInlineBytes()) {
					t.Fatal("push carries the old certificate")
				}
				tc = next
			}
		})
	}
}

func TestSDSFetchAndUnknownNames(t *testing.T) {
	s := newCAServer(t)
	a := runAgent(t, s.agentConfig(s.id("default", "ratings")))
	<-a.Ready()
	client := startSDS(t, a, "127.0.0.1:0")
	resp, err := client.FetchSecrets(context.Background(), &discoveryv3.DiscoveryRequest{ResourceNames: []string{agent.RootSecret, "some-credential"}})
	if err != nil {
		t.Fatal(err)
	}
	got := decodeSecrets(t, resp.GetResources())
	if len(got) != 1 || got[agent.RootSecret] == nil {
		t.Fatalf("got secrets %v, want only ROOTCA", got)
	}
	if _, err := client.FetchSecrets(context.Background(), &discoveryv3.DiscoveryRequest{TypeUrl: "type.googleapis.com/envoy.config.cluster.v3.Cluster"}); err == nil {
		t.Fatal("fetch of another type succeeded")
	}
}

// TestSDSRefusesStrangers: SDS hands out the workload's private key. Before,
// --sds-addr 0.0.0.0:PORT or any TCP port served it to anyone who connected.
// Now a TCP address must be loopback and carry a token, and a Unix socket
// is mode 0600.
func TestSDSRefusesStrangers(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(tokenFile, []byte("x\n"), 0o600)
	for _, tc := range []struct{ addr, token string }{
		{"0.0.0.0:0", tokenFile}, {"[::]:0", tokenFile}, {"localhost-ish.example:0", tokenFile}, {"127.0.0.1:0", ""},
	} {
		if l, err := agent.ListenSDS(tc.addr, tc.token); err == nil {
			l.Close()
			t.Errorf("ListenSDS(%q, token %q) accepted", tc.addr, tc.token)
		}
	}
	s := newCAServer(t)
	a := runAgent(t, s.agentConfig(s.id("default", "ratings")))
	<-a.Ready()
	for name, tok := range map[string]string{"no token": "", "wrong token": "guess"} {
		client := startSDSClient(t, a, "127.0.0.1:0", tok)
		_, err := client.FetchSecrets(context.Background(), &discoveryv3.DiscoveryRequest{ResourceNames: []string{agent.WorkloadSecret}})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("TCP fetch with %s: %v, want Unauthenticated", name, err)
		}
		stream, err := client.StreamSecrets(context.Background())
		if err == nil {
			stream.Send(&discoveryv3.DiscoveryRequest{ResourceNames: []string{agent.WorkloadSecret}})
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("TCP stream with %s: %v, want Unauthenticated", name, err)
		}
	}
	sock := filepath.Join(t.TempDir(), "uds", "socket")
	startSDS(t, a, "unix://"+sock)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %v, want 0600", perm)
	}
	if di, _ := os.Stat(filepath.Dir(sock)); di.Mode().Perm() != 0o700 {
		t.Errorf("socket directory mode %v, want 0700", di.Mode().Perm())
	}
}
