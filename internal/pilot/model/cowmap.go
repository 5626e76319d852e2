package model

import (
	"hash/maphash"
	"maps"
)

// cowShards is the number of shards of a cowMap: a copy that changes k keys
// copies at most k shards of 1/cowShards of the entries each.
const cowShards = 64

// cowMap is a read-only map split into shards, so that the next push
// context's copy with a few keys changed shares every shard it did not
// touch: at 10,000 services an endpoint change copies a few hundred entries
// instead of 60,000. Reads need no lock; a cowMap is never modified once
// published (edit it through a cowEdit before).
type cowMap[K comparable, V any] struct {
	seed   maphash.Seed // the same in a map and all its copies
	hash   func(maphash.Seed, K) uint64
	shards [cowShards]map[K]V
	n      int
}

func newCowMap[K comparable, V any](hash func(maphash.Seed, K) uint64) *cowMap[K, V] {
	return &cowMap[K, V]{seed: maphash.MakeSeed(), hash: hash}
}

func (m *cowMap[K, V]) shardOf(k K) uint64 { return m.hash(m.seed, k) % cowShards }

func (m *cowMap[K, V]) get(k K) V {
	return m.shards[m.shardOf(k)][k]
}

// len is the number of entries.
func (m *cowMap[K, V]) len() int { return m.n }

// all calls f for every entry, in no particular order.
func (m *cowMap[K, V]) all(f func(K, V)) {
	for _, s := range m.shards {
		for k, v := range s {
			f(k, v)
		}
	}
}

// edit returns an editor of a copy of m that shares m's shards until it
// writes to them. m is unchanged.
func (m *cowMap[K, V]) edit() *cowEdit[K, V] {
	c := *m
	return &cowEdit[K, V]{m: &c}
}

// cowEdit writes to a cowMap that is not yet published, copying each
// shared shard on its first write.
type cowEdit[K comparable, V any] struct {
	m     *cowMap[K, V]
	owned [cowShards]bool
}

func (e *cowEdit[K, V]) shard(k K) map[K]V {
	i := e.m.shardOf(k)
	if !e.owned[i] {
		e.m.shards[i] = maps.Clone(e.m.shards[i])
		if e.m.shards[i] == nil {
			e.m.shards[i] = map[K]V{}
		}
		e.owned[i] = true
	}
	return e.m.shards[i]
}

func (e *cowEdit[K, V]) get(k K) V { return e.m.get(k) }

func (e *cowEdit[K, V]) set(k K, v V) {
	s := e.shard(k)
	if _, ok := s[k]; !ok {
		e.m.n++
	}
	s[k] = v
}

func (e *cowEdit[K, V]) del(k K) {
	if s := e.m.shards[e.m.shardOf(k)]; s == nil {
		return
	} else if _, ok := s[k]; !ok {
		return
	}
	delete(e.shard(k), k)
	e.m.n--
}

// done returns the edited map; the editor must not be used afterwards.
func (e *cowEdit[K, V]) done() *cowMap[K, V] {
	m := e.m
	e.m = nil
	return m
}

func hashString(seed maphash.Seed, s string) uint64 { return maphash.String(seed, s) }

func hashHostPort(seed maphash.Seed, k hostPort) uint64 {
	return maphash.String(seed, k.host) + uint64(k.port)*0x9e3779b97f4a7c15
}
