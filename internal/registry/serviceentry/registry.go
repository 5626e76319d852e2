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
	b    Builder
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

// Update rebuilds the snapshot from cfg (only the services a change
// touches, see Builder) and returns it. When cfg holds the very same
// ServiceEntry and WorkloadEntry resources as last time (a change to other
// kinds), the previous snapshot is returned as is, so that registry.Diff and
// caches keyed on it see no change at no cost.
func (r *Registry) Update(cfg *config.Snapshot) *registry.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snap = r.b.Build(cfg, r.opts)
	return r.snap
}
