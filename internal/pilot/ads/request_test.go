package ads

import (
	"fmt"
	"slices"
	"testing"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

func requestSeeds(t testing.TB) [][]byte {
	ack := &discoveryv3.DiscoveryRequest{VersionInfo: "v1", TypeUrl: EndpointType, ResponseNonce: "7"}
	for i := range 50 {
		ack.ResourceNames = append(ack.ResourceNames, fmt.Sprintf("outbound|80||svc%d.ns%d.svc.cluster.local", i, i%10))
	}
	meta, _ := structpb.NewStruct(map[string]any{"MAST_VHDS": "true"})
	first := &discoveryv3.DiscoveryRequest{TypeUrl: ClusterType, Node: &corev3.Node{Id: "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local", Cluster: "a", Metadata: meta}}
	nack := &discoveryv3.DiscoveryRequest{VersionInfo: "v0", TypeUrl: RouteType, ResponseNonce: "3", ResourceNames: []string{"80"},
		ErrorDetail: &status.Status{Code: 3, Message: "route \"80\": bad"}}
	locators := &discoveryv3.DiscoveryRequest{TypeUrl: RouteType, ResourceLocators: []*discoveryv3.ResourceLocator{{Name: "80"}}}
	var out [][]byte
	for _, m := range []proto.Message{ack, first, nack, locators, &discoveryv3.DiscoveryRequest{}} {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	// A name that is not UTF-8, a node given twice (merged), an unknown field,
	// a field with another wire type, a truncated message.
	bad := protowire.AppendTag(nil, 3, protowire.BytesType)
	bad = protowire.AppendBytes(bad, []byte{0xff, 'a'})
	twice := append(append([]byte{}, out[1]...), out[1]...)
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 5)
	varint := protowire.AppendVarint(protowire.AppendTag(nil, 4, protowire.VarintType), 5)
	return append(out, bad, twice, append(append([]byte{}, out[0]...), unknown...), varint, out[0][:len(out[0])-3])
}

// checkDecode holds requestDecoder to proto.Unmarshal: same error or none,
// same message.
func checkDecode(t *testing.T, d *requestDecoder, b []byte) {
	t.Helper()
	want := &discoveryv3.DiscoveryRequest{}
	werr := proto.Unmarshal(b, want)
	got := &discoveryv3.DiscoveryRequest{VersionInfo: "stale", ResourceNames: []string{"stale"}}
	gerr := d.decode(b, got)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("decode error %v, proto.Unmarshal error %v", gerr, werr)
	}
	if werr == nil && !proto.Equal(got, want) {
		t.Fatalf("decoded %v, proto.Unmarshal %v", got, want)
	}
}

func TestDecodeRequestMatchesProtoUnmarshal(t *testing.T) {
	d := newRequestDecoder()
	for range 2 { // the second time every name is a hit
		for _, b := range requestSeeds(t) {
			checkDecode(t, d, b)
		}
	}
}

// TestDecodeRequestSharesNames: names decoded twice are the same string,
// and the one the subscription sets hold.
func TestDecodeRequestSharesNames(t *testing.T) {
	d := newRequestDecoder()
	b := requestSeeds(t)[0]
	r1, r2 := &discoveryv3.DiscoveryRequest{}, &discoveryv3.DiscoveryRequest{}
	if err := d.decode(b, r1); err != nil {
		t.Fatal(err)
	}
	if err := d.decode(b, r2); err != nil {
		t.Fatal(err)
	}
	set := newNameSet(r1.ResourceNames)
	for i, n := range r2.ResourceNames {
		if unsafeStringData(n) != unsafeStringData(r1.ResourceNames[i]) {
			t.Fatalf("name %q decoded twice into two strings", n)
		}
		if j, ok := set.index(n); !ok || unsafeStringData(set[j].Value()) != unsafeStringData(n) {
			t.Fatalf("name %q: not the subscription set's string", n)
		}
	}
	if !set.sameAs(r2.ResourceNames) {
		t.Fatal("sameAs: a repeated subscription differs")
	}
	allocs := testing.AllocsPerRun(20, func() { _ = d.decode(b, r2) })
	if allocs > 3 {
		t.Fatalf("decoding a known ACK of %d names allocates %.0f times; want the names shared", len(r2.ResourceNames), allocs)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, b := range requestSeeds(f) {
		f.Add(b)
	}
	d := newRequestDecoder()
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, d, b)
	})
}

