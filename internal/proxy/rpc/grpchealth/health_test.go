package grpchealth_test

import (
	"context"
	"math/rand/v2"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/proxy/rpc/grpchealth"
	"github.com/mast-mesh/mast/internal/proxy/rpc/rpctest"
)

// TestRequestMatchesGenerated: the request is byte-equal to the generated
// type's (deterministic) encoding.
func TestRequestMatchesGenerated(t *testing.T) {
	for _, svc := range []string{"", "a", "grpc.health.v1.Health", string(make([]byte, 300)), "ünï"} {
		want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&healthpb.HealthCheckRequest{Service: svc})
		if got := grpchealth.EncodeRequest(svc); string(got) != string(want) {
			t.Errorf("EncodeRequest(%q) = %x, generated %x", svc, got, want)
		}
	}
}

// TestResponseMatchesGenerated decodes random responses (statuses, unknown
// fields, the status repeated or of another wire type, truncations) with
// both decoders: same status, and an error exactly when proto.Unmarshal
// fails.
func TestResponseMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		var b []byte
		for range r.IntN(4) {
			switch r.IntN(5) {
			case 0, 1:
				b = protowire.AppendTag(b, 1, protowire.VarintType)
				b = protowire.AppendVarint(b, []uint64{0, 1, 2, 3, 7, 1 << 40, ^uint64(0)}[r.IntN(7)])
			case 2:
				b = protowire.AppendTag(b, 1, protowire.BytesType)
				b = protowire.AppendBytes(b, []byte("x"))
			case 3:
				b = protowire.AppendTag(b, protowire.Number(2+r.IntN(100)), protowire.Fixed32Type)
				b = protowire.AppendFixed32(b, r.Uint32())
			case 4:
				b = append(b, byte(r.IntN(256)))
			}
		}
		if i%7 == 0 && len(b) > 0 {
			b = b[:r.IntN(len(b))]
		}
		var want healthpb.HealthCheckResponse
		werr := proto.Unmarshal(b, &want)
		got, err := grpchealth.DecodeResponse(b)
		if (err != nil) != (werr != nil) {
			t.Fatalf("%x: error %v, generated %v", b, err, werr)
		}
		if err == nil && int32(got) != int32(want.Status) {
			t.Fatalf("%x: status %v, generated %v", b, got, want.Status)
		}
		if err == nil && got.String() != want.Status.String() {
			t.Fatalf("%x: name %q, generated %q", b, got, want.Status.String())
		}
	}
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte{8, 1})
	f.Add([]byte{8, 2, 8, 3})
	f.Add([]byte{0x0a, 1, 'x', 8, 1})
	f.Add([]byte{8})
	f.Add([]byte{0x15, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		var want healthpb.HealthCheckResponse
		werr := proto.Unmarshal(b, &want)
		got, err := grpchealth.DecodeResponse(b)
		if (err != nil) != (werr != nil) || (err == nil && int32(got) != int32(want.Status)) {
			t.Fatalf("%x: %v %v, generated %v %v", b, got, err, want.Status, werr)
		}
	})
}

// TestProbe checks against grpc-go's health server.
func TestProbe(t *testing.T) {
	s := rpctest.Start(t, "127.0.0.1:0", nil)
	if err := grpchealth.Probe(context.Background(), s.Addr, "", "istio-probe/1.0"); err != nil {
		t.Fatalf("SERVING: %v", err)
	}
	err := grpchealth.Probe(context.Background(), s.Addr, "down", "")
	if !grpchealth.IsNotServing(err) || err.Error() != `service "down" is NOT_SERVING` {
		t.Fatalf("NOT_SERVING: %v", err)
	}
	if err := grpchealth.Probe(context.Background(), s.Addr, "nope", ""); err == nil || grpchealth.IsNotServing(err) {
		t.Fatalf("unknown service: %v, want NotFound", err)
	}
	s.Stop()
	if err := grpchealth.Probe(context.Background(), s.Addr, "", ""); err == nil {
		t.Fatal("stopped server: no error")
	}
}
