package ads

import (
	"slices"
	"strings"
	"unique"
)

// name is an interned resource name: every connection subscribed to the same
// cluster or route holds the same canonical string through an 8-byte handle,
// instead of its own copy decoded from its requests.
type name = unique.Handle[string]

func intern(s string) name { return unique.Make(s) }

func compareNames(a, b name) int {
	if a == b {
		return 0
	}
	return strings.Compare(a.Value(), b.Value())
}

// nameSet is a set of resource names kept sorted, so that the subscriptions a
// generator gets are already in order and a set costs 8 bytes per name.
type nameSet []name

func (s nameSet) index(n string) (int, bool) {
	return slices.BinarySearchFunc(s, n, func(e name, t string) int { return strings.Compare(e.Value(), t) })
}

func (s nameSet) has(n string) bool {
	_, ok := s.index(n)
	return ok
}

// hasName reports whether n is in the set.
func (s nameSet) hasName(n name) bool {
	_, ok := slices.BinarySearchFunc(s, n, compareNames)
	return ok
}

// strings returns the names in order, in a new slice.
func (s nameSet) strings() []string {
	out := make([]string, len(s))
	for i, n := range s {
		out[i] = n.Value()
	}
	return out
}

// sameAs reports whether the set holds exactly the names of list, ignoring
// "*" and repetitions.
func (s nameSet) sameAs(list []string) bool {
	if len(list) == len(s) {
		// The usual ACK repeats the set in its order, with the canonical
		// strings (requestDecoder): equal pointers compare in constant time.
		same := true
		for i, v := range list {
			if v != s[i].Value() {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	hit := make([]uint64, (len(s)+63)/64)
	n := 0
	for _, v := range list {
		if v == "*" {
			continue
		}
		i, ok := s.index(v)
		if !ok {
			return false
		}
		if hit[i/64]&(1<<(i%64)) == 0 {
			hit[i/64] |= 1 << (i % 64)
			n++
		}
	}
	return n == len(s)
}

// newNameSet builds a set from list, ignoring "*".
func newNameSet(list []string) nameSet {
	s := make(nameSet, 0, len(list))
	for _, v := range list {
		if v != "*" {
			s = append(s, intern(v))
		}
	}
	slices.SortFunc(s, compareNames)
	return slices.Compact(s)
}

// add inserts the names of list that are not in the set yet (ignoring "*")
// and returns them, sorted.
func (s *nameSet) add(list []string) []string {
	var added []string
	for _, v := range list {
		if v != "*" && !s.has(v) {
			added = append(added, v)
		}
	}
	if len(added) == 0 {
		return nil
	}
	slices.Sort(added)
	added = slices.Compact(added)
	for _, v := range added {
		*s = append(*s, intern(v))
	}
	slices.SortFunc(*s, compareNames)
	return added
}

// remove deletes the names of list from the set in O(m log n + n) for m
// names in a set of n: they are marked first, then the set is compacted
// once (deleting one by one shifted the set m times: O(m*n), which a client
// unsubscribing thousands of names at once turned into seconds of CPU).
// It reports whether any name was removed.
func (s *nameSet) remove(list []string) bool {
	var drop []uint64
	for _, v := range list {
		if i, ok := s.index(v); ok {
			if drop == nil {
				drop = make([]uint64, (len(*s)+63)/64)
			}
			drop[i/64] |= 1 << (i % 64)
		}
	}
	if drop == nil {
		return false
	}
	kept := (*s)[:0]
	for i, n := range *s {
		if drop[i/64]&(1<<(i%64)) == 0 {
			kept = append(kept, n)
		}
	}
	clear((*s)[len(kept):])
	*s = kept
	return true
}
