package agent_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"path/filepath"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/agent"
)

// startSDS serves a's secrets on addr ("unix://..." or host:port) and
// returns a go-control-plane SDS client.
func startSDS(t *testing.T, a *agent.Agent, addr string) secretv3.SecretDiscoveryServiceClient {
	t.Helper()
	l, err := agent.ListenSDS(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { agent.NewSDS(a).Serve(ctx, l); close(done) }()
	target := "passthrough:///" + l.Addr().String()
	if l.Addr().Network() == "unix" {
		target = "unix://" + l.Addr().String()
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
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
