package config

import (
	"maps"
	"slices"
	"strings"
)

// Update returns a snapshot with the resources of put added (or replacing
// those with the same key) and the keys of del removed, as NewSnapshot of the
// resulting set would; s itself is unchanged. It copies the key index and
// re-sorts only the kinds it touches, so one changed file in a large tree
// costs far less than NewSnapshot of everything. A key both deleted and put
// is put.
func (s *Snapshot) Update(put []Resource, del []Key) *Snapshot {
	if s == nil {
		return NewSnapshot(put)
	}
	n := &Snapshot{byKey: maps.Clone(s.byKey), byKind: maps.Clone(s.byKind)}
	touched := map[Kind]int{} // kind -> resources added (new keys)
	for _, k := range del {
		if _, ok := n.byKey[k]; ok {
			delete(n.byKey, k)
			touched[k.Kind] += 0
		}
	}
	for _, r := range put {
		k := r.Key()
		if _, existed := s.byKey[k]; !existed {
			if _, again := n.byKey[k]; !again {
				touched[k.Kind]++
			}
		} else {
			touched[k.Kind] += 0
		}
		n.byKey[k] = r
	}
	for kind, added := range touched {
		// Replaced resources keep their place: copy the list, patch them,
		// remove the deleted ones and insert the new ones by binary search.
		list := slices.Clone(s.byKind[kind])
		for _, k := range del {
			if _, kept := n.byKey[k]; kept || k.Kind != kind {
				continue
			}
			if i, found := slices.BinarySearchFunc(list, k, compareToKey); found {
				list = slices.Delete(list, i, i+1)
			}
		}
		var fresh []Resource // new keys of this kind, once each, final values
		seen := make(map[Key]struct{}, added)
		for _, r := range put {
			k := r.Key()
			if r.Kind != kind {
				continue
			}
			if _, existed := s.byKey[k]; existed {
				if i, found := slices.BinarySearchFunc(list, k, compareToKey); found {
					list[i] = n.byKey[k]
				}
				continue
			}
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
			fresh = append(fresh, n.byKey[k])
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
