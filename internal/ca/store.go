package ca

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// State is everything the CA persists: its self-signed roots (none for a
// plug-in CA, whose files the user owns) and the bootstrap token key.
type State struct {
	// Roots are the self-signed roots in order of creation. Two are present
	// only during a rotation.
	Roots []RootState `json:"roots"`
	// TokenKey is the PKCS#8 PEM bootstrap token signing key.
	TokenKey []byte `json:"tokenKey"`
	// TokenBindings bind each bootstrap token used so far (by its SHA-256)
	// to the public key of its first CSR, until the token expires.
	TokenBindings map[string]TokenBinding `json:"tokenBindings,omitempty"`
	// Revoked identities get no certificate, and their certificates prove
	// nothing to the CA or to mastd's xDS server.
	Revoked []Revocation `json:"revoked,omitempty"`
}

// TokenBinding ties a used bootstrap token to the key it was first used with.
type TokenBinding struct {
	// KeySHA256 is the SHA-256 of the first CSR's SubjectPublicKeyInfo, hex.
	KeySHA256 string    `json:"key"`
	Expiry    time.Time `json:"expiry"`
}

// Revocation is one denied identity.
type Revocation struct {
	ID     string    `json:"id"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// RootState is one persisted root and its place in a rotation.
type RootState struct {
	CertPEM []byte `json:"cert"`
	KeyPEM  []byte `json:"key"`
	// ActiveFrom is when the root starts signing leaves.
	ActiveFrom time.Time `json:"activeFrom"`
	// RetireAt, when set, is when the root stops being trusted (and signing).
	RetireAt time.Time `json:"retireAt,omitzero"`
}

// Store persists the CA state. FileStore is the default; a Kubernetes Secret
// store can implement the same two methods.
type Store interface {
	// Load returns the stored state, or ok=false when nothing is stored yet.
	Load() (st State, ok bool, err error)
	// Save replaces the stored state atomically. A store shared by several
	// replicas returns an error wrapping ErrCreatedElsewhere when it had
	// nothing and another replica stored a state first.
	Save(State) error
}

// ErrCreatedElsewhere says that another replica created the shared state
// while this one was creating it: the CA then loads and uses that state, so
// replicas started together end up with one root.
var ErrCreatedElsewhere = errors.New("the CA state was created by another replica first")

// FileStore keeps the state in Dir/ca-state.json (mode 0600) and writes the
// current trust bundle to Dir/root-cert.pem for operators and local tools.
type FileStore struct {
	Dir string
}

var _ Store = FileStore{}

const (
	stateFile  = "ca-state.json"
	bundleFile = "root-cert.pem"
)

// String names the state file, for error messages.
func (f FileStore) String() string { return filepath.Join(f.Dir, stateFile) }

// Load implements Store.
func (f FileStore) Load() (State, bool, error) {
	path := filepath.Join(f.Dir, stateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("ca store: %w", err)
	}
	var st State
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return State{}, false, fmt.Errorf("ca store: %s: %w", path, err)
	}
	return st, true, nil
}

// Save implements Store.
func (f FileStore) Save(st State) error {
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return fmt.Errorf("ca store: %w", err)
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("ca store: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(f.Dir, stateFile), data, 0o600); err != nil {
		return err
	}
	var bundle []byte
	for _, r := range st.Roots {
		bundle = append(bundle, r.CertPEM...)
	}
	return writeFileAtomic(filepath.Join(f.Dir, bundleFile), bundle, 0o644)
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("ca store: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("ca store: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("ca store: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("ca store: sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("ca store: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("ca store: %w", err)
	}
	return nil
}
