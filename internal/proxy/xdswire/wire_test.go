package xdswire

import (
	"bytes"
	"math/rand/v2"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// The generated go-control-plane types are the oracle: what this package
// encodes must be what they encode, and what it decodes what they decode.

var det = proto.MarshalOptions{Deterministic: true}

func randString(r *rand.Rand) string {
	words := []string{"", "a", "outbound|9080||reviews.default.svc.cluster.local", "type.googleapis.com/envoy.config.cluster.v3.Cluster", "é", "1", "x~y"}
	return words[r.IntN(len(words))]
}

func randStrings(r *rand.Rand) []string {
	var out []string
	for range r.IntN(4) {
		out = append(out, randString(r))
	}
	return out
}

func randBytes(r *rand.Rand) []byte {
	if r.IntN(4) == 0 {
		return nil
	}
	b := make([]byte, r.IntN(40))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

func randAny(r *rand.Rand) *anypb.Any {
	return &anypb.Any{TypeUrl: randString(r), Value: randBytes(r)}
}

func randNode(r *rand.Rand) (*Node, *corev3.Node) {
	n := &Node{ID: randString(r), Cluster: randString(r), UserAgentName: randString(r), UserAgentVersion: randString(r), ClientFeatures: randStrings(r)}
	g := &corev3.Node{Id: n.ID, Cluster: n.Cluster, UserAgentName: n.UserAgentName, ClientFeatures: n.ClientFeatures}
	if n.UserAgentVersion != "" {
		g.UserAgentVersionType = &corev3.Node_UserAgentVersion{UserAgentVersion: n.UserAgentVersion}
	}
	if r.IntN(2) == 0 {
		n.Locality = Locality{Region: randString(r), Zone: randString(r), SubZone: randString(r)}
		if n.Locality != (Locality{}) {
			g.Locality = &corev3.Locality{Region: n.Locality.Region, Zone: n.Locality.Zone, SubZone: n.Locality.SubZone}
		}
	}
	if r.IntN(3) > 0 {
		md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": randString(r), "LABELS": map[string]any{"app": randString(r), "version": "v1"}, "N": 3.5})
		n.Metadata, g.Metadata = md, md
	}
	return n, g
}

func randStatus(r *rand.Rand) (*Status, *status.Status) {
	if r.IntN(2) == 0 {
		return nil, nil
	}
	codes := []int32{0, 3, 13, -1, 1 << 30}
	s := &Status{Code: codes[r.IntN(len(codes))], Message: randString(r)}
	return s, &status.Status{Code: s.Code, Message: s.Message}
}

// TestRequestMarshalMatchesGenerated: the requests mast-proxy sends are
// byte for byte what the generated types encode (deterministically).
func TestRequestMarshalMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		req := &Request{VersionInfo: randString(r), ResourceNames: randStrings(r), TypeURL: randString(r), ResponseNonce: randString(r)}
		g := &discoveryv3.DiscoveryRequest{VersionInfo: req.VersionInfo, ResourceNames: req.ResourceNames, TypeUrl: req.TypeURL, ResponseNonce: req.ResponseNonce}
		if r.IntN(2) == 0 {
			req.Node, g.Node = randNode(r)
		}
		req.ErrorDetail, g.ErrorDetail = randStatus(r)
		got, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := det.Marshal(g)
		if !bytes.Equal(got, want) {
			t.Fatalf("%d: DiscoveryRequest bytes differ\n got %x\nwant %x\n(%v)", i, got, want, g)
		}
		back, err := DecodeRequest(got)
		if err != nil {
			t.Fatalf("%d: decode: %v", i, err)
		}
		if !proto.Equal(projectRequest(back), stripRequest(g)) {
			t.Fatalf("%d: round trip %+v, want %v", i, back, g)
		}

		dr := &DeltaRequest{TypeURL: randString(r), Subscribe: randStrings(r), Unsubscribe: randStrings(r), ResponseNonce: randString(r)}
		dg := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: dr.TypeURL, ResourceNamesSubscribe: dr.Subscribe, ResourceNamesUnsubscribe: dr.Unsubscribe, ResponseNonce: dr.ResponseNonce}
		if r.IntN(2) == 0 {
			dr.Node, dg.Node = randNode(r)
		}
		if r.IntN(2) == 0 {
			dr.InitialResourceVersions = map[string]string{}
			for range r.IntN(4) {
				dr.InitialResourceVersions[randString(r)] = randString(r)
			}
			dg.InitialResourceVersions = dr.InitialResourceVersions
		}
		dr.ErrorDetail, dg.ErrorDetail = randStatus(r)
		got, err = dr.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		want, _ = det.Marshal(dg)
		if !bytes.Equal(got, want) {
			t.Fatalf("%d: DeltaDiscoveryRequest bytes differ\n got %x\nwant %x\n(%v)", i, got, want, dg)
		}
	}
}

