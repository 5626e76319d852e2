package config

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSnapshotUpdateMatchesNewSnapshot applies random puts and deletes with
// Update and checks every step against NewSnapshot of the same set.
func TestSnapshotUpdateMatchesNewSnapshot(t *testing.T) {
	kinds := []Kind{ServiceEntry, WorkloadEntry, VirtualService}
	res := func(k Kind, ns, name string, gen int) Resource {
		r := Resource{}
		r.Kind, r.Namespace, r.Name = k, ns, name
		r.Labels = map[string]string{"gen": fmt.Sprint(gen)}
		return r
	}
	rng := rand.New(rand.NewPCG(1, 2))
	cur := map[Key]Resource{}
	snap := NewSnapshot(nil)
	for step := range 300 {
		var put []Resource
		var del []Key
		for range rng.IntN(6) + 40*(step%50/49) { // now and then many at once
			r := res(kinds[rng.IntN(len(kinds))], fmt.Sprintf("ns%d", rng.IntN(3)), fmt.Sprintf("r%d", rng.IntN(40)), step)
			if rng.IntN(3) == 0 {
				del = append(del, r.Key())
			} else {
				put = append(put, r)
			}
		}
		for _, k := range del {
			delete(cur, k)
		}
		for _, r := range put {
			cur[r.Key()] = r
		}
		old := snap
		oldAll := old.All()
		snap = snap.Update(put, del)
		var all []Resource
		for _, r := range cur {
			all = append(all, r)
		}
		want := NewSnapshot(all)
		same := func(a, b Resource) bool { return a.Key() == b.Key() && a.Labels["gen"] == b.Labels["gen"] }
		if !slices.EqualFunc(snap.All(), want.All(), same) || snap.Len() != want.Len() {
			t.Fatalf("step %d: put %d del %d: Update gives %d resources, NewSnapshot %d", step, len(put), len(del), snap.Len(), want.Len())
		}
		for _, k := range kinds {
			if !slices.EqualFunc(snap.List(k), want.List(k), same) {
				t.Fatalf("step %d: list of %s differs", step, k)
			}
		}
		checkByNamespace(t, step, old, snap, put, del)
		for _, r := range want.All() {
			if got, ok := snap.Get(r.Key()); !ok || !same(got, r) {
				t.Fatalf("step %d: Get(%v) = %v, %v", step, r.Key(), got.Labels, ok)
			}
		}
		for _, k := range del {
			if _, put := cur[k]; !put {
				if r, ok := snap.Get(k); ok {
					t.Fatalf("step %d: Get(%v) of a deleted key = %v", step, k, r.Labels)
				}
			}
		}
		if !slices.EqualFunc(old.All(), oldAll, same) {
			t.Fatalf("step %d: Update changed the old snapshot", step)
		}
	}
}

// checkByNamespace checks that next's namespaces concatenate to its lists,
// none empty, and that a namespace neither put nor del names is prev's own
// slice (what the registry builder's skip relies on).
func checkByNamespace(t *testing.T, step int, prev, next *Snapshot, put []Resource, del []Key) {
	t.Helper()
	touched := map[Kind]map[string]bool{}
	note := func(k Kind, ns string) {
		if touched[k] == nil {
			touched[k] = map[string]bool{}
		}
		touched[k][ns] = true
	}
	for _, r := range put {
		note(r.Kind, r.Namespace)
	}
	for _, k := range del {
		note(k.Kind, k.Namespace)
	}
	for _, k := range next.Kinds() {
		var cat []Resource
		for _, g := range next.ByNamespace(k) {
			if len(g.Resources) == 0 {
				t.Fatalf("step %d: %s: empty namespace %s", step, k, g.Namespace)
			}
			cat = append(cat, g.Resources...)
			if !touched[k][g.Namespace] && !SameResources(g.Resources, InNamespace(prev.ByNamespace(k), g.Namespace)) {
				t.Fatalf("step %d: %s: untouched namespace %s copied", step, k, g.Namespace)
			}
		}
		if !slices.EqualFunc(cat, next.List(k), func(a, b Resource) bool { return a.Key() == b.Key() }) {
			t.Fatalf("step %d: %s: namespaces do not concatenate to the list", step, k)
		}
	}
}

func TestChangedNamespaces(t *testing.T) {
	mk := func(ns string, names ...string) NamespaceResources {
		out := NamespaceResources{Namespace: ns}
		for _, n := range names {
			r := Resource{}
			r.Namespace, r.Name = ns, n
			out.Resources = append(out.Resources, r)
		}
		return out
	}
	shared := mk("b", "x")
	old := []NamespaceResources{mk("a", "1"), shared, mk("c", "2")}
	cur := []NamespaceResources{shared, mk("c", "2"), mk("d", "3")}
	var got []string
	ChangedNamespaces(old, cur, func(o, n []Resource) {
		s := ""
		for _, r := range o {
			s += "-" + r.Namespace + "/" + r.Name
		}
		for _, r := range n {
			s += "+" + r.Namespace + "/" + r.Name
		}
		got = append(got, s)
	})
	// a: gone; b: the same list, skipped; c: equal contents in another list, visited; d: new.
	want := []string{"-a/1", "-c/2+c/2", "+d/3"}
	if !slices.Equal(got, want) {
		t.Fatalf("ChangedNamespaces visited %q, want %q", got, want)
	}
}
