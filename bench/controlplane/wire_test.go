package controlplane

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/pilot/generate"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// generatedAnys returns a small mesh's resources of typeURL as Anys.
func generatedAnys(t testing.TB, typeURL string) ([]string, []*anypb.Any) {
	t.Helper()
	pc, err := Mesh{Services: 4}.PushContext()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := model.ParseNode(Node(0, 4))
	rs, err := generate.Generate(pc, p, typeURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var anys []*anypb.Any
	for _, r := range rs {
		a, err := anypb.New(r.Resource)
		if err != nil {
			t.Fatal(err)
		}
		names, anys = append(names, r.Name), append(anys, a)
	}
	return names, anys
}

func sampleResponses(t testing.TB) (*discoveryv3.DiscoveryResponse, *discoveryv3.DeltaDiscoveryResponse) {
	names, anys := generatedAnys(t, generate.ClusterType)
	sotw := &discoveryv3.DiscoveryResponse{VersionInfo: "v7", Resources: anys, TypeUrl: generate.ClusterType, Nonce: "n3", Canary: true}
	delta := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: "v8", TypeUrl: generate.ClusterType, Nonce: "n4", RemovedResources: []string{"gone-a", "gone-b"}}
	for i, a := range anys {
		delta.Resources = append(delta.Resources, &discoveryv3.Resource{Name: names[i], Version: "r1", Resource: a, Aliases: []string{"alias"}})
	}
	return sotw, delta
}

// checkSotW compares what parseSotW read with the full decode of b.
func checkSotW(t *testing.T, b []byte, got *response) {
	t.Helper()
	var want discoveryv3.DiscoveryResponse
	if err := proto.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if got.version != want.VersionInfo || got.nonce != want.Nonce || got.typeURL != want.TypeUrl || len(got.values) != len(want.Resources) {
		t.Fatalf("parseSotW: version %q nonce %q type %q %d resources; want %q %q %q %d", got.version, got.nonce, got.typeURL, len(got.values), want.VersionInfo, want.Nonce, want.TypeUrl, len(want.Resources))
	}
	for i, r := range want.Resources {
		if !bytes.Equal(got.values[i], r.Value) {
			t.Errorf("resource %d: value differs", i)
		}
	}
}

func checkDelta(t *testing.T, b []byte, got *response) {
	t.Helper()
	var want discoveryv3.DeltaDiscoveryResponse
	if err := proto.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if got.version != want.SystemVersionInfo || got.nonce != want.Nonce || got.typeURL != want.TypeUrl || len(got.values) != len(want.Resources) || len(got.removed) != len(want.RemovedResources) {
		t.Fatalf("parseDelta: version %q nonce %q type %q %d resources %d removed; want %q %q %q %d %d", got.version, got.nonce, got.typeURL, len(got.values), len(got.removed), want.SystemVersionInfo, want.Nonce, want.TypeUrl, len(want.Resources), len(want.RemovedResources))
	}
	for i, r := range want.Resources {
		if string(got.names[i]) != r.Name || !bytes.Equal(got.values[i], r.GetResource().GetValue()) {
			t.Errorf("resource %d: %q differs from %q", i, got.names[i], r.Name)
		}
	}
	for i, n := range want.RemovedResources {
		if string(got.removed[i]) != n {
			t.Errorf("removed %d: %q, want %q", i, got.removed[i], n)
		}
	}
}

func TestParseResponsesMatchProtoUnmarshal(t *testing.T) {
	sotw, delta := sampleResponses(t)
	var r response
	b, _ := proto.Marshal(sotw)
	if err := parseSotW(b, &r); err != nil {
		t.Fatal(err)
	}
	checkSotW(t, b, &r)
	if len(r.values) < 4 {
		t.Fatalf("only %d clusters", len(r.values))
	}
	b, _ = proto.Marshal(delta)
	if err := parseDelta(b, &r); err != nil {
		t.Fatal(err)
	}
	checkDelta(t, b, &r)
	for _, bad := range [][]byte{{0x0a, 0x05, 'a'}, {0x12, 0x02, 0x12, 0x05}, {0xff}} {
		if parseSotW(bad, &r) == nil || parseDelta(bad, &r) == nil {
			t.Errorf("%x: malformed response accepted", bad)
		}
	}
}

