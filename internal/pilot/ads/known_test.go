package ads

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// privateEntries counts the entries of k in buckets none of others holds:
// what k costs on its own.
func (k *knownVersions) privateEntries(others ...*knownVersions) int {
	shared := map[*knownBucket]bool{}
	for _, o := range others {
		for _, b := range o.buckets {
			shared[b] = true
		}
	}
	n := 0
	for _, b := range k.buckets {
		if b != nil && !shared[b] {
			n += len(b.entries)
		}
	}
	return n
}

// TestKnownVersionsMatchMap runs random sets, deletes, seals and batch
// updates (what a response changes: many names at once, some new, some
// changed, some removed) on sets sharing one knownTables against plain maps.
func TestKnownVersionsMatchMap(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		tables := newKnownTables()
		const sets = 4
		var ks [sets]knownVersions
		var want [sets]map[string]uint64
		for i := range want {
			want[i] = map[string]uint64{}
		}
		pool := 50 + rng.IntN(2000)
		names := make([]string, pool)
		for j := range names {
			names[j] = fmt.Sprintf("outbound|80||svc%d.ns.svc.cluster.local", j)
		}
		for op := range 4000 {
			i := rng.IntN(sets)
			n := names[rng.IntN(pool)]
			switch r := rng.IntN(20); {
			case r == 18:
				// The same one-name change to every set, as a push makes
				// to the proxies sharing a bucket (knownBucket.next).
				e := knownEntry{intern(n), uint64(rng.IntN(3))}
				remove := rng.IntN(3) == 0
				for j := range sets {
					if remove {
						ks[j].update(tables, nil, []name{e.name})
						delete(want[j], n)
					} else {
						ks[j].update(tables, []knownEntry{e}, nil)
						want[j][n] = e.version
					}
				}
			case r == 19:
				var set []knownEntry
				var remove []name
				seen := map[string]bool{}
				for range rng.IntN(min(pool, 100)) {
					m := names[rng.IntN(pool)]
					if seen[m] {
						continue
					}
					seen[m] = true
					if rng.IntN(4) == 0 {
						remove = append(remove, intern(m))
						delete(want[i], m)
					} else {
						v := uint64(rng.IntN(3))
						set = append(set, knownEntry{intern(m), v})
						want[i][m] = v
					}
				}
				ks[i].update(tables, set, remove)
			case r < 11:
				v := uint64(rng.IntN(3)) // few versions: sets often hold equal entries
				ks[i].set(tables, intern(n), v)
				want[i][n] = v
			case r < 17:
				ks[i].delete(tables, intern(n))
				delete(want[i], n)
			default:
				ks[i].seal(tables)
			}
			if op%500 == 0 || op == 3999 {
				for j := range sets {
					checkKnown(t, tables, &ks[j], want[j], pool)
				}
			}
		}
		for j := range sets {
			ks[j].seal(tables)
			checkKnown(t, tables, &ks[j], want[j], pool)
		}
	}
}

