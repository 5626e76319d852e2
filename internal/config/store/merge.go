// Package store holds configuration stores: File, the watched directory that is
// Mast's embedded default (Galley), and Memory, for tests and `mast apply`.
//
// Both keep the resources of each file (or named source) apart and merge them
// into one immutable config.Snapshot. When two files define the same key the
// first file in lexical path order wins and the conflict is reported.
package store

import (
	"cmp"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/config"
)

// Conflict is one key defined by more than one file. The first file in
// lexical path order (then document order) wins.
type Conflict struct {
	Key     string   `json:"key"`
	Winner  string   `json:"winner"`  // file whose resource is in force
	Ignored []string `json:"ignored"` // files whose definitions are ignored, in path order
}

// merged is the result of merging the per-file resources.
type merged struct {
	snap      *config.Snapshot
	provided  map[string][]config.Key // file -> keys it provides (winner of), sorted
	conflicts []Conflict              // sorted by key
}

// merge combines the resources of each file. A key defined twice, in two files
// or twice in one file, is kept from its first definition in path order.
func merge(files map[string][]config.Resource) merged {
	paths := slices.Sorted(maps.Keys(files))
	n := 0
	for _, p := range paths {
		n += len(files[p])
	}
	all := make([]config.Resource, 0, n)
	owner := make(map[config.Key]string, n)
	var conflicts map[config.Key]*Conflict
	provided := make(map[string][]config.Key, len(files))
	for _, p := range paths {
		for _, r := range files[p] {
			k := r.Key()
			if w, dup := owner[k]; dup {
				if conflicts == nil {
					conflicts = map[config.Key]*Conflict{}
				}
				c := conflicts[k]
				if c == nil {
					c = &Conflict{Key: k.String(), Winner: w}
					conflicts[k] = c
				}
				c.Ignored = append(c.Ignored, p)
				continue
			}
			owner[k] = p
			all = append(all, r)
			provided[p] = append(provided[p], k)
		}
	}
	for _, keys := range provided {
		slices.SortFunc(keys, compareKeys)
	}
	out := merged{snap: config.NewSnapshot(all), provided: provided}
	for _, c := range conflicts {
		out.conflicts = append(out.conflicts, *c)
	}
	slices.SortFunc(out.conflicts, func(a, b Conflict) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

func compareKeys(a, b config.Key) int {
	return cmp.Or(
		cmp.Compare(a.Kind.Group, b.Kind.Group),
		cmp.Compare(a.Kind.Kind, b.Kind.Kind),
		cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.Name, b.Name),
	)
}

// snapshotsEqual reports whether two snapshots hold the same resources:
// same keys, metadata (including source position) and specs.
func snapshotsEqual(a, b *config.Snapshot) bool {
	if a == b {
		return true
	}
	if a.Len() != b.Len() {
		return false
	}
	for _, r := range a.All() {
		o, ok := b.Get(r.Key())
		if !ok || !resourceEqual(r, o) {
			return false
		}
	}
	return true
}

func resourceEqual(a, b config.Resource) bool {
	if a.Kind != b.Kind || a.APIVersion != b.APIVersion || a.Name != b.Name || a.Namespace != b.Namespace ||
		a.Source != b.Source || !maps.Equal(a.Labels, b.Labels) || !maps.Equal(a.Annotations, b.Annotations) {
		return false
	}
	if a.Spec == b.Spec {
		return true
	}
	if a.Spec == nil || b.Spec == nil {
		return false
	}
	return proto.Equal(a.Spec, b.Spec)
}

func keyStrings(keys []config.Key) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.String()
	}
	return out
}
