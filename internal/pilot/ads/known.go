package ads

import (
	"cmp"
	"hash/maphash"
	"runtime"
	"slices"
	"sync"
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
}

// knownTables shares sealed buckets between proxies.
type knownTables struct {
	seed maphash.Seed
	mu   sync.Mutex
	m    map[uint64]weak.Pointer[knownBucket]
}

func newKnownTables() *knownTables {
	return &knownTables{seed: maphash.MakeSeed(), m: map[uint64]weak.Pointer[knownBucket]{}}
}

func (t *knownTables) nameHash(n name) uint64 { return maphash.String(t.seed, n.Value()) }

// share returns the sealed bucket with b's (sorted) entries: an existing
// one if some proxy holds it, else b, sealed and registered.
func (t *knownTables) share(b *knownBucket) *knownBucket {
	var h maphash.Hash
	h.SetSeed(t.seed)
	for _, e := range b.entries {
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
	if s := t.m[sum].Value(); s != nil && slices.Equal(s.entries, b.entries) {
		return s
	}
	b.sealed = true
	b.entries = slices.Clip(b.entries)
	t.m[sum] = weak.Make(b)
	runtime.AddCleanup(b, t.forget, sum)
	return b
}

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

// seal shares every bucket changed since the last seal, first giving the
// set the bucket count its size calls for (about knownBucketSize entries a
// bucket), so that proxies holding the same entries lay them out alike.
func (k *knownVersions) seal(t *knownTables) {
	want := 1
	for want*knownBucketSize < k.n {
		want *= 2
	}
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