// TestKnownUpdateFollowsTransition holds the one-entry update memo
// (knownBucket.next) to the full path: sets sharing their buckets receive,
// in turn, the same change, another version of it, its removal, a change
// of another name and again the first, and each set, the memo taken or
// not, equals the map and shares its buckets with the sets in the same
// state; a memo whose result was collected is not followed.
func TestKnownUpdateFollowsTransition(t *testing.T) {
	tables := newKnownTables()
	const sets, pool = 64, 300
	names := make([]string, pool)
	for i := range names {
		names[i] = fmt.Sprintf("outbound|80||svc%d.ns.svc.cluster.local", i)
	}
	ks := make([]knownVersions, sets)
	want := make([]map[string]uint64, sets)
	for i := range ks {
		want[i] = map[string]uint64{}
		var set []knownEntry
		for j, n := range names[:pool-10] {
			set = append(set, knownEntry{intern(n), uint64(j % 3)})
			want[i][n] = uint64(j % 3)
		}
		ks[i].update(tables, set, nil)
	}
	type step struct {
		name    string
		version uint64
		remove  bool
	}
	steps := []step{
		{names[5], 7, false}, {names[5], 7, false}, {names[5], 8, false}, {names[5], 0, true},
		{names[5], 0, true}, {names[pool-1], 1, false}, {names[pool-1], 2, false}, {names[5], 7, false},
	}
	for si, st := range steps {
		for i := range ks {
			// Sets alternate between two versions of the change on odd
			// steps, so a memo taken for the wrong version shows.
			v := st.version
			if si%2 == 1 && i%2 == 1 {
				v++
			}
			if st.remove {
				ks[i].update(tables, nil, []name{intern(st.name)})
				delete(want[i], st.name)
			} else {
				ks[i].update(tables, []knownEntry{{intern(st.name), v}}, nil)
				want[i][st.name] = v
			}
			checkKnown(t, tables, &ks[i], want[i], pool)
		}
		for i := 2; i < sets; i++ {
			if !slices.Equal(ks[i].buckets, ks[i%2].buckets) {
				t.Fatalf("step %d: set %d does not share the buckets of set %d", si, i, i%2)
			}
		}
	}
	// A memo whose result nobody holds any more is not followed.
	k := ks[0]
	for i := 1; i < sets; i++ {
		ks[i] = knownVersions{}
	}
	e := knownEntry{intern(names[9]), 5}
	tmp := knownVersions{buckets: slices.Clone(k.buckets), n: k.n}
	tmp.update(tables, []knownEntry{e}, nil)
	tmp = knownVersions{}
	runtime.GC()
	runtime.GC()
	k.update(tables, []knownEntry{e}, nil)
	want[0][names[9]] = 5
	checkKnown(t, tables, &k, want[0], pool)
	runtime.KeepAlive(tmp)
}

func checkKnown(t *testing.T, tables *knownTables, k *knownVersions, want map[string]uint64, pool int) {
	t.Helper()
	if k.len() != len(want) {
		t.Fatalf("len %d, want %d", k.len(), len(want))
	}
	got := map[string]uint64{}
	for n, v := range k.all {
		if _, dup := got[n.Value()]; dup {
			t.Fatalf("%s listed twice", n.Value())
		}
		got[n.Value()] = v
	}
	if !maps.Equal(got, want) {
		t.Fatalf("entries differ: %d listed, want %d", len(got), len(want))
	}
	for i := range pool {
		n := fmt.Sprintf("outbound|80||svc%d.ns.svc.cluster.local", i)
		v, ok := k.get(tables, intern(n))
		if wv, wok := want[n]; v != wv || ok != wok {
			t.Fatalf("get(%s) = %d, %v; want %d, %v", n, v, ok, wv, wok)
		}
	}
}

// TestDeltaProxiesShareKnownVersions connects three Delta proxies to a mesh
// of 1,000 services: what each has been sent (names and versions) is held
// once for all three, also after an endpoint change each of them receives,
// so that a Delta proxy costs mastd little more than its subscriptions.
func TestDeltaProxiesShareKnownVersions(t *testing.T) {
	m := newTestMesh()
	e := newEnv(t, m)
	st := &meshState{endpoints: map[string]string{}, listeners: []string{"0.0.0.0_80"}, routes: map[string]string{"80": "*"}}
	var all []string
	for i := range 1000 {
		h := fmt.Sprintf("s%04d.default.svc.cluster.local", i)
		st.endpoints[h] = fmt.Sprintf("10.2.%d.%d", i/250, i%250)
		all = append(all, clusterName(h))
	}
	e.ads.Push(m.set("v1", st), nil)
	names := []string{"p1", "p2", "p3"}
	clients := make([]*deltaClient, len(names))
	for i, n := range names {
		c := e.delta(t, e.dial(t), n)
		c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ClusterType})
		c.expect(ClusterType, all, nil)
		c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResourceNamesSubscribe: all})
		c.expect(EndpointType, all, nil)
		c.barrier()
		clients[i] = c
	}
	check := func(when string) {
		t.Helper()
		for _, typ := range []string{ClusterType, EndpointType} {
			ks := knownOf(t, e, names, typ)
			for i, k := range ks {
				if k.len() != len(all) {
					t.Fatalf("%s: %s %s holds %d versions, want %d", when, names[i], shortType(typ), k.len(), len(all))
				}
				others := append(ks[:i:i], ks[i+1:]...)
				if p := k.privateEntries(others...); p != 0 {
					t.Errorf("%s: %s %s holds %d of %d versions on its own; want all shared", when, names[i], shortType(typ), p, k.len())
				}
			}
		}
	}
	check("initial")
	next := *st
	next.endpoints = cloneMap(st.endpoints)
	next.endpoints["s0007.default.svc.cluster.local"] = "10.9.9.9"
	e.ads.Push(m.set("v2", &next), nil)
	for _, c := range clients {
		c.expect(EndpointType, []string{clusterName("s0007.default.svc.cluster.local")}, nil)
		c.barrier()
	}
	check("after an endpoint change")
}

