package ads

import (
	"cmp"
	"hash/maphash"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"weak"
)

// knownVersions is what a Delta client holds of one type: resource name ->
// version. At 10,000 services a proxy holds ~20,000 of them, and proxies of
// the same scope hold the same ones, so a set is split by name hash into
// buckets of about knownBucketSize entries, and a bucket, once sealed, is an
// immutable table shared by every proxy holding exactly those entries
// (content-addressed through the server's knownTables). A change copies the
// bucket it touches; seal shares it again. Per proxy that leaves a slice of
// bucket pointers plus the buckets nobody else has.
//
// The zero value is an empty set. It is not safe for concurrent mutation.
type knownVersions struct {
	buckets []*knownBucket // len is a power of two (or 0); nil: empty bucket
	n       int
}

const knownBucketSize = 64

type knownEntry struct {
	name    name
	version uint64
}

type knownBucket struct {
	entries []knownEntry // sorted by name once sealed
	sealed  bool         // immutable: shared, copy before changing
	// next is what the last one-entry update of this sealed bucket made of
	// it (see update): the proxies holding the bucket usually receive the
	// same change, and the second to the thousandth take the result from
	// here instead of copying, sorting, hashing and looking the bucket up
	// again under the tables' lock. It is the only mutable part of a sealed
	// bucket. It holds its result weakly: a proxy that keeps an old bucket
	// must not keep every later state of it alive through a chain of these.
	next atomic.Pointer[knownTransition]
	// shared is set once a second set is given this bucket by shareEntries:
	// only then is a transition worth its allocation (a proxy's own bucket
	// is replaced, not followed).
	shared atomic.Bool
}

// knownTransition is a one-entry update of a sealed bucket and its result:
// to is the sealed bucket with the entries of the bucket holding the
// transition changed by change (empty: no bucket), delta the change in
// their count.
type knownTransition struct {
	change knownChange // bucket index left 0
	to     weak.Pointer[knownBucket]
	empty  bool
	delta  int
}

// knownTables shares sealed buckets between proxies.
type knownTables struct {
	seed maphash.Seed
	mu   sync.Mutex
	m    map[uint64]weak.Pointer[knownBucket]

	scratch sync.Pool // *knownScratch for update
}

func newKnownTables() *knownTables {
	return &knownTables{seed: maphash.MakeSeed(), m: map[uint64]weak.Pointer[knownBucket]{}}
}

func (t *knownTables) nameHash(n name) uint64 { return maphash.String(t.seed, n.Value()) }

// share returns the sealed bucket with b's (sorted) entries: an existing
// one if some proxy holds it, else b, sealed and registered.
func (t *knownTables) share(b *knownBucket) *knownBucket {
	s, _ := t.shareEntries(b.entries, b)
	return s
}

// shareEntries returns the sealed bucket holding entries (sorted): an
// existing one if some proxy holds it, else b (nil: a new bucket with a
// copy of entries), sealed and registered; and the weak pointer it is
// registered with. A bucket of fewer than minSharedEntries is sealed but
// not shared (a zero weak pointer): sharing it saves a few hundred bytes
// and costs hashing it, the tables' lock, a weak pointer and a cleanup,
// each time a proxy's own small set changes (cpbench's on-demand proxies
// each hold their own ten virtual hosts: a thousand such buckets per
// config change).
func (t *knownTables) shareEntries(entries []knownEntry, b *knownBucket) (*knownBucket, weak.Pointer[knownBucket]) {
	if len(entries) < minSharedEntries {
		if b == nil {
			b = &knownBucket{entries: slices.Clone(entries)}
		}
		b.sealed = true
		b.entries = slices.Clip(b.entries)
		return b, weak.Pointer[knownBucket]{}
	}
	var h maphash.Hash
	h.SetSeed(t.seed)
	for _, e := range entries {
		h.WriteString(e.name.Value())
		var v [8]byte
		for i := range v {
			v[i] = byte(e.version >> (8 * i))
		}
		h.Write(v[:])
	}
	sum := h.Sum64()
	t.mu.Lock()
	defer t.mu.Unlock()
	wp := t.m[sum]
	if s := wp.Value(); s != nil && slices.Equal(s.entries, entries) {
		if !s.shared.Load() {
			s.shared.Store(true)
		}
		return s, wp
	}
	if b == nil {
		b = &knownBucket{entries: slices.Clone(entries)}
	}
	b.sealed = true
	b.entries = slices.Clip(b.entries)
	wp = weak.Make(b)
	t.m[sum] = wp
	runtime.AddCleanup(b, t.forget, sum)
	return b, wp
}

