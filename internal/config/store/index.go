package store

import (
	"cmp"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/mast-mesh/mast/internal/config"
)

// index is the File store's merge of its files, kept up to date one changed
// file at a time: a change costs the resources of the files it touches (and
// a copy of the key index), not a merge of the whole tree. It gives the same
// result as merge: a key defined more than once is taken from its first
// definition in path order, then document order.
type index struct {
	files     map[string][]config.Resource // resources of each file's version in force
	defs      map[config.Key][]defRef      // definitions of each key, in path then document order
	snap      *config.Snapshot
	conflicts map[config.Key]Conflict
	provided  map[string][]config.Key // file -> keys in force from it, sorted
	// providedStr is provided as strings, for Status.
	providedStr map[string][]string
}

// defRef is one definition of a key: resource pos of file path.
type defRef struct {
	path string
	pos  int
}

func compareDefs(a, b defRef) int {
	return cmp.Or(strings.Compare(a.path, b.path), cmp.Compare(a.pos, b.pos))
}

func newIndex() *index {
	return &index{
		files:     map[string][]config.Resource{},
		defs:      map[config.Key][]defRef{},
		snap:      config.NewSnapshot(nil),
		conflicts: map[config.Key]Conflict{},
		provided:  map[string][]config.Key{},

		providedStr: map[string][]string{},
	}
}

// apply replaces the resources of each file in changed (nil or empty: the
// file provides nothing) and updates the snapshot. It reports whether the
// snapshot and the conflicts changed, logging new conflicts.
func (x *index) apply(changed map[string][]config.Resource, log *slog.Logger) (snapChanged, conflictsChanged bool) {
	keys := map[config.Key]struct{}{}
	paths := map[string]struct{}{} // files whose provided keys may change
	for path, rs := range changed {
		paths[path] = struct{}{}
		for pos, r := range x.files[path] {
			k := r.Key()
			keys[k] = struct{}{}
			x.defs[k] = slices.DeleteFunc(x.defs[k], func(d defRef) bool { return d == defRef{path, pos} })
		}
		if len(rs) == 0 {
			delete(x.files, path)
		} else {
			x.files[path] = rs
		}
		for pos, r := range rs {
			k := r.Key()
			keys[k] = struct{}{}
			d := defRef{path, pos}
			i, _ := slices.BinarySearchFunc(x.defs[k], d, compareDefs)
			x.defs[k] = slices.Insert(x.defs[k], i, d)
		}
	}
	var put []config.Resource
	var del []config.Key
	for k := range keys {
		defs := x.defs[k]
		old, had := x.snap.Get(k)
		if len(defs) == 0 {
			delete(x.defs, k)
			if had {
				del = append(del, k)
			}
		} else if r := x.files[defs[0].path][defs[0].pos]; !had || !resourceEqual(old, r) {
			put = append(put, r)
		}
		// Files that may have lost the key to, or won it from, another.
		for _, d := range defs {
			paths[d.path] = struct{}{}
		}
		conflictsChanged = x.setConflict(k, defs, log) || conflictsChanged
	}
	for path := range paths {
		keys := x.providedBy(path)
		if len(keys) == 0 {
			delete(x.provided, path)
			delete(x.providedStr, path)
			continue
		}
		x.provided[path], x.providedStr[path] = keys, keyStrings(keys)
	}
	if len(put) == 0 && len(del) == 0 {
		return false, conflictsChanged
	}
	x.snap = x.snap.Update(put, del)
	return true, conflictsChanged
}

// setConflict records the conflict of key k given its definitions and
// reports whether it changed.
func (x *index) setConflict(k config.Key, defs []defRef, log *slog.Logger) bool {
	old, had := x.conflicts[k]
	if len(defs) < 2 {
		delete(x.conflicts, k)
		return had
	}
	c := Conflict{Key: k.String(), Winner: defs[0].path}
	for _, d := range defs[1:] {
		c.Ignored = append(c.Ignored, d.path)
	}
	if had && conflictEqual(old, c) {
		return false
	}
	x.conflicts[k] = c
	log.Warn("config key defined more than once; the first file wins", "key", c.Key, "winner", c.Winner, "ignored", c.Ignored)
	return true
}

// providedBy returns the keys whose first definition is in path, sorted.
func (x *index) providedBy(path string) []config.Key {
	var out []config.Key
	for pos, r := range x.files[path] {
		k := r.Key()
		if defs := x.defs[k]; len(defs) > 0 && defs[0] == (defRef{path, pos}) {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, compareKeys)
	return out
}

// conflictList returns the conflicts sorted by key.
func (x *index) conflictList() []Conflict {
	out := slices.Collect(maps.Values(x.conflicts))
	slices.SortFunc(out, func(a, b Conflict) int { return cmp.Compare(a.Key, b.Key) })
	return out
}