// TestResponseMarshalMatchesGenerated covers what the SDS server sends.
func TestResponseMarshalMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		resp := &Response{VersionInfo: randString(r), TypeURL: randString(r), Nonce: randString(r)}
		for range r.IntN(4) {
			resp.Resources = append(resp.Resources, randAny(r))
		}
		g := &discoveryv3.DiscoveryResponse{VersionInfo: resp.VersionInfo, Resources: resp.Resources, TypeUrl: resp.TypeURL, Nonce: resp.Nonce}
		want, _ := det.Marshal(g)
		if got := resp.Marshal(); !bytes.Equal(got, want) {
			t.Fatalf("%d: DiscoveryResponse bytes differ\n got %x\nwant %x", i, got, want)
		}
	}
}

// randResponse is a generated response with every field set at random,
// the ones the decoder skips included.
func randResponse(r *rand.Rand) *discoveryv3.DiscoveryResponse {
	g := &discoveryv3.DiscoveryResponse{VersionInfo: randString(r), TypeUrl: randString(r), Nonce: randString(r), Canary: r.IntN(2) == 0}
	for range r.IntN(4) {
		g.Resources = append(g.Resources, randAny(r))
	}
	if r.IntN(3) == 0 {
		g.ControlPlane = &corev3.ControlPlane{Identifier: randString(r)}
	}
	if r.IntN(3) == 0 {
		g.ResourceErrors = []*discoveryv3.ResourceError{{ResourceName: &discoveryv3.ResourceName{Name: randString(r)}, ErrorDetail: &status.Status{Code: 5, Message: randString(r)}}}
	}
	return g
}

func randDeltaResponse(r *rand.Rand) *discoveryv3.DeltaDiscoveryResponse {
	g := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: randString(r), TypeUrl: randString(r), Nonce: randString(r), RemovedResources: randStrings(r)}
	for range r.IntN(4) {
		res := &discoveryv3.Resource{Name: randString(r), Aliases: randStrings(r), Version: randString(r)}
		if r.IntN(4) > 0 {
			res.Resource = randAny(r)
		}
		if r.IntN(4) == 0 {
			res.Ttl = durationpb.New(3e9)
			res.CacheControl = &discoveryv3.Resource_CacheControl{DoNotCache: true}
			res.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": {}}}
			res.ResourceName = &discoveryv3.ResourceName{Name: randString(r)}
		}
		g.Resources = append(g.Resources, res)
	}
	if r.IntN(3) == 0 {
		g.ControlPlane = &corev3.ControlPlane{Identifier: randString(r)}
		g.RemovedResourceNames = []*discoveryv3.ResourceName{{Name: randString(r)}}
	}
	return g
}

func randRequest(r *rand.Rand) *discoveryv3.DiscoveryRequest {
	g := &discoveryv3.DiscoveryRequest{VersionInfo: randString(r), ResourceNames: randStrings(r), TypeUrl: randString(r), ResponseNonce: randString(r)}
	if r.IntN(2) == 0 {
		_, g.Node = randNode(r)
	}
	_, g.ErrorDetail = randStatus(r)
	if g.ErrorDetail != nil && r.IntN(3) == 0 {
		g.ErrorDetail.Details = []*anypb.Any{randAny(r)}
	}
	if r.IntN(4) == 0 {
		g.ResourceLocators = []*discoveryv3.ResourceLocator{{Name: randString(r)}}
	}
	return g
}

// project turns the decoders' results into the generated types minus the
// fields they skip, for proto.Equal with the generated decoder's result.
func projectResponse(r *Response) *discoveryv3.DiscoveryResponse {
	return &discoveryv3.DiscoveryResponse{VersionInfo: r.VersionInfo, Resources: r.Resources, TypeUrl: r.TypeURL, Nonce: r.Nonce}
}

func stripResponse(g *discoveryv3.DiscoveryResponse) *discoveryv3.DiscoveryResponse {
	out := &discoveryv3.DiscoveryResponse{VersionInfo: g.VersionInfo, TypeUrl: g.TypeUrl, Nonce: g.Nonce}
	for _, a := range g.Resources {
		out.Resources = append(out.Resources, stripAny(a))
	}
	return out
}

