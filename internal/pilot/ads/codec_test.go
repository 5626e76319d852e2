package ads

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

func codecAny(typeURL string, n int) *anypb.Any {
	return &anypb.Any{TypeUrl: typeURL, Value: bytes.Repeat([]byte{byte(n)}, n)}
}

// TestCodecMatchesProtoMarshal: the codec's buffers are exactly the bytes of
// deterministic proto.Marshal, for responses of small (inlined) and large
// (referenced) resources, and for the cases it hands to the default codec.
func TestCodecMatchesProtoMarshal(t *testing.T) {
	big := strings.Repeat("x", 3000)
	cases := []proto.Message{
		&discoveryv3.DiscoveryResponse{VersionInfo: "v1", TypeUrl: RouteType, Nonce: "7",
			Resources: []*anypb.Any{codecAny(RouteType, 5000), codecAny(RouteType, 10), codecAny(RouteType, 0), codecAny(RouteType, 70000)}},
		&discoveryv3.DiscoveryResponse{VersionInfo: "v1", TypeUrl: EndpointType, Nonce: "8", Canary: true,
			ControlPlane: &corev3.ControlPlane{Identifier: "mastd"}, Resources: []*anypb.Any{{Value: []byte(big)}, {TypeUrl: EndpointType}}},
		&discoveryv3.DiscoveryResponse{VersionInfo: "empty", TypeUrl: ClusterType, Nonce: "9"},
		&discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: "v2", TypeUrl: ClusterType, Nonce: "10",
			Resources: []*discoveryv3.Resource{
				{Name: "a", Version: "ff", Resource: codecAny(ClusterType, 2000)},
				{Name: "b", Version: "1", Resource: codecAny(ClusterType, 3)},
				{Name: "c"},
				{Version: "2", Resource: codecAny(ClusterType, 1500)},
				{Name: "d", Version: "3", Aliases: []string{"x"}, Ttl: durationpb.New(5), Resource: codecAny(ClusterType, 4000)},
			},
			RemovedResources: []string{"gone", "also-gone"}},
		&discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: "v3", TypeUrl: VirtualHostType, Nonce: "11", RemovedResources: []string{"x"}},
	}
	c := Codec()
	for i, m := range cases {
		want, err := deterministic.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Marshal(m)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if b := got.Materialize(); !bytes.Equal(b, want) {
			t.Fatalf("case %d: codec wrote %d bytes that differ from proto.Marshal's %d", i, len(b), len(want))
		}
		back := m.ProtoReflect().New().Interface()
		if err := c.Unmarshal(got, back); err != nil || !proto.Equal(back, m) {
			t.Fatalf("case %d: does not read back: %v", i, err)
		}
	}
}

// TestCodecSharesResourceBytes: a large resource is referenced, not copied,
// which is the point of the codec.
func TestCodecSharesResourceBytes(t *testing.T) {
	a := codecAny(RouteType, 100000)
	got, err := Codec().Marshal(&discoveryv3.DiscoveryResponse{TypeUrl: RouteType, Nonce: "1", Resources: []*anypb.Any{a}})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range got {
		if d := b.ReadOnlyData(); len(d) == len(a.Value) && &d[0] == &a.Value[0] {
			return
		}
	}
	t.Fatal("the resource's bytes were copied")
}

// TestCodecEnvelopesMatchProtoMarshal: the envelopes written field by field
// (sotwEnvelope, deltaEnvelope) give proto.Marshal's bytes for random
// responses with every envelope field set or empty, and a response they do
// not handle (invalid UTF-8, a control plane, removed resource names with
// TTL) is still written exactly, or refused with proto.Marshal's error.
func TestCodecEnvelopesMatchProtoMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 10))
	str := func() string {
		switch rng.IntN(5) {
		case 0:
			return ""
		case 1:
			return "\xff\xfe" // invalid UTF-8
		case 2:
			return strings.Repeat("v", 200)
		}
		return strconv.Itoa(rng.IntN(1000))
	}
	resources := func() []*anypb.Any {
		out := make([]*anypb.Any, 1+rng.IntN(4))
		for i := range out {
			out[i] = codecAny(RouteType, []int{0, 3, 1023, 1024, 5000}[rng.IntN(5)])
		}
		return out
	}
	c := Codec()
	for i := range 2000 {
		var m proto.Message
		if i%2 == 0 {
			r := &discoveryv3.DiscoveryResponse{VersionInfo: str(), TypeUrl: str(), Nonce: str(), Canary: rng.IntN(2) == 0, Resources: resources()}
			if rng.IntN(8) == 0 {
				r.ControlPlane = &corev3.ControlPlane{Identifier: "mastd"}
			}
			m = r
		} else {
			r := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: str(), TypeUrl: str(), Nonce: str()}
			for _, a := range resources() {
				r.Resources = append(r.Resources, &discoveryv3.Resource{Name: strconv.Itoa(rng.IntN(100)), Version: "1", Resource: a})
			}
			for range rng.IntN(3) {
				r.RemovedResources = append(r.RemovedResources, str())
			}
			switch rng.IntN(10) {
			case 0:
				r.ControlPlane = &corev3.ControlPlane{Identifier: "mastd"}
			case 1:
				r.RemovedResourceNames = []*discoveryv3.ResourceName{{Name: "x"}}
			}
			m = r
		}
		want, wantErr := deterministic.Marshal(m)
		got, err := c.Marshal(m)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("message %d: codec error %v, proto.Marshal error %v", i, err, wantErr)
		}
		if err != nil {
			continue
		}
		if b := got.Materialize(); !bytes.Equal(b, want) {
			t.Fatalf("message %d: codec wrote bytes that differ from proto.Marshal's (%v)", i, m)
		}
	}
}

// BenchmarkCodecDeltaResponse: the codec's cost for the usual on-demand
// push, one virtual host of about a kilobyte. The buffers are freed as
// gRPC frees them once written.
func BenchmarkCodecDeltaResponse(b *testing.B) {
	m := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: "2026-12-06T16:40:00Z/42", TypeUrl: VirtualHostType, Nonce: "17",
		Resources: []*discoveryv3.Resource{{Name: "80/reviews.default.svc.cluster.local:80", Version: "1a2b3c4d5e6f7a8b", Resource: codecAny(VirtualHostType, 997)}}}
	c := Codec()
	b.ReportAllocs()
	for b.Loop() {
		out, err := c.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		out.Free()
	}
}
