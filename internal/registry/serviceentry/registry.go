package serviceentry

import (
	"sync"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/registry"
)

// Registry is the ServiceEntry registry as a registry.Registry: Update rebuilds
// its snapshot from a config snapshot. It is safe for concurrent use.
type Registry struct {
	opts Options

	mu   sync.Mutex
	snap *registry.Snapshot
	seen []config.Resource // the ServiceEntries then WorkloadEntries the snapshot was built from
}

var _ registry.Registry = (*Registry)(nil)

// New returns a registry with an empty snapshot.
func New(opts Options) *Registry {
	return &Registry{opts: opts, snap: &registry.Snapshot{Endpoints: map[string][]*registry.Endpoint{}}}
}

// Name is "serviceentry".
func (r *Registry) Name() string { return Name }

// Snapshot returns the current snapshot. It is immutable.
func (r *Registry) Snapshot() *registry.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snap
}

// Update rebuilds the snapshot from cfg and returns it. When cfg holds the very
// same ServiceEntry and WorkloadEntry resources as last time (a change to other
// kinds), the previous snapshot is returned as is, so that registry.Diff and
// caches keyed on it see no change at no cost.
func (r *Registry) Update(cfg *config.Snapshot) *registry.Snapshot {
	ses, wes := cfg.List(config.ServiceEntry), cfg.List(config.WorkloadEntry)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen) == len(ses)+len(wes) && sameResources(r.seen[:len(ses)], ses) && sameResources(r.seen[len(ses):], wes) {
		return r.snap
	}
	r.snap = Build(cfg, r.opts)
	r.seen = append(append(r.seen[:0:0], ses...), wes...)
	return r.snap
}

// sameResources reports whether a and b are the same stored resources. Stored
// resources are immutable, so one spec message means one resource.
func sameResources(a, b []config.Resource) bool {
	for i := range a {
		if a[i].Spec != b[i].Spec || a[i].Key() != b[i].Key() {
			return false
		}
	}
	return true
}