// minSharedEntries is the smallest bucket shareEntries registers.
const minSharedEntries = 16

// forget drops the entry of a collected bucket.
func (t *knownTables) forget(sum uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if wp, ok := t.m[sum]; ok && wp.Value() == nil {
		delete(t.m, sum)
	}
}

func (k *knownVersions) len() int { return k.n }

func (k *knownVersions) bucket(t *knownTables, n name) int {
	return int(t.nameHash(n) & uint64(len(k.buckets)-1))
}

func (k *knownVersions) get(t *knownTables, n name) (uint64, bool) {
	if k.n == 0 {
		return 0, false
	}
	if b := k.buckets[k.bucket(t, n)]; b != nil {
		for _, e := range b.entries {
			if e.name == n {
				return e.version, true
			}
		}
	}
	return 0, false
}

// own returns bucket i, copied first if it is shared.
func (k *knownVersions) own(i int) *knownBucket {
	b := k.buckets[i]
	switch {
	case b == nil:
		b = &knownBucket{}
		k.buckets[i] = b
	case b.sealed:
		b = &knownBucket{entries: slices.Clone(b.entries)}
		k.buckets[i] = b
	}
	return b
}

func (k *knownVersions) set(t *knownTables, n name, v uint64) {
	if len(k.buckets) == 0 {
		k.buckets = make([]*knownBucket, 1)
	}
	i := k.bucket(t, n)
	if b := k.buckets[i]; b != nil {
		for j, e := range b.entries {
			if e.name == n {
				if e.version != v {
					k.own(i).entries[j].version = v
				}
				return
			}
		}
	}
	b := k.own(i)
	b.entries = append(b.entries, knownEntry{n, v})
	k.n++
	if k.n > 2*knownBucketSize*len(k.buckets) {
		k.layout(t, 2*len(k.buckets))
	}
}

func (k *knownVersions) delete(t *knownTables, n name) {
	if k.n == 0 {
		return
	}
	i := k.bucket(t, n)
	b := k.buckets[i]
	if b == nil {
		return
	}
	j := slices.IndexFunc(b.entries, func(e knownEntry) bool { return e.name == n })
	if j < 0 {
		return
	}
	b = k.own(i)
	b.entries = slices.Delete(b.entries, j, j+1)
	k.n--
}

// layout redistributes the entries over n buckets.
func (k *knownVersions) layout(t *knownTables, n int) {
	old := k.buckets
	k.buckets = make([]*knownBucket, n)
	for _, b := range old {
		if b == nil {
			continue
		}
		for _, e := range b.entries {
			nb := k.own(k.bucket(t, e.name))
			nb.entries = append(nb.entries, e)
		}
	}
}

// all calls yield for every entry.
func (k *knownVersions) all(yield func(name, uint64) bool) {
	for _, b := range k.buckets {
		if b == nil {
			continue
		}
		for _, e := range b.entries {
			if !yield(e.name, e.version) {
				return
			}
		}
	}
}

// bucketsFor is the bucket count a set of n entries is sealed with.
func bucketsFor(n int) int {
	want := 1
	for want*knownBucketSize < n {
		want *= 2
	}
	return want
}

// knownScratch is update's working memory, reused between calls.
type knownScratch struct {
	changes []knownChange
	entries []knownEntry
}

type knownChange struct {
	bucket int
	entry  knownEntry
	remove bool
}

