package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// The states of an operation, as last_operation reports them.
const (
	stateInProgress = "in progress"
	stateSucceeded  = "succeeded"
	stateFailed     = "failed"
)

// The kinds of operation.
const (
	opProvision   = "provision"
	opUpdate      = "update"
	opDeprovision = "deprovision"
	opBind        = "bind"
	opUnbind      = "unbind"
)

// Operation is the last operation on an instance or binding. It is
// persisted before it has any effect, so an operation in flight when mastd
// stops is found "in progress" at the next start and run again (every
// operation is idempotent: it makes the mesh match the record).
type Operation struct {
	ID               string         `json:"id"`
	Kind             string         `json:"kind"`
	State            string         `json:"state"`
	Description      string         `json:"description,omitempty"`
	Async            bool           `json:"async"`
	Started          time.Time      `json:"started"`
	Update           *pendingUpdate `json:"update,omitempty"`
	InstanceUsable   *bool          `json:"instance_usable,omitempty"`
	UpdateRepeatable *bool          `json:"update_repeatable,omitempty"`
}

// pendingUpdate is the change an update operation applies.
type pendingUpdate struct {
	PlanID             string          `json:"plan_id"`
	Parameters         json.RawMessage `json:"parameters,omitempty"`
	Context            json.RawMessage `json:"context,omitempty"`
	MaintenanceVersion string          `json:"maintenance_version,omitempty"`
}

// Instance is a provisioned (or provisioning) service instance.
type Instance struct {
	ID                 string          `json:"id"`
	ServiceID          string          `json:"service_id"`
	PlanID             string          `json:"plan_id"`
	OrganizationGUID   string          `json:"organization_guid"`
	SpaceGUID          string          `json:"space_guid"`
	Context            json.RawMessage `json:"context,omitempty"`
	Parameters         json.RawMessage `json:"parameters,omitempty"`
	MaintenanceVersion string          `json:"maintenance_version,omitempty"`
	// Namespace of the identities its bindings issue.
	Namespace   string     `json:"namespace"`
	Service     ServiceRef `json:"service"`
	Provisioned bool       `json:"provisioned"`
	Op          *Operation `json:"op"`
}

// Binding is a service binding: a client identity allowed through the
// instance's AuthorizationPolicy, with its credentials.
type Binding struct {
	ID            string          `json:"id"`
	InstanceID    string          `json:"instance_id"`
	ServiceID     string          `json:"service_id"`
	PlanID        string          `json:"plan_id"`
	AppGUID       string          `json:"app_guid,omitempty"`
	Context       json.RawMessage `json:"context,omitempty"`
	BindResource  json.RawMessage `json:"bind_resource,omitempty"`
	Parameters    json.RawMessage `json:"parameters,omitempty"`
	PredecessorID string          `json:"predecessor_id,omitempty"`
	// Principal is the client's SPIFFE ID; Granted says whether the
	// instance's policy lets it through.
	Principal   string        `json:"principal"`
	Granted     bool          `json:"granted"`
	Created     bool          `json:"created"`
	Credentials *credentials  `json:"credentials,omitempty"`
	Endpoints   []endpointObj `json:"endpoints,omitempty"`
	ExpiresAt   time.Time     `json:"expires_at,omitzero"`
	RenewBefore time.Time     `json:"renew_before,omitzero"`
	Op          *Operation    `json:"op"`
}

// IssuedCertificate is one client certificate the broker had the mesh CA
// issue; unbinding marks it revoked (the policy no longer admits it).
type IssuedCertificate struct {
	Serial     string     `json:"serial"`
	Principal  string     `json:"principal"`
	InstanceID string     `json:"instance_id"`
	BindingID  string     `json:"binding_id"`
	IssuedAt   time.Time  `json:"issued_at"`
	NotAfter   time.Time  `json:"not_after"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// state is everything the broker persists.
type state struct {
	// Generation counts policy writes; each written policy carries it, so
	// the broker can tell when the config store has loaded its write.
	Generation   uint64               `json:"generation"`
	Instances    map[string]*Instance `json:"instances"`
	Bindings     map[string]*Binding  `json:"bindings"` // by bindingKey
	Gone         map[string]time.Time `json:"gone"`     // deleted instances ("i/ID") and bindings ("b/IID/BID")
	Certificates []*IssuedCertificate `json:"certificates"`
	// Retired are policies of deprovisioned instances kept, denying every
	// identity of the instance, until its last certificate expires.
	Retired map[string]*Retired `json:"retired"`
}

// Retired is the policy of a deprovisioned instance, kept until Until.
type Retired struct {
	InstanceID string     `json:"instance_id"`
	Service    ServiceRef `json:"service"`
	Until      time.Time  `json:"until"`
}

func newState() *state {
	return &state{Instances: map[string]*Instance{}, Bindings: map[string]*Binding{}, Gone: map[string]time.Time{}, Retired: map[string]*Retired{}}
}

func bindingKey(iid, bid string) string { return iid + "/" + bid }

// goneRetention is how long deleted instances and bindings are remembered,
// so that last_operation answers 410 Gone for them, and expired
// certificates stay listed.
const goneRetention = 24 * time.Hour

// stateFile persists state as one JSON file (mode 0600: it holds the
// bindings' private keys), replaced atomically.
type stateFile struct{ path string }

func (f stateFile) load() (*state, error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("broker state: %w", err)
	}
	st := newState()
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("broker state %s: %w", f.path, err)
	}
	if st.Instances == nil {
		st.Instances = map[string]*Instance{}
	}
	if st.Bindings == nil {
		st.Bindings = map[string]*Binding{}
	}
	if st.Gone == nil {
		st.Gone = map[string]time.Time{}
	}
	if st.Retired == nil {
		st.Retired = map[string]*Retired{}
	}
	return st, nil
}

func (f stateFile) save(st *state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("broker state: %w", err)
	}
	return writeFileAtomic(f.path, data, 0o600)
}

// writeFileAtomic writes data to a hidden temporary file beside path
// (hidden, so the config store never reads it half-written), syncs it and
// renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