// FuzzParseResponses holds the simulated proxies' scanners to the full
// decode: whatever proto.Unmarshal accepts, they read the same.
func FuzzParseResponses(f *testing.F) {
	sotw, delta := sampleResponses(f)
	b, _ := proto.Marshal(sotw)
	f.Add(b)
	b, _ = proto.Marshal(delta)
	f.Add(b)
	f.Add([]byte{0x0a, 0x01, 'v', 0x2a, 0x01, 'n'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r response
		if proto.Unmarshal(b, &discoveryv3.DiscoveryResponse{}) == nil {
			if err := parseSotW(b, &r); err != nil {
				t.Fatalf("parseSotW: %v", err)
			}
			checkSotW(t, b, &r)
		}
		if proto.Unmarshal(b, &discoveryv3.DeltaDiscoveryResponse{}) == nil {
			if err := parseDelta(b, &r); err != nil {
				t.Fatalf("parseDelta: %v", err)
			}
			checkDelta(t, b, &r)
		}
	})
}

// TestExpectationWaitsForTheMarker feeds one SotW proxy responses by hand: a
// new version without the change's marker is ACKed but does not meet the
// expectation; the response carrying it does. And the ACK names the
// subscription the proxy holds.
func TestExpectationWaitsForTheMarker(t *testing.T) {
	f := &Fleet{cfg: FleetConfig{Clients: 1, Services: 4}, failed: make(chan struct{})}
	c := &client{f: f}
	f.clients = []*client{c}
	in := make(chan []byte)
	acks := make(chan *discoveryv3.DiscoveryRequest, 16)
	done := make(chan error, 1)
	go func() {
		done <- c.runSotW(func(m *outMsg) error {
			b, err := wireCodec{pool: &f.pool}.Marshal(m)
			if err != nil {
				return err
			}
			var req discoveryv3.DiscoveryRequest
			if err := proto.Unmarshal(b.Materialize(), &req); err != nil {
				return err
			}
			acks <- &req
			return nil
		}, func(m *inMsg) error {
			b, ok := <-in
			if !ok {
				return errors.New("closed")
			}
			m.b = append(f.pool.get(len(b))[:0], b...)
			return nil
		})
	}()
	<-acks // CDS and LDS subscriptions
	<-acks
	routes, anys := generatedAnys(t, generate.RouteType)
	if len(routes) == 0 {
		t.Fatal("no routes")
	}
	respond := func(version string) *discoveryv3.DiscoveryRequest {
		b, _ := proto.Marshal(&discoveryv3.DiscoveryResponse{VersionInfo: version, Resources: anys, TypeUrl: generate.RouteType, Nonce: version})
		in <- b
		ack := <-acks
		if ack.VersionInfo != version || ack.ResponseNonce != version {
			t.Fatalf("ACK %q/%q, want %q", ack.VersionInfo, ack.ResponseNonce, version)
		}
		return ack
	}
	respond("v1")
	// The generated routes have RoutingYAML's generation 0; expect generation 5.
	e := f.ExpectMarker(ConfigMarker(5), generate.RouteType)
	respond("v2")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	if _, err := e.Wait(ctx); err == nil {
		t.Fatal("a new version without the change met the expectation")
	}
	cancel()
	// The same routes as generation 5 would have them (the marker spliced in).
	anys = append(anys, &anypb.Any{TypeUrl: generate.RouteType, Value: append([]byte{0x0a, 0x01, 'x'}, ConfigMarker(5)...)})
	respond("v3")
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.Wait(ctx); err != nil {
		t.Fatalf("the response with the change did not meet the expectation: %v", err)
	}
	close(in)
	<-done
}

func TestMarkersDiffer(t *testing.T) {
	if bytes.Equal(ConfigMarker(1), ConfigMarker(2)) || bytes.Equal(ConfigMarker(999), ConfigMarker(1000)) {
		t.Error("config markers of two generations are equal")
	}
	if bytes.Equal(EndpointMarker(true), EndpointMarker(false)) {
		t.Error("endpoint markers equal")
	}
	if bytes.Contains(ConfigMarker(12), ConfigMarker(1)) {
		t.Error("one generation's marker contains another's")
	}
}