func unsafeStringData(s string) *byte { return unsafe.StringData(s) }

// TestCodecDecodesRequestsInParts: a request received in several buffers
// decodes as proto.Unmarshal does, also when its join buffer is reused.
func TestCodecDecodesRequestsInParts(t *testing.T) {
	c := Codec()
	for _, b := range requestSeeds(t) {
		for _, cut := range []int{1, len(b) / 2, len(b) - 1} {
			if cut <= 0 || cut >= len(b) {
				continue
			}
			data := mem.BufferSlice{mem.SliceBuffer(b[:cut]), mem.SliceBuffer(b[cut:])}
			want := &discoveryv3.DiscoveryRequest{}
			werr := proto.Unmarshal(b, want)
			got := &discoveryv3.DiscoveryRequest{}
			gerr := c.Unmarshal(data, got)
			if (werr == nil) != (gerr == nil) || (werr == nil && !proto.Equal(got, want)) {
				t.Fatalf("cut at %d: got %v (%v), want %v (%v)", cut, got, gerr, want, werr)
			}
		}
	}
}

// TestDecodeSotwRepeatedSubscription: an ACK repeating the stream's
// subscription in order is decoded without its names (same, the set itself);
// any other list is decoded name by name. Either way the request is exactly
// proto.Unmarshal's.
func TestDecodeSotwRepeatedSubscription(t *testing.T) {
	d := newRequestDecoder()
	s := New(Config{Generate: func(*model.PushContext, *model.Proxy, string, []string) ([]model.XDSResource, error) { return nil, nil }})
	c := s.newConn(&model.Proxy{ID: "p"}, "sotw")
	subscribed := []string{"outbound|80||a.ns", "outbound|80||b.ns", "outbound|80||c.ns"}
	w := newWatch(EndpointType)
	w.setSotwNames(subscribed)
	c.addWatch(w)
	cds := newWatch(ClusterType)
	cds.setSotwNames(nil) // wildcard
	c.addWatch(cds)

	for _, tc := range []struct {
		name     string
		typeURL  string
		names    []string
		conn     *conn
		wantSame bool
	}{
		{"the subscription, in order", EndpointType, subscribed, c, true},
		{"another order", EndpointType, []string{subscribed[1], subscribed[0], subscribed[2]}, c, false},
		{"fewer", EndpointType, subscribed[:2], c, false},
		{"more", EndpointType, append(slices.Clone(subscribed), "outbound|80||d.ns"), c, false},
		{"a repeated name", EndpointType, append(slices.Clone(subscribed), subscribed[2]), c, false},
		{"with a wildcard", EndpointType, append(slices.Clone(subscribed), "*"), c, false},
		{"none", EndpointType, nil, c, false},
		{"another type", RouteType, subscribed, c, false},
		{"a wildcard type", ClusterType, nil, c, false},
		{"the first request (no connection yet)", EndpointType, subscribed, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := proto.Marshal(&discoveryv3.DiscoveryRequest{VersionInfo: "v1", TypeUrl: tc.typeURL, ResponseNonce: "4", ResourceNames: tc.names})
			if err != nil {
				t.Fatal(err)
			}
			want := &discoveryv3.DiscoveryRequest{}
			if err := proto.Unmarshal(b, want); err != nil {
				t.Fatal(err)
			}
			r := &sotwRequest{DiscoveryRequest: &discoveryv3.DiscoveryRequest{ResourceNames: []string{"stale"}}, conn: tc.conn, same: true}
			if err := d.decodeSotw(b, r); err != nil {
				t.Fatal(err)
			}
			if r.same != tc.wantSame {
				t.Fatalf("same = %v, want %v", r.same, tc.wantSame)
			}
			got := proto.Clone(r.DiscoveryRequest).(*discoveryv3.DiscoveryRequest)
			got.ResourceNames = r.names()
			if !proto.Equal(got, want) {
				t.Fatalf("decoded %v, proto.Unmarshal %v", got, want)
			}
			if r.same && (w.setSotwRequestNames(r) || &r.subscribed[0] != &w.names[0]) {
				t.Fatal("a repeated subscription changed the watch or is not its set")
			}
		})
	}
	// The codec takes the same path, and a request in several buffers too.
	b, _ := proto.Marshal(&discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, ResponseNonce: "5", ResourceNames: subscribed})
	for _, data := range []mem.BufferSlice{{mem.SliceBuffer(b)}, {mem.SliceBuffer(b[:7]), mem.SliceBuffer(b[7:])}} {
		r := &sotwRequest{DiscoveryRequest: &discoveryv3.DiscoveryRequest{}, conn: c}
		if err := Codec().Unmarshal(data, r); err != nil || !r.same || r.ResponseNonce != "5" {
			t.Fatalf("codec: err %v, same %v, nonce %q", err, r.same, r.ResponseNonce)
		}
	}
}

