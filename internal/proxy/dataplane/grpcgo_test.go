package dataplane

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// rawCodec passes messages as they are (*[]byte).
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: marshal %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "raw" }

// TestTwoHopGRPCGoClientOneConnection: grpc-go's client, which pings once
// per response it reads (its BDP estimator), makes 3,000 unary calls over
// one connection through both sidecars without losing it. h2server's
// control-frame bucket (1,000 PINGs, 100 more a second) cut it after about
// 1,000 calls ("Unavailable: error reading from server: EOF").
func TestTwoHopGRPCGoClientOneConnection(t *testing.T) {
	addr := startTwoHopGRPC(t)
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, resp := []byte("x"), []byte(nil)
	// The proxies listen before their routes arrive: wait for a first call.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := conn.Invoke(ctx, "/pkg.Svc/Method", &req, &resp)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no call went through in 20 s: %v", err)
		}
	}
	for i := 0; i < 3000; i++ {
		if err := conn.Invoke(ctx, "/pkg.Svc/Method", &req, &resp); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if string(resp) != "ok" {
			t.Fatalf("call %d: answer %q", i, resp)
		}
	}
}