// stripAny drops an Any's unknown fields, which the generated decoder keeps
// and the handler never reads.
func stripAny(a *anypb.Any) *anypb.Any {
	if a == nil {
		return nil
	}
	return &anypb.Any{TypeUrl: a.TypeUrl, Value: a.Value}
}

func projectDelta(r *DeltaResponse) *discoveryv3.DeltaDiscoveryResponse {
	g := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: r.SystemVersionInfo, TypeUrl: r.TypeURL, Nonce: r.Nonce, RemovedResources: r.RemovedResources}
	for _, res := range r.Resources {
		g.Resources = append(g.Resources, &discoveryv3.Resource{Name: res.Name, Aliases: res.Aliases, Version: res.Version, Resource: res.Resource})
	}
	return g
}

func stripDelta(g *discoveryv3.DeltaDiscoveryResponse) *discoveryv3.DeltaDiscoveryResponse {
	out := &discoveryv3.DeltaDiscoveryResponse{SystemVersionInfo: g.SystemVersionInfo, TypeUrl: g.TypeUrl, Nonce: g.Nonce, RemovedResources: g.RemovedResources}
	for _, res := range g.Resources {
		out.Resources = append(out.Resources, &discoveryv3.Resource{Name: res.Name, Aliases: res.Aliases, Version: res.Version, Resource: stripAny(res.Resource)})
	}
	return out
}

func projectRequest(r *Request) *discoveryv3.DiscoveryRequest {
	g := &discoveryv3.DiscoveryRequest{VersionInfo: r.VersionInfo, ResourceNames: r.ResourceNames, TypeUrl: r.TypeURL, ResponseNonce: r.ResponseNonce}
	if r.ErrorDetail != nil {
		g.ErrorDetail = &status.Status{Code: r.ErrorDetail.Code, Message: r.ErrorDetail.Message}
	}
	return g
}

func stripRequest(g *discoveryv3.DiscoveryRequest) *discoveryv3.DiscoveryRequest {
	out := &discoveryv3.DiscoveryRequest{VersionInfo: g.VersionInfo, ResourceNames: g.ResourceNames, TypeUrl: g.TypeUrl, ResponseNonce: g.ResponseNonce}
	if g.ErrorDetail != nil {
		out.ErrorDetail = &status.Status{Code: g.ErrorDetail.Code, Message: g.ErrorDetail.Message}
	}
	return out
}

// compare decodes b with both decoders. Where the generated decoder
// accepts, this one must accept with the same result; where this one
// rejects, the generated must reject too. (This one may accept what the
// generated rejects only for malformed content inside a field it skips,
// since it does not look inside those: canary, control_plane,
// resource_errors, a Resource's ttl/cache_control/metadata/resource_name,
// a request's node and resource_locators, a status's details.)
func compare(t *testing.T, what string, b []byte) {
	t.Helper()
	switch what {
	case "response":
		var g discoveryv3.DiscoveryResponse
		gerr := proto.Unmarshal(b, &g)
		got, err := DecodeResponse(b)
		check(t, what, b, gerr, err, func() bool { return proto.Equal(projectResponse(got), stripResponse(&g)) })
	case "delta":
		var g discoveryv3.DeltaDiscoveryResponse
		gerr := proto.Unmarshal(b, &g)
		got, err := DecodeDeltaResponse(b)
		check(t, what, b, gerr, err, func() bool {
			if !proto.Equal(projectDelta(got), stripDelta(&g)) {
				return false
			}
			for i, res := range got.Resources { // presence of the resource
				if (res.Resource == nil) != (g.Resources[i].Resource == nil) {
					return false
				}
			}
			return true
		})
	case "request":
		var g discoveryv3.DiscoveryRequest
		gerr := proto.Unmarshal(b, &g)
		got, err := DecodeRequest(b)
		check(t, what, b, gerr, err, func() bool {
			return proto.Equal(projectRequest(got), stripRequest(&g)) && (got.ErrorDetail == nil) == (g.ErrorDetail == nil)
		})
	}
}

func check(t *testing.T, what string, b []byte, gerr, err error, equal func() bool) {
	t.Helper()
	switch {
	case gerr == nil && err != nil:
		t.Fatalf("%s %x: generated accepts, this rejects: %v", what, b, err)
	case gerr != nil && err == nil:
		// Allowed only for malformed skipped fields; the random inputs
		// below count these to show it stays rare.
	case gerr == nil && !equal():
		t.Fatalf("%s %x: results differ", what, b)
	}
}

