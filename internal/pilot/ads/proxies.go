package ads

import (
	"slices"
	"strings"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// Proxies returns the connected proxies as their nodes described them, one
// per node ID (a node with several streams is listed once), sorted by ID.
// Callers must not modify the proxies.
func (s *Server) Proxies() []*model.Proxy {
	s.mu.RLock()
	seen := make(map[string]*model.Proxy, len(s.conns))
	for c := range s.conns {
		seen[c.proxy.ID] = c.proxy
	}
	s.mu.RUnlock()
	out := make([]*model.Proxy, 0, len(seen))
	for _, p := range seen {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *model.Proxy) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// PushContext returns the push context of the latest push (nil before the first).
func (s *Server) PushContext() *model.PushContext { return s.current() }
