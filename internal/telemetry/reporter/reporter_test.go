package reporter

import (
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