// sotwDecodeConn is a SotW connection subscribed to manyNames clusters
// (a set shared through the server's tables) and to two routes (a set too
// small to share).
func sotwDecodeConn(s *Server, manyNames []string) *conn {
	c := s.newConn(&model.Proxy{ID: "p"}, "sotw")
	for _, sub := range []struct {
		typeURL string
		names   []string
	}{{EndpointType, manyNames}, {RouteType, []string{"80", "8080"}}, {ClusterType, nil}} {
		w := c.newWatch(sub.typeURL)
		w.setSotwNames(sub.names)
		c.addWatch(w)
	}
	return c
}

func manyClusters(n int) []string {
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("outbound|80||svc%03d.ns.svc.cluster.local", i))
	}
	slices.Sort(names)
	return names
}

// checkDecodeSotw holds decodeSotw to proto.Unmarshal, and a request it
// found repeating a subscription to that subscription.
func checkDecodeSotw(t *testing.T, d *requestDecoder, c *conn, b []byte) {
	t.Helper()
	want := &discoveryv3.DiscoveryRequest{}
	werr := proto.Unmarshal(b, want)
	r := &sotwRequest{DiscoveryRequest: &discoveryv3.DiscoveryRequest{VersionInfo: "stale", ResourceNames: []string{"stale"}}, conn: c}
	gerr := d.decodeSotw(b, r)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("decodeSotw error %v, proto.Unmarshal error %v", gerr, werr)
	}
	if werr != nil {
		return
	}
	got := proto.Clone(r.DiscoveryRequest).(*discoveryv3.DiscoveryRequest)
	got.ResourceNames = r.names()
	if len(got.ResourceNames) == 0 {
		got.ResourceNames = nil
	}
	if !proto.Equal(got, want) {
		t.Fatalf("decoded %v, proto.Unmarshal %v", got, want)
	}
	if r.same {
		w := c.watches[r.TypeUrl]
		if w == nil || w.wildcard || len(r.ResourceNames) != 0 || &r.subscribed[0] != &w.names[0] || len(r.subscribed) != len(w.names) {
			t.Fatalf("same, but not %s's subscription", r.TypeUrl)
		}
	}
}

