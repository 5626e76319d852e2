package reporter

import (
	"math/rand"
	"slices"
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/telemetry"
	"github.com/mast-mesh/mast/internal/telemetry/peer"
)

// takeFrom returns the peer r takes from a head carrying p's metadata, as
// a response from p would.
func takeFrom(r *Reporter, p *telemetry.Peer) *telemetry.Peer {
	h := headers.List{{Name: peer.HeaderMetadata, Value: peer.Encode(p)}, {Name: peer.HeaderMetadataID, Value: p.ID}}
	return r.TakePeer(&h, nil)
}

func TestPeerPrincipal(t *testing.T) {
	r := New(Config{TrustDomain: "example.org"})
	server := &telemetry.Peer{Name: "server-0", Namespace: "prod", ServiceAccount: "server", ID: "sidecar~10.0.0.2~server-0.prod~prod.svc.cluster.local"}
	other := &telemetry.Peer{Name: "other-0", Namespace: "dev", ServiceAccount: "other", ID: "sidecar~10.0.0.3~other-0.dev~dev.svc.cluster.local"}
	for i := 0; i < 3; i++ { // the first call builds, the others reuse
		if got, want := r.PeerPrincipal(takeFrom(r, server)), "spiffe://example.org/ns/prod/sa/server"; got != want {
			t.Fatalf("call %d: principal %q, want %q", i, got, want)
		}
		if got, want := r.PeerPrincipal(takeFrom(r, other)), "spiffe://example.org/ns/dev/sa/other"; got != want {
			t.Fatalf("call %d: principal %q, want %q", i, got, want)
		}
	}
	for _, p := range []*telemetry.Peer{nil, {Namespace: "prod"}, {ServiceAccount: "server"}} {
		if got := r.PeerPrincipal(p); got != "" {
			t.Errorf("PeerPrincipal(%+v) = %q, want none", p, got)
		}
	}
}

// TestPeerPrincipalAllocs: a peer the cache holds names its principal
// without building it again (a response from a mesh peer, every request).
func TestPeerPrincipalAllocs(t *testing.T) {
	r := New(Config{})
	p := takeFrom(r, &telemetry.Peer{Namespace: "prod", ServiceAccount: "server"})
	r.PeerPrincipal(p)
	if n := testing.AllocsPerRun(100, func() { r.PeerPrincipal(p) }); n != 0 {
		t.Errorf("PeerPrincipal allocates %.1f times, want 0", n)
	}
}

// TestTakePeerFields: whatever the exchange fields' number and places,
// TakePeer answers with the first of each and removes them all, keeping
// the other fields in order, as List.Get and List.Del would; without the
// metadata field it changes nothing.
func TestTakePeerFields(t *testing.T) {
	r := New(Config{})
	a := &telemetry.Peer{Name: "a-0", Namespace: "ns", ID: "id-a"}
	b := &telemetry.Peer{Name: "b-0", Namespace: "ns", ID: "id-b"}
	md := []headers.Field{{Name: peer.HeaderMetadata, Value: peer.Encode(a)}, {Name: peer.HeaderMetadata, Value: peer.Encode(b)},
		{Name: peer.HeaderMetadataID, Value: "id-a"}, {Name: peer.HeaderMetadataID, Value: "id-b"}}
	other := []headers.Field{{Name: "host", Value: "h"}, {Name: "x-envoy-peer-metadata-idx", Value: "1"}, {Name: "user-agent", Value: "u"}}
	rng := rand.New(rand.NewSource(1))
	var memo peer.Memo
	for it := 0; it < 3000; it++ {
		var h headers.List
		for range rng.Intn(8) {
			if rng.Intn(2) == 0 {
				h = append(h, md[rng.Intn(len(md))])
			} else {
				h = append(h, other[rng.Intn(len(other))])
			}
		}
		want := slices.Clone(h)
		var wantPeer *telemetry.Peer
		if v, ok := want.Get(peer.HeaderMetadata); ok {
			id, _ := want.Get(peer.HeaderMetadataID)
			wantPeer = r.peers.Get(v, id)
			want.Del(peer.HeaderMetadata)
			want.Del(peer.HeaderMetadataID)
		}
		in := slices.Clone(h)
		m := &memo
		if it%2 == 0 {
			m = nil
		}
		got := r.TakePeer(&h, m)
		if got != wantPeer || !slices.Equal(h, want) {
			t.Fatalf("TakePeer(%v) = %v, leaving %v; want %v, leaving %v", in, got, h, wantPeer, want)
		}
	}
}

// TestStripPeerHeaders: every exchange field goes, the other fields stay
// in their order, and a head without exchange fields is left as it is.
func TestStripPeerHeaders(t *testing.T) {
	md, id := headers.Field{Name: peer.HeaderMetadata, Value: "m"}, headers.Field{Name: peer.HeaderMetadataID, Value: "i"}
	a, b := headers.Field{Name: "a", Value: "1"}, headers.Field{Name: "b", Value: "2"}
	for _, c := range []struct{ in, want headers.List }{
		{nil, nil},
		{headers.List{a, b}, headers.List{a, b}},
		{headers.List{md}, headers.List{}},
		{headers.List{id, a}, headers.List{a}},
		{headers.List{a, md, b, id, md}, headers.List{a, b}},
		{headers.List{a, b, id}, headers.List{a, b}},
	} {
		h := slices.Clone(c.in)
		StripPeerHeaders(&h)
		if !slices.Equal(h, c.want) {
			t.Errorf("StripPeerHeaders(%v) = %v, want %v", c.in, h, c.want)
		}
	}
}
