package rpc_test

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/rpc"
	"github.com/mast-mesh/mast/internal/proxy/rpc/rpctest"
)

func dial(t testing.TB, addr string, conf *tls.Config) rpc.Conn {
	c, err := rpc.Dial(addr, rpc.Options{TLS: conf, MaxRecvMsgSize: 64 << 20, BackoffBase: 50 * time.Millisecond,
		BackoffMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c
}

// TestConformance holds mast-proxy's own transport to the checks the
// grpc-go adapter passes, against grpc-go servers.
func TestConformance(t *testing.T) { rpctest.Conformance(t, dial) }
