package ads

import (
	"hash/maphash"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unique"
	"unsafe"
	"weak"

	"google.golang.org/protobuf/encoding/protowire"
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
//
// A set is never modified in place: add and remove build a new slice, so
// that a set can be shared. At 10,000 services every sidecar of a namespace
// subscribes to the same 10,000 clusters (80 KB a proxy), so a watch hands
// its set to nameTables.share after each change and keeps the canonical,
// shared copy of an equal set when some other watch holds one.
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
	next := make(nameSet, len(*s), len(*s)+len(added))
	copy(next, *s)
	for _, v := range added {
		next = append(next, intern(v))
	}
	slices.SortFunc(next, compareNames)
	*s = next
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
	kept := make(nameSet, 0, len(*s))
	for i, n := range *s {
		if drop[i/64]&(1<<(i%64)) == 0 {
			kept = append(kept, n)
		}
	}
	if len(kept) == 0 {
		kept = nil
	}
	*s = kept
	return true
}

// nameTables shares equal name sets between watches: a table of the sets
// some watch holds, by content hash, through weak pointers, so that a set
// nobody holds any more is collected and its entry dropped.
type nameTables struct {
	seed maphash.Seed
	mu   sync.Mutex
	m    map[uint64][]sharedSet // usually one set a hash
}

// sharedSet is a weak reference to a set's first element (which keeps the
// whole backing array) and its length: a set is never modified, so the
// pair gives the set back while anyone holds it.
type sharedSet struct {
	first weak.Pointer[name]
	n     int
	wire  *[]byte // the set's requestWire, made for the first SotW watch holding it
}

func newNameTables() *nameTables {
	return &nameTables{seed: maphash.MakeSeed(), m: map[uint64][]sharedSet{}}
}

func (t *nameTables) sum(s nameSet) uint64 {
	var h maphash.Hash
	h.SetSeed(t.seed)
	for _, n := range s {
		h.WriteString(n.Value())
		h.WriteByte(0)
	}
	return h.Sum64()
}

// share returns the set equal to s that some watch already holds, or s
// itself, registered for the next watch. Sets of fewer than minShared
// names are returned as they are: sharing them saves less than it costs.
// t may be nil (no sharing).
func (t *nameTables) share(s nameSet) nameSet {
	s, _ = t.shareSet(s, false)
	return s
}

// shareSotw is share for a SotW watch: it also returns the set's
// requestWire, shared as the set is.
func (t *nameTables) shareSotw(s nameSet) (nameSet, []byte) {
	return t.shareSet(s, true)
}

func (t *nameTables) shareSet(s nameSet, withWire bool) (nameSet, []byte) {
	if t == nil || len(s) < minShared {
		if withWire {
			return s, requestWire(s)
		}
		return s, nil
	}
	sum := t.sum(s)
	t.mu.Lock()
	defer t.mu.Unlock()
	es := t.m[sum]
	for i, e := range es {
		if p := e.first.Value(); p != nil && e.n == len(s) {
			// The backing array is alive (p is not nil) and was
			// registered with n elements that nobody modifies.
			if c := nameSet(unsafe.Slice(p, e.n)); slices.Equal(c, s) {
				if !withWire {
					return c, nil
				}
				if e.wire == nil {
					w := requestWire(c)
					es[i].wire = &w
				}
				return c, *es[i].wire
			}
		}
	}
	s = slices.Clip(s)
	e := sharedSet{first: weak.Make(&s[0]), n: len(s)}
	if withWire {
		w := requestWire(s)
		e.wire = &w
	}
	t.m[sum] = append(es, e)
	runtime.AddCleanup(&s[0], t.forget, sum)
	if withWire {
		return s, *e.wire
	}
	return s, nil
}

// requestWire is the encoding of a DiscoveryRequest's resource_names fields
// naming exactly s, in its order: what a SotW client repeating the
// subscription in every ACK sends (decodeRepeated compares the bytes).
func requestWire(s nameSet) []byte {
	n := 0
	for _, v := range s {
		n += protowire.SizeTag(requestNamesField) + protowire.SizeBytes(len(v.Value()))
	}
	b := make([]byte, 0, n)
	for _, v := range s {
		b = protowire.AppendTag(b, requestNamesField, protowire.BytesType)
		b = protowire.AppendString(b, v.Value())
	}
	return b
}

// minShared is the smallest set share registers.
const minShared = 16

// forget drops the entries of collected sets under sum.
func (t *nameTables) forget(sum uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	kept := slices.DeleteFunc(t.m[sum], func(e sharedSet) bool { return e.first.Value() == nil })
	if len(kept) == 0 {
		delete(t.m, sum)
	} else {
		t.m[sum] = kept
	}
}

// len returns how many sets the table holds (for tests).
func (t *nameTables) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, es := range t.m {
		n += len(es)
	}
	return n
}
