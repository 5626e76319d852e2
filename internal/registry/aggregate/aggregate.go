// Package aggregate combines several service registries into one snapshot.
package aggregate

import (
	"cmp"
	"slices"
	"sync"

	"github.com/mast-mesh/mast/internal/registry"
)

// Aggregate is a registry.Registry made of others, in priority order.
//
// A hostname belongs to the first registry that has a service with it: that
// registry's services and endpoints for the hostname are used, and other
// registries' services and endpoints for it are dropped, never mixed (a host's
// endpoints always match the service that describes them). Within one
// registry, services of the same hostname in several namespaces are all kept.
type Aggregate struct {
	regs []registry.Registry

	mu     sync.Mutex
	inputs []*registry.Snapshot // the snapshots last merged, by registry
	merged *registry.Snapshot
}

var _ registry.Registry = (*Aggregate)(nil)

// New returns the aggregate of regs; earlier registries win hostnames.
func New(regs ...registry.Registry) *Aggregate {
	return &Aggregate{regs: slices.Clone(regs)}
}

// Name is "aggregate".
func (a *Aggregate) Name() string { return "aggregate" }

// Snapshot merges the registries' current snapshots. Snapshots are immutable,
// so when every registry returns the same snapshot as last time the previous
// merge is returned, and with one registry its snapshot is returned as is.
func (a *Aggregate) Snapshot() *registry.Snapshot {
	in := make([]*registry.Snapshot, len(a.regs))
	for i, r := range a.regs {
		in[i] = r.Snapshot()
	}
	if len(in) == 1 && in[0] != nil {
		return in[0]
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.merged != nil && slices.Equal(a.inputs, in) {
		return a.merged
	}
	a.inputs, a.merged = in, Merge(in...)
	return a.merged
}

// Merge combines snapshots with the rule Aggregate documents: the first
// snapshot with a service of a hostname owns that hostname. Nil snapshots are
// skipped.
func Merge(snaps ...*registry.Snapshot) *registry.Snapshot {
	n := 0
	for _, s := range snaps {
		if s != nil {
			n += len(s.Services)
		}
	}
	out := &registry.Snapshot{Services: make([]*registry.Service, 0, n), Endpoints: make(map[string][]*registry.Endpoint, n)}
	owner := make(map[string]int, n)
	for i, s := range snaps {
		if s == nil {
			continue
		}
		for _, svc := range s.Services {
			if o, ok := owner[svc.Hostname]; ok && o != i {
				continue
			}
			if _, ok := owner[svc.Hostname]; !ok {
				owner[svc.Hostname] = i
				if eps := s.Endpoints[svc.Hostname]; len(eps) > 0 {
					out.Endpoints[svc.Hostname] = eps
				}
			}
			out.Services = append(out.Services, svc)
		}
	}
	// Each input is sorted; a stable sort keeps a registry's namespace order.
	slices.SortStableFunc(out.Services, func(a, b *registry.Service) int {
		return cmp.Or(cmp.Compare(a.Hostname, b.Hostname), cmp.Compare(a.Namespace, b.Namespace))
	})
	return out
}

// Conflict is a hostname that several registries have: Owner's services and
// endpoints are used, Shadowed's are dropped.
type Conflict struct {
	Hostname string   `json:"hostname"`
	Owner    string   `json:"owner"`
	Shadowed []string `json:"shadowed"`
}

// Conflicts lists the hostnames present in more than one of snaps, by
// hostname, applying Merge's rule; names[i] names snaps[i].
func Conflicts(names []string, snaps ...*registry.Snapshot) []Conflict {
	byHost := map[string]*Conflict{}
	var out []Conflict
	for i, s := range snaps {
		if s == nil {
			continue
		}
		for j, svc := range s.Services {
			if j > 0 && s.Services[j-1].Hostname == svc.Hostname {
				continue // another namespace of the same registry's host
			}
			c, ok := byHost[svc.Hostname]
			if !ok {
				byHost[svc.Hostname] = &Conflict{Hostname: svc.Hostname, Owner: names[i]}
				continue
			}
			c.Shadowed = append(c.Shadowed, names[i])
		}
	}
	for _, c := range byHost {
		if len(c.Shadowed) > 0 {
			out = append(out, *c)
		}
	}
	slices.SortFunc(out, func(a, b Conflict) int { return cmp.Compare(a.Hostname, b.Hostname) })
	return out
}
