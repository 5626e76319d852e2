package ads

import (
	"bytes"
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
