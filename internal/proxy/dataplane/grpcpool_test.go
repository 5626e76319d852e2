package dataplane

import (
	"context"
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/rpc"
	"github.com/mast-mesh/mast/internal/proxy/rpc/rpctest"
)

// TestPoolRPC: the pool's rpc.Conn reaches a grpc-go server over mTLS, is
// shared per target, survives a filter's Close, and fails once the pool
// closed.
func TestPoolRPC(t *testing.T) {
	pki := rpctest.NewPKI(t)
	s := rpctest.Start(t, "127.0.0.1:0", pki.Server)
	if _, err := (&grpcPool{}).rpc(s.Addr); err != errNoIdentity {
		t.Fatalf("pool without identity: %v", err)
	}
	g := &grpcPool{tls: pki.Client}
	c, err := g.rpc(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := c.Invoke(context.Background(), rpctest.Unary, []byte("hi")); err != nil || string(resp) != "hi" {
		t.Fatalf("Invoke: %q, %v", resp, err)
	}
	c.Close()
	c2, _ := g.rpc(s.Addr)
	if resp, err := c2.Invoke(context.Background(), rpctest.Unary, []byte("again")); err != nil || string(resp) != "again" {
		t.Fatalf("Invoke after a filter's Close: %q, %v", resp, err)
	}
	if len(g.rpcs) != 1 {
		t.Fatalf("%d connections for one target", len(g.rpcs))
	}
	g.close()
	if _, err := c2.Invoke(context.Background(), rpctest.Unary, nil); rpc.CodeOf(err) != rpc.Canceled {
		t.Fatalf("Invoke after the pool closed: %v, want Canceled", err)
	}
	if _, err := g.rpc(s.Addr); err == nil {
		t.Fatal("rpc after close: no error")
	}
}