// mergedResources is a delta response whose one resource is written as
// two Resource messages back to back, which the wire merges into one
// (the Any of the second merged into the first's).
func mergedResources(r *rand.Rand) []byte {
	var res []byte
	for range 2 {
		g := randDeltaResponse(r)
		for len(g.Resources) == 0 {
			g = randDeltaResponse(r)
		}
		b, _ := proto.Marshal(g.Resources[0])
		res = append(res, b...)
	}
	out := protowire.AppendTag(nil, deltaRespResources, protowire.BytesType)
	return protowire.AppendBytes(out, res)
}

func encodings(r *rand.Rand, n int) map[string][][]byte {
	out := map[string][][]byte{}
	for range n {
		a, _ := proto.Marshal(randResponse(r))
		out["response"] = append(out["response"], a)
		d, _ := proto.Marshal(randDeltaResponse(r))
		out["delta"] = append(out["delta"], d, mergedResources(r))
		q, _ := proto.Marshal(randRequest(r))
		out["request"] = append(out["request"], q)
	}
	return out
}

// TestDecodeMatchesGenerated: random valid messages with every field set,
// concatenations of two (the wire's merge: last scalar wins, repeated
// fields append, a singular message merges), and each with random byte
// mutations (truncations, flipped bytes, invalid UTF-8, wrong wire types).
func TestDecodeMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	lenient := map[string]int{}
	for what, list := range encodings(r, 1500) {
		for i, b := range list {
			compare(t, what, b)
			compare(t, what, append(append([]byte(nil), b...), list[(i+1)%len(list)]...))
			for range 4 {
				m := mutate(r, b)
				var gerr error
				switch what {
				case "response":
					gerr = proto.Unmarshal(m, &discoveryv3.DiscoveryResponse{})
				case "delta":
					gerr = proto.Unmarshal(m, &discoveryv3.DeltaDiscoveryResponse{})
				default:
					gerr = proto.Unmarshal(m, &discoveryv3.DiscoveryRequest{})
				}
				_, err1 := DecodeResponse(m)
				_, err2 := DecodeDeltaResponse(m)
				_, err3 := DecodeRequest(m)
				if gerr != nil && map[string]error{"response": err1, "delta": err2, "request": err3}[what] == nil {
					lenient[what]++
				}
				compare(t, what, m)
			}
		}
	}
	t.Logf("mutated inputs the generated decoder rejected and this one accepted (malformed skipped fields): %v of %d (delta %d)", lenient, 1500*4, 3000*4)
}

func mutate(r *rand.Rand, b []byte) []byte {
	m := append([]byte(nil), b...)
	if len(m) == 0 {
		return []byte{byte(r.IntN(256))}
	}
	switch r.IntN(4) {
	case 0:
		return m[:r.IntN(len(m))]
	case 1:
		m[r.IntN(len(m))] = 0xff // invalid UTF-8 in a string, or a broken tag or length
	case 2:
		m[r.IntN(len(m))] ^= byte(1 << r.IntN(8))
	default:
		m[r.IntN(len(m))] = byte(r.IntN(256))
	}
	return m
}

// TestDecodeCopiesValues: nothing decoded aliases the message, so a
// resource kept across updates never pins a whole response.
func TestDecodeCopiesValues(t *testing.T) {
	b, _ := proto.Marshal(&discoveryv3.DiscoveryResponse{Resources: []*anypb.Any{{TypeUrl: "t", Value: []byte("value")}}})
	r, err := DecodeResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	db, _ := proto.Marshal(&discoveryv3.DeltaDiscoveryResponse{Resources: []*discoveryv3.Resource{{Name: "n", Resource: &anypb.Any{TypeUrl: "t", Value: []byte("value")}}}})
	d, err := DecodeDeltaResponse(db)
	if err != nil {
		t.Fatal(err)
	}
	clear(b)
	clear(db)
	if string(r.Resources[0].Value) != "value" || string(d.Resources[0].Resource.Value) != "value" || d.Resources[0].Name != "n" {
		t.Errorf("decoded values alias the input: %q, %+v", r.Resources[0].Value, d.Resources[0])
	}
}

func FuzzDecodeResponse(f *testing.F) {
	for _, b := range encodings(rand.New(rand.NewPCG(7, 8)), 40)["response"] {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { compare(t, "response", b) })
}

func FuzzDecodeDeltaResponse(f *testing.F) {
	for _, b := range encodings(rand.New(rand.NewPCG(9, 10)), 40)["delta"] {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { compare(t, "delta", b) })
}

func FuzzDecodeRequest(f *testing.F) {
	for _, b := range encodings(rand.New(rand.NewPCG(11, 12)), 40)["request"] {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { compare(t, "request", b) })
}
