package ca_test

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/mast-mesh/mast/internal/ca"
)

// sharedState is a store several replicas share, with a version that
// every save moves, like a Kubernetes Secret's resourceVersion.
type sharedState struct {
	mu  sync.Mutex
	st  ca.State
	ok  bool
	ver int
}

// replicaView is one replica's handle on the shared state: a save is
// refused with ca.ErrStale when the state moved since this view read it.
type replicaView struct {
	shared *sharedState
	seen   int
}

func (v *replicaView) Load() (ca.State, bool, error) {
	v.shared.mu.Lock()
	defer v.shared.mu.Unlock()
	v.seen = v.shared.ver
	return v.shared.st, v.shared.ok, nil
}

func (v *replicaView) Save(st ca.State) error {
	v.shared.mu.Lock()
	defer v.shared.mu.Unlock()
	if v.shared.ver != v.seen {
		return errors.Join(errors.New("test store: version moved"), ca.ErrStale)
	}
	v.shared.st, v.shared.ok = st, true
	v.shared.ver++
	v.seen = v.shared.ver
	return nil
}

func revokedIDs(c *ca.CA) []string {
	var ids []string
	for _, r := range c.Revoked() {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	return ids
}

// TestReplicasShareState: two replicas over one store. Before, a replica
// never saw another's revocation or rotation until it restarted, and once
// the other had saved, each of its own changes failed (or, on a store
// without versions, overwrote the other's).
func TestReplicasShareState(t *testing.T) {
	shared := &sharedState{}
	a, err := ca.New(ca.Config{Store: &replicaView{shared: shared}, TrustDomain: trustDomain})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ca.New(ca.Config{Store: &replicaView{shared: shared}, TrustDomain: trustDomain})
	if err != nil {
		t.Fatal(err)
	}
	id := func(sa string) spiffeid.ID {
		return spiffeid.RequireFromString("spiffe://" + trustDomain + "/ns/default/sa/" + sa)
	}

	woken := b.RevocationChanged()
	if err := a.Revoke(id("one"), "test"); err != nil {
		t.Fatal(err)
	}
	if changed, err := b.Reload(); err != nil || !changed {
		t.Fatalf("b.Reload after a's revocation: changed=%v err=%v", changed, err)
	}
	select {
	case <-woken:
	default:
		t.Error("b's RevocationChanged not woken by the reloaded revocation (no push of its CRL)")
	}
	if got := revokedIDs(b); !slices.Equal(got, []string{id("one").String()}) {
		t.Errorf("b's revocations after reload: %v", got)
	}
	if changed, err := b.Reload(); err != nil || changed {
		t.Errorf("a second reload with nothing new: changed=%v err=%v", changed, err)
	}

	// a changes the state again; b, not reloaded, makes its own change.
	if err := a.Revoke(id("two"), "test"); err != nil {
		t.Fatal(err)
	}
	if err := b.Revoke(id("three"), "test"); err != nil {
		t.Fatalf("b's revocation after a's unseen one: %v", err)
	}
	want := []string{id("one").String(), id("three").String(), id("two").String()}
	if got := revokedIDs(b); !slices.Equal(got, want) {
		t.Errorf("b's revocations: %v, want %v (a's kept)", got, want)
	}
	if _, err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := revokedIDs(a); !slices.Equal(got, want) {
		t.Errorf("a's revocations after reload: %v, want %v", got, want)
	}

	// A rotation on a; b, not reloaded, must not start a second one.
	if _, err := a.RotateRoot(ca.RotateOptions{Propagation: time.Hour, Overlap: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RotateRoot(ca.RotateOptions{Propagation: time.Hour, Overlap: 2 * time.Hour}); err == nil || !strings.Contains(err.Error(), "in progress") {
		t.Fatalf("b rotating during a's rotation: %v, want a rotation in progress", err)
	}
	ab, bb := a.TrustBundle(), b.TrustBundle()
	if len(ab) != 2 || len(bb) != 2 || !ab[1].Equal(bb[1]) {
		t.Fatalf("trust bundles after a's rotation: a %d roots, b %d roots, want both with a's new root", len(ab), len(bb))
	}
}
