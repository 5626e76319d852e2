package config

import (
	"maps"
	"slices"
	"strings"
)

// Update returns a snapshot with the resources of put added (or replacing
// those with the same key) and the keys of del removed, as NewSnapshot of the
// resulting set would; s itself is unchanged. It copies and patches only the
// lists of the kinds it touches, so one changed file in a large tree costs
// far less than NewSnapshot of everything. A key both deleted and put is put;
// of several puts of one key the last counts.
func (s *Snapshot) Update(put []Resource, del []Key) *Snapshot {
	if s == nil {
		return NewSnapshot(put)
	}
	n := &Snapshot{byKind: maps.Clone(s.byKind), n: s.n}
	final := make(map[Key]int, len(put)) // key -> index in put of its last put
	touched := map[Kind]struct{}{}
	for i, r := range put {
		final[r.Key()] = i
		touched[r.Kind] = struct{}{}
	}
	for _, k := range del {
		touched[k.Kind] = struct{}{}
	}
	for kind := range touched {
		// Replaced resources keep their place: copy the list, patch them,
		// remove the deleted ones and insert the new ones by binary search.
		before := s.byKind[kind]
		list := slices.Clone(before)
		for _, k := range del {
			if _, kept := final[k]; kept || k.Kind != kind {
				continue
			}
			if i, found := slices.BinarySearchFunc(list, k, compareToKey); found {
				list = slices.Delete(list, i, i+1)
			}
		}
		var fresh []Resource // new keys of this kind, once each, final values
		for i, r := range put {
			if r.Kind != kind || final[r.Key()] != i {
				continue
			}
			if j, found := slices.BinarySearchFunc(list, r.Key(), compareToKey); found {
				list[j] = r
				continue
			}
			fresh = append(fresh, r)
		}
		if len(fresh) > 32 {
			list = append(list, fresh...)
			slices.SortFunc(list, compareNamespaceName)
		} else {
			for _, r := range fresh {
				i, _ := slices.BinarySearchFunc(list, r, compareNamespaceName)
				list = slices.Insert(list, i, r)
			}
		}
		n.n += len(list) - len(before)
		if len(list) == 0 {
			delete(n.byKind, kind)
			continue
		}
		n.byKind[kind] = list
	}
	return n
}

func compareToKey(r Resource, k Key) int {
	if c := strings.Compare(r.Namespace, k.Namespace); c != 0 {
		return c
	}
	return strings.Compare(r.Name, k.Name)
}

// compareNamespaceName orders resources of one kind as snapshot lists are.
func compareNamespaceName(a, b Resource) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}
