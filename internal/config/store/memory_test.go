package store

import (
	"slices"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
)

func resource(name, host string) config.Resource {
	return config.Resource{
		Meta: config.Meta{Kind: config.ServiceEntry, APIVersion: "networking.istio.io/v1", Name: name, Namespace: "default"},
		Spec: &networking.ServiceEntry{Hosts: []string{host}},
	}
}

func TestMemory(t *testing.T) {
	m := NewMemory()
	var calls []*config.Snapshot
	m.OnChange(func(old, new *config.Snapshot) {
		if old == new {
			t.Error("OnChange with the same snapshot")
		}
		calls = append(calls, new)
	})
	steps := []struct {
		name      string
		do        func()
		wantCall  bool
		wantHosts map[string]string // name -> host
		conflicts int
	}{
		{"set a", func() { m.Set("a", []config.Resource{resource("x", "x.a")}) }, true, map[string]string{"x": "x.a"}, 0},
		{"set a again, equal", func() { m.Set("a", []config.Resource{resource("x", "x.a")}) }, false, map[string]string{"x": "x.a"}, 0},
		{"set b, loses to a", func() { m.Set("b", []config.Resource{resource("x", "x.b"), resource("y", "y.b")}) }, true, map[string]string{"x": "x.a", "y": "y.b"}, 1},
		{"edit a", func() { m.Set("a", []config.Resource{resource("x", "x.a2")}) }, true, map[string]string{"x": "x.a2", "y": "y.b"}, 1},
		{"delete a, b takes over", func() { m.Delete("a") }, true, map[string]string{"x": "x.b", "y": "y.b"}, 0},
		{"delete missing", func() { m.Delete("nope") }, false, map[string]string{"x": "x.b", "y": "y.b"}, 0},
		{"empty b", func() { m.Set("b", nil) }, true, map[string]string{}, 0},
	}
	for _, st := range steps {
		before := len(calls)
		st.do()
		if got := len(calls) > before; got != st.wantCall {
			t.Errorf("%s: OnChange called = %v, want %v", st.name, got, st.wantCall)
		}
		s := m.Snapshot()
		if s.Len() != len(st.wantHosts) {
			t.Errorf("%s: %d resources, want %d", st.name, s.Len(), len(st.wantHosts))
		}
		for name, host := range st.wantHosts {
			if got := hostOf(s, name); got != host {
				t.Errorf("%s: %s host = %q, want %q", st.name, name, got, host)
			}
		}
		if got := len(m.Conflicts()); got != st.conflicts {
			t.Errorf("%s: %d conflicts, want %d", st.name, got, st.conflicts)
		}
		if st.wantCall && calls[len(calls)-1] != s {
			t.Errorf("%s: OnChange got a snapshot other than the current one", st.name)
		}
	}
}

func TestMergeSourceChangeIsAChange(t *testing.T) {
	a := resource("x", "h")
	b := a
	b.Source = config.Source{File: "f", Line: 3}
	if snapshotsEqual(config.NewSnapshot([]config.Resource{a}), config.NewSnapshot([]config.Resource{b})) {
		t.Error("snapshots differing in source compare equal")
	}
	c := a
	c.Spec = &networking.ServiceEntry{Hosts: []string{"h"}} // equal content, other message
	if !snapshotsEqual(config.NewSnapshot([]config.Resource{a}), config.NewSnapshot([]config.Resource{c})) {
		t.Error("equal snapshots compare unequal")
	}
	d := a
	d.Labels = map[string]string{"k": "v"}
	if snapshotsEqual(config.NewSnapshot([]config.Resource{a}), config.NewSnapshot([]config.Resource{d})) {
		t.Error("snapshots differing in labels compare equal")
	}
}

func TestMergeProvided(t *testing.T) {
	m := merge(map[string][]config.Resource{
		"b": {resource("z", "1"), resource("a", "2")},
		"a": {resource("z", "3")},
	})
	if got := keyStrings(m.provided["b"]); !slices.Equal(got, []string{"ServiceEntry/default/a"}) {
		t.Errorf("b provides %v", got)
	}
	if got := keyStrings(m.provided["a"]); !slices.Equal(got, []string{"ServiceEntry/default/z"}) {
		t.Errorf("a provides %v", got)
	}
}