// knownOf returns copies of the known versions of type typ of the named
// proxies' streams.
func knownOf(t *testing.T, e *env, names []string, typ string) []*knownVersions {
	t.Helper()
	out := make([]*knownVersions, len(names))
	e.ads.mu.RLock()
	defer e.ads.mu.RUnlock()
	for c := range e.ads.conns {
		for i, n := range names {
			if c.proxy.ID != nodeID(n) {
				continue
			}
			c.mu.Lock()
			k := c.watches[typ].known
			k.buckets = append([]*knownBucket(nil), k.buckets...)
			out[i] = &k
			c.mu.Unlock()
		}
	}
	for i, k := range out {
		if k == nil {
			t.Fatalf("no stream for %s", names[i])
		}
	}
	return out
}

// BenchmarkKnownUpdateShared is the known-version bookkeeping of a config
// change on Delta: 1,000 proxies holding the same 40 names (sharing their
// buckets) are each sent a new version of one of them. One op is the
// change to all 1,000.
func BenchmarkKnownUpdateShared(b *testing.B) {
	tables := newKnownTables()
	const proxies, held = 1000, 40
	var set []knownEntry
	for i := range held {
		set = append(set, knownEntry{intern(fmt.Sprintf("8080/svc%d.ns.svc.cluster.local:8080", i)), 1})
	}
	ks := make([]knownVersions, proxies)
	for i := range ks {
		ks[i].update(tables, set, nil)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e := []knownEntry{{set[i%held].name, uint64(i + 2)}}
		for j := range ks {
			ks[j].update(tables, e, nil)
		}
	}
}

// BenchmarkKnownUpdateUnique is the same change where every proxy holds
// its own 10 names (as cpbench's on-demand proxies subscribe to the
// virtual hosts of ten services of their own): no bucket is shared, and
// each update builds and registers a new one. One op is the change to
// all 1,000.
func BenchmarkKnownUpdateUnique(b *testing.B) {
	tables := newKnownTables()
	const proxies, held = 1000, 10
	ks := make([]knownVersions, proxies)
	common := intern("8080/svc0.ns.svc.cluster.local:8080")
	for i := range ks {
		set := []knownEntry{{common, 1}}
		for j := 1; j < held; j++ {
			set = append(set, knownEntry{intern(fmt.Sprintf("8080/svc%d.ns.svc.cluster.local:8080", (i*7+j*97)%proxies)), 1})
		}
		ks[i].update(tables, set, nil)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e := []knownEntry{{common, uint64(i + 2)}}
		for j := range ks {
			ks[j].update(tables, e, nil)
		}
	}
}

// TestKnownSmallBucketsNotShared: a set of fewer than minSharedEntries
// names is sealed in a bucket of its own, not registered, and reads as
// the map it was given, before and after a change.
func TestKnownSmallBucketsNotShared(t *testing.T) {
	tables := newKnownTables()
	var ks [2]knownVersions
	want := map[string]uint64{}
	var set []knownEntry
	for i := range minSharedEntries - 1 {
		n := fmt.Sprintf("outbound|80||svc%d.ns.svc.cluster.local", i)
		set = append(set, knownEntry{intern(n), 1})
		want[n] = 1
	}
	for i := range ks {
		ks[i].update(tables, set, nil)
		checkKnown(t, tables, &ks[i], want, minSharedEntries)
	}
	if b0, b1 := ks[0].buckets[0], ks[1].buckets[0]; b0 == b1 || !b0.sealed || !b1.sealed || len(tables.m) != 0 {
		t.Fatalf("small buckets shared %v, sealed %v %v, %d registered; want own, sealed, none", b0 == b1, b0.sealed, b1.sealed, len(tables.m))
	}
	n := "outbound|80||svc3.ns.svc.cluster.local"
	want[n] = 2
	for i := range ks {
		ks[i].update(tables, []knownEntry{{intern(n), 2}}, nil)
		checkKnown(t, tables, &ks[i], want, minSharedEntries)
	}
}