// update sets the versions of set and deletes the names of remove (a name
// is in at most one of them), then seals: what a response changed. Unlike
// set and delete one by one, it builds each touched bucket once, in
// scratch memory, and allocates a bucket only when no proxy holds an equal
// one already: a Delta proxy's initial sync of 10,000 clusters made ~4 MB
// of bucket copies, garbage as soon as they were shared.
func (k *knownVersions) update(t *knownTables, set []knownEntry, remove []name) {
	if len(set) == 0 && len(remove) == 0 {
		k.seal(t)
		return
	}
	if len(k.buckets) == 0 {
		if len(set) == 0 {
			return
		}
		k.buckets = make([]*knownBucket, bucketsFor(len(set)))
	}
	s, _ := t.scratch.Get().(*knownScratch)
	if s == nil {
		s = &knownScratch{}
	}
	chs := s.changes[:0]
	for _, e := range set {
		chs = append(chs, knownChange{bucket: k.bucket(t, e.name), entry: e})
	}
	for _, n := range remove {
		chs = append(chs, knownChange{bucket: k.bucket(t, n), entry: knownEntry{name: n}, remove: true})
	}
	slices.SortFunc(chs, func(a, b knownChange) int { return cmp.Compare(a.bucket, b.bucket) })
	buf := s.entries
	for i := 0; i < len(chs); {
		bi := chs[i].bucket
		j := i
		for j < len(chs) && chs[j].bucket == bi {
			j++
		}
		old := k.buckets[bi]
		if j == i+1 && k.followed(bi, old, chs[i]) {
			i = j
			continue
		}
		buf = buf[:0]
		if old != nil {
			buf = append(buf, old.entries...)
		}
		before := len(buf)
		for _, c := range chs[i:j] {
			at := slices.IndexFunc(buf, func(e knownEntry) bool { return e.name == c.entry.name })
			switch {
			case c.remove && at >= 0:
				buf[at] = buf[len(buf)-1]
				buf = buf[:len(buf)-1]
			case !c.remove && at >= 0:
				buf[at].version = c.entry.version
			case !c.remove:
				buf = append(buf, c.entry)
			}
		}
		k.n += len(buf) - before
		var to weak.Pointer[knownBucket]
		if len(buf) == 0 {
			k.buckets[bi] = nil
		} else {
			slices.SortFunc(buf, func(x, y knownEntry) int { return cmp.Compare(x.name.Value(), y.name.Value()) })
			k.buckets[bi], to = t.shareEntries(buf, nil)
		}
		if j == i+1 && old != nil && old.sealed && old.shared.Load() {
			old.next.Store(&knownTransition{change: knownChange{entry: chs[i].entry, remove: chs[i].remove},
				to: to, empty: len(buf) == 0, delta: len(buf) - before})
		}
		i = j
	}
	clear(chs) // drop the names
	clear(buf)
	s.changes, s.entries = chs[:0], buf[:0]
	t.scratch.Put(s)
	k.seal(t)
}

// followed applies c, the only change to bucket i (old), as the last
// proxy holding old with that change did (knownBucket.next), and reports
// whether it could.
func (k *knownVersions) followed(i int, old *knownBucket, c knownChange) bool {
	if old == nil || !old.sealed {
		return false
	}
	tr := old.next.Load()
	if tr == nil || tr.change.remove != c.remove || tr.change.entry.name != c.entry.name ||
		(!c.remove && tr.change.entry.version != c.entry.version) {
		return false
	}
	to := tr.to.Value()
	if to == nil && !tr.empty {
		return false // collected
	}
	if to != nil && !to.shared.Load() {
		to.shared.Store(true) // held by a second set now
	}
	k.buckets[i] = to
	k.n += tr.delta
	return true
}

// seal shares every bucket changed since the last seal, first giving the
// set the bucket count its size calls for (about knownBucketSize entries a
// bucket), so that proxies holding the same entries lay them out alike.
func (k *knownVersions) seal(t *knownTables) {
	want := bucketsFor(k.n)
	if k.n == 0 {
		k.buckets = nil
		return
	}
	if len(k.buckets) != want {
		k.layout(t, want)
	}
	for i, b := range k.buckets {
		if b == nil || b.sealed {
			continue
		}
		if len(b.entries) == 0 {
			k.buckets[i] = nil
			continue
		}
		slices.SortFunc(b.entries, func(x, y knownEntry) int { return cmp.Compare(x.name.Value(), y.name.Value()) })
		k.buckets[i] = t.share(b)
	}
}
