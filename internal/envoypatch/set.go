package envoypatch

import (
	networking "istio.io/api/networking/v1alpha3"
)

// Set is the ordered patches that apply to one proxy (EnvoyFilters
// already selected by namespace, workloadSelector or targetRefs, and by
// match.proxy), grouped by applyTo.
type Set struct {
	by map[networking.EnvoyFilter_ApplyTo][]*Patch
	n  int
}

// NewSet groups patches, keeping their order within each applyTo.
func NewSet(patches []*Patch) *Set {
	s := &Set{by: map[networking.EnvoyFilter_ApplyTo][]*Patch{}, n: len(patches)}
	for _, p := range patches {
		s.by[p.ApplyTo] = append(s.by[p.ApplyTo], p)
	}
	return s
}

// Len is the number of patches in s.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Has reports whether s holds a patch of any of the applyTo kinds.
func (s *Set) Has(kinds ...networking.EnvoyFilter_ApplyTo) bool {
	if s == nil {
		return false
	}
	for _, k := range kinds {
		if len(s.by[k]) > 0 {
			return true
		}
	}
	return false
}

// Patches returns the patches of the applyTo kinds, in order.
func (s *Set) Patches(kinds ...networking.EnvoyFilter_ApplyTo) []*Patch {
	var out []*Patch
	for _, k := range kinds {
		out = append(out, s.by[k]...)
	}
	return out
}

// ProxyMatches reports whether p's match.proxy selects a proxy of the
// given Istio version (node metadata ISTIO_VERSION; "" for unknown, which
// Istio matches as the highest version) and metadata.
func (p *Patch) ProxyMatches(version string, meta map[string]string) bool {
	if p.Match.GetWaypoint() != nil {
		return false // waypoints only; Mast has none
	}
	if p.proxyVersion != nil {
		if version == "" {
			version = "65536.65536.65536"
		}
		if !p.proxyVersion.MatchString(version) {
			return false
		}
	}
	for k, v := range p.Match.GetProxy().GetMetadata() {
		if meta[k] != v {
			return false
		}
	}
	return true
}

// Record notes which patches took effect and which failed while applying.
type Record struct {
	Applied map[*Patch]bool
	Failed  map[*Patch]error
}

// NewRecord returns an empty record.
func NewRecord() *Record {
	return &Record{Applied: map[*Patch]bool{}, Failed: map[*Patch]error{}}
}

func (r *Record) hit(p *Patch) { r.Applied[p] = true }

func (r *Record) fail(p *Patch, err error) {
	if _, ok := r.Failed[p]; !ok {
		r.Failed[p] = err
	}
}

// ctxMatch reports whether p applies in patch context pctx.
func ctxMatch(pctx networking.EnvoyFilter_PatchContext, p *Patch) bool {
	c := p.Match.GetContext()
	return c == networking.EnvoyFilter_ANY || c == pctx
}

// The patch contexts.
const (
	Any             = networking.EnvoyFilter_ANY
	SidecarInbound  = networking.EnvoyFilter_SIDECAR_INBOUND
	SidecarOutbound = networking.EnvoyFilter_SIDECAR_OUTBOUND
	Gateway         = networking.EnvoyFilter_GATEWAY
)

// insertAt returns list with v inserted at i.
func insertAt[T any](list []T, i int, v T) []T {
	list = append(list, v)
	copy(list[i+1:], list[i:])
	list[i] = v
	return list
}

// insertRelative inserts a clone of v before (after=false) or after each
// element for which match is true, as Istio's insertBeforeFunc and
// insertAfterFunc do (after the first match only: Istio stops there).
func insertRelative[T any](list []T, match func(T) bool, v func() T, after bool) ([]T, bool) {
	for i, e := range list {
		if !match(e) {
			continue
		}
		if after {
			return insertAt(list, i+1, v()), true
		}
		return insertAt(list, i, v()), true
	}
	return list, false
}

// replaceFirst replaces the first element for which match is true.
func replaceFirst[T any](list []T, match func(T) bool, v func() T) ([]T, bool) {
	for i, e := range list {
		if match(e) {
			list[i] = v()
			return list, true
		}
	}
	return list, false
}

// removeAll drops every element for which match is true.
func removeAll[T any](list []T, match func(T) bool) ([]T, bool) {
	out := list[:0]
	removed := false
	for _, e := range list {
		if match(e) {
			removed = true
			continue
		}
		out = append(out, e)
	}
	clear(list[len(out):])
	return out, removed
}
