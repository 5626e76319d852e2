package rpcgrpc_test

import (
	"crypto/tls"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/mast-mesh/mast/internal/proxy/rpc"
	"github.com/mast-mesh/mast/internal/proxy/rpc/rpcgrpc"
	"github.com/mast-mesh/mast/internal/proxy/rpc/rpctest"
)

func dial(t testing.TB, addr string, conf *tls.Config) rpc.Conn {
	creds := insecure.NewCredentials()
	if conf != nil {
		creds = credentials.NewTLS(conf)
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	return rpcgrpc.New(cc)
}

// TestConformance holds the adapter to rpctest's checks against grpc-go
// servers; the same checks hold mast-proxy's own transport.
func TestConformance(t *testing.T) { rpctest.Conformance(t, dial) }
