package rpc_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/mast-mesh/mast/internal/proxy/rpc"
	"github.com/mast-mesh/mast/internal/proxy/rpc/rpcgrpc"
	"github.com/mast-mesh/mast/internal/proxy/rpc/rpctest"
)

// TestServerWithGRPCClient checks rpc.Server against grpc-go's client:
// unary and streaming echo with messages across flow-control windows,
// metadata, a status with a non-ASCII message, an unknown method, and a
// cancellation the handler sees.
func TestServerWithGRPCClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.NewServer()
	cancelled := make(chan error, 1)
	srv.Handle("/t.S/Echo", func(ss *rpc.ServerStream) error {
		for {
			m, err := ss.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if err := ss.Send(m); err != nil {
				return err
			}
		}
		if v, _ := rpc.Lookup(ss.Metadata(), "x-fail-bin"); v != "" {
			return rpc.Errorf(rpc.FailedPrecondition, "%s", v)
		}
		return nil
	})
	srv.Handle("/t.S/Wait", func(ss *rpc.ServerStream) error {
		<-ss.Context().Done()
		cancelled <- ss.Context().Err()
		return ss.Context().Err()
	})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	cc, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c := rpcgrpc.New(cc)
	defer c.Close()

	if resp, err := c.Invoke(context.Background(), "/t.S/Echo", []byte("unary")); err != nil || string(resp) != "unary" {
		t.Fatalf("unary: %q, %v", resp, err)
	}
	_, err = c.Invoke(context.Background(), "/t.S/Echo", []byte("x"), rpc.Header{Name: "x-fail-bin", Value: rpctest.Message})
	if rpc.CodeOf(err) != rpc.FailedPrecondition || rpc.MessageOf(err) != rpctest.Message {
		t.Fatalf("status: %v", err)
	}
	if _, err := c.Invoke(context.Background(), "/t.S/Nope", nil); rpc.CodeOf(err) != rpc.Unimplemented {
		t.Fatalf("unknown method: %v", err)
	}
	st, err := c.NewStream(context.Background(), "/t.S/Echo")
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{0, 3, 70000, 1<<20 + 5, 1}
	go func() {
		for _, n := range sizes {
			st.Send(bytes.Repeat([]byte{byte(n)}, n))
		}
		st.CloseSend()
	}()
	for _, n := range sizes {
		if m, err := st.Recv(); err != nil || !bytes.Equal(m, bytes.Repeat([]byte{byte(n)}, n)) {
			t.Fatalf("stream message of %d bytes: got %d, %v", n, len(m), err)
		}
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	ws, err := c.NewStream(wctx, "/t.S/Wait")
	if err != nil {
		t.Fatal(err)
	}
	ws.Send([]byte("x"))
	cancel()
	if _, err := ws.Recv(); rpc.CodeOf(err) != rpc.Canceled {
		t.Fatalf("cancelled stream: %v", err)
	}
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler saw %v", err)
	}
}
