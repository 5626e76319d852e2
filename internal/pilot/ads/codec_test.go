package ads

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
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

// TestPiecedResponsesMatchJoined: a response whose resources' values are
// in pieces (sotwResponse, deltaResponse) is written as the bytes of
// proto.Marshal of the response with the values joined, by the server's
// codec and by gRPC's own (ProtoReflect), and the codec references each
// piece of a kilobyte or more instead of copying it.
func TestPiecedResponsesMatchJoined(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 14))
	split := func(v []byte) [][]byte {
		var out [][]byte
		for len(v) > 0 {
			n := min(len(v), []int{1, 100, 1023, 1024, 3000}[rng.IntN(5)])
			out = append(out, v[:n])
			v = v[n:]
		}
		if len(out) < 2 {
			out = append(out, nil)
		}
		return out
	}
	c := Codec()
	other := encoding.GetCodecV2(grpcproto.Name)
	for i := range 500 {
		var pieced []piecedValue
		var v any
		var want []byte
		var err error
		n := 1 + rng.IntN(4)
		if i%2 == 0 {
			m := &discoveryv3.DiscoveryResponse{VersionInfo: "v1", TypeUrl: RouteType, Nonce: strconv.Itoa(i)}
			full := &discoveryv3.DiscoveryResponse{VersionInfo: "v1", TypeUrl: RouteType, Nonce: strconv.Itoa(i)}
			for k := range n {
				a := codecAny(RouteType, []int{0, 10, 1500, 5000}[rng.IntN(4)]+k)
				full.Resources = append(full.Resources, a)
				if rng.IntN(2) == 0 {
					pieced = append(pieced, piecedValue{k, split(a.Value)})
					a = &anypb.Any{TypeUrl: a.TypeUrl}
				}
				m.Resources = append(m.Resources, a)
			}
			v = &sotwResponse{msg: m, pieced: pieced}
			want, err = deterministic.Marshal(full)
		} else {
			m := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: "v1", TypeUrl: RouteType, Nonce: strconv.Itoa(i), RemovedResources: []string{"gone"}}
			full := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: "v1", TypeUrl: RouteType, Nonce: strconv.Itoa(i), RemovedResources: []string{"gone"}}
			for k := range n {
				a := codecAny(RouteType, []int{0, 10, 1500, 5000}[rng.IntN(4)]+k)
				name := strconv.Itoa(k)
				full.Resources = append(full.Resources, &discoveryv3.Resource{Name: name, Version: "1", Resource: a})
				if rng.IntN(2) == 0 {
					pieced = append(pieced, piecedValue{k, split(a.Value)})
					a = &anypb.Any{TypeUrl: a.TypeUrl}
				}
				m.Resources = append(m.Resources, &discoveryv3.Resource{Name: name, Version: "1", Resource: a})
			}
			v = &deltaResponse{msg: m, pieced: pieced}
			want, err = deterministic.Marshal(full)
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Marshal(v)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if b := got.Materialize(); !bytes.Equal(b, want) {
			t.Fatalf("response %d: codec wrote bytes that differ from proto.Marshal's of the joined response", i)
		}
		for _, p := range pieced {
			for _, piece := range p.pieces {
				if len(piece) < inlineBelow {
					continue
				}
				referenced := false
				for _, b := range got {
					if d := b.ReadOnlyData(); len(d) == len(piece) && &d[0] == &piece[0] {
						referenced = true
					}
				}
				if !referenced {
					t.Fatalf("response %d: a piece of %d bytes was copied", i, len(piece))
				}
			}
		}
		got.Free()
		plain, err := other.Marshal(v)
		if err != nil {
			t.Fatalf("response %d: gRPC's codec: %v", i, err)
		}
		if b := plain.Materialize(); !bytes.Equal(b, want) {
			t.Fatalf("response %d: gRPC's codec wrote other bytes", i)
		}
	}
}

// TestPiecedResponseNotJoined: the codec writes a response with a large
// pieced value without joining it (a copy per proxy of a 480 KB route
// configuration was 480 MB per change at a thousand proxies), and with
// its small pieces copied into a head sized for them from the start (a
// head regrown per response was 2.6 MB per change).
func TestPiecedResponseNotJoined(t *testing.T) {
	value := bytes.Repeat([]byte{7}, 1<<20)
	pieced := []piecedValue{{0, [][]byte{value[:1000], value[1000 : 1<<19], value[1<<19 : 1<<19+900], value[1<<19+900 : 1<<19+1800], value[1<<19+1800:]}}}
	sotw := &sotwResponse{msg: &discoveryv3.DiscoveryResponse{VersionInfo: "v", TypeUrl: RouteType, Nonce: "1", Resources: []*anypb.Any{{TypeUrl: RouteType}}}, pieced: pieced}
	delta := &deltaResponse{msg: &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: "v", TypeUrl: RouteType, Nonce: "1",
		Resources: []*discoveryv3.Resource{{Name: "80", Version: "1", Resource: &anypb.Any{TypeUrl: RouteType}}}}, pieced: pieced}
	c := Codec()
	for _, v := range []any{sotw, delta} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 100 {
			out, err := c.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			out.Free()
		}
		runtime.ReadMemStats(&after)
		if per := (after.TotalAlloc - before.TotalAlloc) / 100; per > 2500 {
			t.Fatalf("%T: %d bytes allocated per response of a %d-byte pieced value", v, per, len(value))
		}
	}
}
