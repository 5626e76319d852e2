package mixer

import (
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
)

// ref is one referenced attribute of a cached answer.
type ref struct {
	name, key string
	isKey     bool
}

// signature is one set of referenced attributes with the answers cached
// for the values requests had for exactly those (Istio's referenced
// attributes protocol: an answer holds for every request that agrees on
// them, and only on them).
type signature struct {
	refs    []ref
	entries map[uint64]*entry
}

type entry struct {
	code    int32
	message string
	expires int64 // unix nanoseconds
	uses    atomic.Int64
}

// checkCache caches Check answers. Lookups take a read lock and allocate
// nothing.
type checkCache struct {
	seed maphash.Seed
	max  int // entries per signature

	mu   sync.RWMutex
	sigs []*signature
}

func newCheckCache(max int) *checkCache {
	return &checkCache{seed: maphash.MakeSeed(), max: max}
}

func (c *checkCache) key(b *reqBag, refs []ref) uint64 { return refsKey(c.seed, b, refs) }

// refsKey hashes b's values of refs.
func refsKey(seed maphash.Seed, b *reqBag, refs []ref) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	for i := range refs {
		r := &refs[i]
		h.WriteString(r.name)
		h.WriteByte(0)
		if r.isKey {
			h.WriteString(r.key)
			h.WriteByte(0)
		}
		if b.hash(&h, r.name, r.key, r.isKey) {
			h.WriteByte(1)
		} else {
			h.WriteByte(2)
		}
	}
	return h.Sum64()
}

// lookup returns a cached answer for b, using it once.
func (c *checkCache) lookup(b *reqBag, now time.Time) (code int32, message string, ok bool) {
	t := now.UnixNano()
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, s := range c.sigs {
		e := s.entries[c.key(b, s.refs)]
		if e == nil || t >= e.expires {
			continue
		}
		if e.uses.Add(-1) < 0 {
			continue
		}
		return e.code, e.message, true
	}
	return 0, "", false
}

// insert caches an answer for the attributes it referenced.
func (c *checkCache) insert(b *reqBag, ra *mixerpb.ReferencedAttributes, dict *attribute.Dictionary, code int32, message string,
	valid time.Duration, uses int32, now time.Time) {
	if valid <= 0 || uses <= 0 {
		return
	}
	refs, ok := decodeRefs(ra, dict)
	if !ok {
		return
	}
	e := &entry{code: code, message: message, expires: now.Add(valid).UnixNano()}
	e.uses.Store(int64(uses))
	c.mu.Lock()
	defer c.mu.Unlock()
	var sig *signature
	for _, s := range c.sigs {
		if slices.Equal(s.refs, refs) {
			sig = s
			break
		}
	}
	if sig == nil {
		if len(c.sigs) >= 64 {
			c.sigs = c.sigs[1:]
		}
		sig = &signature{refs: refs, entries: map[uint64]*entry{}}
		c.sigs = append(c.sigs, sig)
	}
	if len(sig.entries) >= c.max {
		t := now.UnixNano()
		for k, old := range sig.entries {
			if t >= old.expires || old.uses.Load() <= 0 {
				delete(sig.entries, k)
			}
		}
		if len(sig.entries) >= c.max {
			clear(sig.entries)
		}
	}
	sig.entries[c.key(b, refs)] = e
}

// decodeRefs reads referenced attributes (names and map keys are word
// indices: global words >= 0, the message's own words < 0), in a
// canonical order.
func decodeRefs(ra *mixerpb.ReferencedAttributes, dict *attribute.Dictionary) ([]ref, bool) {
	word := func(i int32) (string, bool) {
		if i >= 0 {
			return dict.Word(int(i))
		}
		j := int(-i - 1)
		if j >= len(ra.GetWords()) {
			return "", false
		}
		return ra.GetWords()[j], true
	}
	var out []ref
	for _, m := range ra.GetAttributeMatches() {
		if m.GetCondition() == mixerpb.ReferencedAttributes_REGEX {
			return nil, false // never produced by Mast's Mixer; not cached
		}
		n, ok := word(m.GetName())
		if !ok {
			return nil, false
		}
		r := ref{name: n}
		if m.GetMapKey() != 0 { // 0 is global word 0 (source.ip), never a key
			k, ok := word(m.GetMapKey())
			if !ok {
				return nil, false
			}
			r.key, r.isKey = k, true
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b ref) int {
		switch {
		case a.name != b.name:
			if a.name < b.name {
				return -1
			}
			return 1
		case a.isKey != b.isKey:
			if a.isKey {
				return 1
			}
			return -1
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return 0
	})
	return slices.CompactFunc(out, func(a, b ref) bool { return a == b }), true
}
