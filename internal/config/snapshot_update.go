package config

import (
	"maps"
	"strings"
)

// Update returns a snapshot with the resources of put added (or replacing
// those with the same key) and the keys of del removed, as NewSnapshot of the
// resulting set would; s itself is unchanged. It copies and patches only the
// lists of the namespaces it touches, so one changed file in a large tree costs
// far less than NewSnapshot of everything. A key both deleted and put is put;
// of several puts of one key the last counts.
func (s *Snapshot) Update(put []Resource, del []Key) *Snapshot {
	if s == nil {
		return NewSnapshot(put)
	}
	n := &Snapshot{byKind: maps.Clone(s.byKind), n: s.n}
	final := make(map[Key]int, len(put)) // key -> index in put of its last put
	for i, r := range put {
		final[r.Key()] = i
	}
	puts := map[Kind][]Resource{} // final values, once per key
	for i, r := range put {
		if final[r.Key()] == i {
			puts[r.Kind] = append(puts[r.Kind], r)
		}
	}
	dels := map[Kind][]Key{} // deleted and not put
	for _, k := range del {
		if _, kept := final[k]; !kept {
			dels[k.Kind] = append(dels[k.Kind], k)
		}
		if _, ok := puts[k.Kind]; !ok {
			puts[k.Kind] = nil // touched
		}
	}
	for kind, p := range puts {
		before := s.byKind[kind]
		after := before.update(p, dels[kind])
		if before != nil {
			n.n -= before.n
		}
		n.n += after.n
		if after.n == 0 {
			delete(n.byKind, kind)
			continue
		}
		n.byKind[kind] = after
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
