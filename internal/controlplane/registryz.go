package controlplane

import (
	"encoding/json"
	"net/http"

	"github.com/mast-mesh/mast/internal/registry"
	"github.com/mast-mesh/mast/internal/registry/aggregate"
)

// Registryz is what /debug/registryz serves: each registry's state and the
// hostnames several registries have, with the one that owns each.
type Registryz struct {
	Registries []registry.Status    `json:"registries"`
	Conflicts  []aggregate.Conflict `json:"conflicts"`
}

// registryz reports the registries: the ServiceEntry registry (always
// synced: it is the config store's) and every watcher, in priority order.
func (p *pipeline) registryz() Registryz {
	p.mu.Lock()
	se := p.se
	p.mu.Unlock()
	out := Registryz{Conflicts: []aggregate.Conflict{}}
	seStatus := registry.Status{Name: "serviceentry", Source: "config", Synced: se != nil}
	if se != nil {
		seStatus.Services, seStatus.Endpoints = len(se.Services), countEndpoints(se)
	}
	out.Registries = append(out.Registries, seStatus)
	names, snaps := []string{"serviceentry"}, []*registry.Snapshot{se}
	for _, w := range p.watchers {
		out.Registries = append(out.Registries, w.Status())
		names, snaps = append(names, w.Name()), append(snaps, w.Snapshot())
	}
	if c := aggregate.Conflicts(names, snaps...); c != nil {
		out.Conflicts = c
	}
	return out
}

func countEndpoints(s *registry.Snapshot) int {
	n := 0
	for _, eps := range s.Endpoints {
		n += len(eps)
	}
	return n
}

// registryzHandler serves Registryz as JSON.
func registryzHandler(p *pipeline) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(p.registryz())
	})
}
