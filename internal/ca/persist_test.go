package ca_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/ca/catest"
)

func TestNewOnSameDirKeepsRootAndTokenKey(t *testing.T) {
	dir := t.TempDir()
	clock := catest.NewClock(time.Now().Truncate(time.Second))
	first, err := ca.New(ca.Config{Dir: dir, TrustDomain: trustDomain, Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	root := first.TrustBundle()
	if len(root) != 1 {
		t.Fatalf("bundle has %d roots, want 1", len(root))
	}
	r := root[0]
	if !r.IsCA || r.NotAfter.Sub(clock.Now()) != ca.DefaultRootTTL || !strings.Contains(r.Subject.CommonName, "Mast Root CA") {
		t.Errorf("root IsCA=%v lifetime=%s CN=%q", r.IsCA, r.NotAfter.Sub(clock.Now()), r.Subject.CommonName)
	}
	tok, err := first.IssueToken(mustID(t, "spiffe://cluster.local/ns/default/sa/reviews"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	st, err := os.Stat(filepath.Join(dir, "ca-state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("ca-state.json mode %v, want 0600", st.Mode().Perm())
	}
	exported, err := os.ReadFile(filepath.Join(dir, "root-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(exported, first.TrustBundlePEM()) {
		t.Error("root-cert.pem differs from TrustBundlePEM")
	}

	second, err := ca.New(ca.Config{Dir: dir, TrustDomain: trustDomain, Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if got := second.TrustBundle(); len(got) != 1 || !got[0].Equal(r) {
		t.Fatal("second New generated a different root")
	}
	// The token key survived too: a token from the first instance is
	// accepted by a server run by the second.
	e := &env{t: t, clock: clock, dir: dir, ca: second}
	e.addr = serve(t, second)
	client := newClient(e)
	id := mustID(t, "spiffe://cluster.local/ns/default/sa/reviews")
	chain, err := e.create(client, tok, catest.CSR{URIs: []string{id.String()}}.Build(t), 0)
	if err != nil {
		t.Fatalf("token from the first instance refused by the second: %v", err)
	}
	e.verifyChain(chain, id)
}

func TestNewRefusesCorruptState(t *testing.T) {
	for _, tc := range []struct {
		name, content, want string
	}{
		{"not json", "{", "ca-state.json"},
		{"unknown field", `{"roots":[],"tokenKey":null,"extra":1}`, "unknown field"},
		{"bad root", `{"roots":[{"cert":"LS0t","key":"LS0t","activeFrom":"2026-01-01T00:00:00Z"}]}`, "ca-state.json: root 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "ca-state.json"), []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ca.New(ca.Config{Dir: dir, TrustDomain: trustDomain})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// racedStore is empty at the first Load, then another replica's state
// appears: the first Save reports ErrCreatedElsewhere, as a shared store
// (a Kubernetes Secret) does when another replica created it first.
type racedStore struct {
	theirs ca.State
	loads  int
	saved  []ca.State
}

func (s *racedStore) Load() (ca.State, bool, error) {
	s.loads++
	if s.loads == 1 {
		return ca.State{}, false, nil
	}
	return s.theirs, true, nil
}

func (s *racedStore) Save(st ca.State) error {
	if s.loads == 1 {
		return fmt.Errorf("create: %w", ca.ErrCreatedElsewhere)
	}
	s.saved = append(s.saved, st)
	return nil
}

// memStore keeps the state in memory.
type memStore struct {
	st ca.State
	ok bool
}

func (m *memStore) Load() (ca.State, bool, error) { return m.st, m.ok, nil }
func (m *memStore) Save(st ca.State) error        { m.st, m.ok = st, true; return nil }

func TestNewUsesStateCreatedByAnotherReplica(t *testing.T) {
	theirs := &memStore{}
	other, err := ca.New(ca.Config{Store: theirs, TrustDomain: trustDomain})
	if err != nil {
		t.Fatal(err)
	}
	raced := &racedStore{theirs: theirs.st}
	mine, err := ca.New(ca.Config{Store: raced, TrustDomain: trustDomain})
	if err != nil {
		t.Fatalf("a replica that lost the race to create the state: %v", err)
	}
	if raced.loads != 2 {
		t.Fatalf("%d loads, want the state read again after the lost race", raced.loads)
	}
	a, b := mine.TrustBundle(), other.TrustBundle()
	if len(a) != 1 || len(b) != 1 || !a[0].Equal(b[0]) {
		t.Fatal("the replica kept its own root instead of the stored one")
	}
}