func sotwRequestSeeds(t testing.TB, many []string) [][]byte {
	var out [][]byte
	add := func(m *discoveryv3.DiscoveryRequest) {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	add(&discoveryv3.DiscoveryRequest{VersionInfo: "v1", TypeUrl: EndpointType, ResponseNonce: "7", ResourceNames: many})
	add(&discoveryv3.DiscoveryRequest{VersionInfo: "v1", TypeUrl: RouteType, ResponseNonce: "8", ResourceNames: []string{"80", "8080"}})
	add(&discoveryv3.DiscoveryRequest{VersionInfo: "v1", TypeUrl: RouteType, ResponseNonce: "8", ResourceNames: many})
	add(&discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, ResponseNonce: "7", ResourceNames: many, ErrorDetail: &status.Status{Code: 3, Message: "bad"}})
	add(&discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, ResponseNonce: "7", ResourceNames: many, Node: &corev3.Node{Id: "x"}})
	add(&discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, ResponseNonce: "7", ResourceNames: append(slices.Clone(many), "outbound|80||z.ns")})
	add(&discoveryv3.DiscoveryRequest{TypeUrl: EndpointType, ResponseNonce: "7", ResourceNames: many[1:]})
	add(&discoveryv3.DiscoveryRequest{TypeUrl: ClusterType, ResponseNonce: "1"})
	// The names in two runs, around the type URL: the same list.
	b := out[0]
	split := protowire.AppendString(protowire.AppendTag(nil, 4, protowire.BytesType), EndpointType)
	names := protowire.AppendString(protowire.AppendTag(nil, 3, protowire.BytesType), many[0])
	var rest []byte
	for _, n := range many[1:] {
		rest = protowire.AppendString(protowire.AppendTag(rest, 3, protowire.BytesType), n)
	}
	out = append(out, slices.Concat(names, split, rest))
	// The subscription twice, a truncated one, one with a bad tag after it.
	out = append(out, slices.Concat(b, b), b[:len(b)-40], append(slices.Clone(b), 0xff))
	return out
}

func TestDecodeSotwMatchesProtoUnmarshal(t *testing.T) {
	s := New(Config{Generate: func(*model.PushContext, *model.Proxy, string, []string) ([]model.XDSResource, error) { return nil, nil }})
	many := manyClusters(40)
	c := sotwDecodeConn(s, many)
	d := newRequestDecoder()
	seeds := sotwRequestSeeds(t, many)
	for _, b := range append(seeds, requestSeeds(t)...) {
		checkDecodeSotw(t, d, c, b)
	}
	// The plain ACK of either subscription is found repeating it.
	for _, b := range seeds[:2] {
		r := &sotwRequest{DiscoveryRequest: &discoveryv3.DiscoveryRequest{}, conn: c}
		if err := d.decodeSotw(b, r); err != nil || !r.same {
			t.Fatalf("decode: %v, same %v", err, r.same)
		}
	}
	// A second connection with the same subscription shares its wire form.
	c2 := sotwDecodeConn(s, many)
	if w1, w2 := c.watches[EndpointType].wire, c2.watches[EndpointType].wire; len(w1) == 0 || &w1[0] != &w2[0] {
		t.Fatal("two connections with one subscription hold two wire forms")
	}
	allocs := testing.AllocsPerRun(20, func() {
		r := sotwRequest{DiscoveryRequest: &discoveryv3.DiscoveryRequest{}, conn: c}
		_ = d.decodeSotw(seeds[0], &r)
	})
	if allocs > 3 {
		t.Fatalf("decoding a repeated subscription allocates %.0f times", allocs)
	}
}

func FuzzDecodeSotw(f *testing.F) {
	many := manyClusters(20)
	for _, b := range sotwRequestSeeds(f, many) {
		f.Add(b)
	}
	for _, b := range requestSeeds(f) {
		f.Add(b)
	}
	s := New(Config{Generate: func(*model.PushContext, *model.Proxy, string, []string) ([]model.XDSResource, error) { return nil, nil }})
	c := sotwDecodeConn(s, many)
	d := newRequestDecoder()
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecodeSotw(t, d, c, b)
	})
}
