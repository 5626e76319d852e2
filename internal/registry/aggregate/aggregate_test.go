package aggregate

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/registry"
)

// static is a registry with a fixed, replaceable snapshot.
type static struct {
	name string
	snap *registry.Snapshot
}

func (s *static) Name() string                 { return s.name }
func (s *static) Snapshot() *registry.Snapshot { return s.snap }

func snap(reg string, svcs ...string) *registry.Snapshot {
	s := &registry.Snapshot{Endpoints: map[string][]*registry.Endpoint{}}
	for _, hn := range svcs { // "host/ns"
		host, ns, _ := strings.Cut(hn, "/")
		s.Services = append(s.Services, &registry.Service{Hostname: host, Namespace: ns, Registry: reg})
		if s.Endpoints[host] == nil {
			s.Endpoints[host] = []*registry.Endpoint{{Hostname: host, Address: reg + "-" + host}}
		}
	}
	return s
}

func render(s *registry.Snapshot) string {
	var b strings.Builder
	for _, svc := range s.Services {
		fmt.Fprintf(&b, "%s/%s@%s;", svc.Hostname, svc.Namespace, svc.Registry)
	}
	b.WriteString(" eps:")
	for _, svc := range s.Services {
		if s.Service(svc.Hostname) != svc {
			continue
		}
		for _, e := range s.Endpoints[svc.Hostname] {
			b.WriteString(" " + e.Address)
		}
	}
	return b.String()
}

func TestMerge(t *testing.T) {
	for _, tc := range []struct {
		name  string
		snaps []*registry.Snapshot
		want  string
	}{
		{"nothing", nil, " eps:"},
		{"nil skipped", []*registry.Snapshot{nil, snap("a", "x/n")}, "x/n@a; eps: a-x"},
		{"disjoint, sorted", []*registry.Snapshot{snap("a", "m/n", "z/n"), snap("b", "b/n", "y/n")},
			"b/n@b;m/n@a;y/n@b;z/n@a; eps: b-b a-m b-y a-z"},
		{"first registry wins a host with its endpoints", []*registry.Snapshot{snap("a", "h/ns2"), snap("b", "h/ns1", "o/ns1")},
			"h/ns2@a;o/ns1@b; eps: a-h b-o"},
		{"a registry keeps all namespaces of its host", []*registry.Snapshot{snap("a", "h/ns1", "h/ns3"), snap("b", "h/ns2")},
			"h/ns1@a;h/ns3@a; eps: a-h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(Merge(tc.snaps...)); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestAggregateSnapshotCaching(t *testing.T) {
	a := &static{"a", snap("a", "x/n")}
	b := &static{"b", snap("b", "y/n")}
	agg := New(a, b)
	var _ registry.Registry = agg
	first := agg.Snapshot()
	if got := render(first); got != "x/n@a;y/n@b; eps: a-x b-y" {
		t.Fatalf("merged = %s", got)
	}
	if agg.Snapshot() != first {
		t.Error("unchanged registries: merged again")
	}
	b.snap = snap("b", "x/n", "z/n")
	second := agg.Snapshot()
	if second == first {
		t.Fatal("changed registry: stale merge")
	}
	if got := render(second); got != "x/n@a;z/n@b; eps: a-x b-z" {
		t.Errorf("merged = %s", got)
	}
	if one := New(a); one.Snapshot() != a.snap {
		t.Error("a single registry's snapshot is not returned as is")
	}
}

func TestConflicts(t *testing.T) {
	got := Conflicts([]string{"serviceentry", "consul", "eureka"},
		snap("serviceentry", "a/n", "b/n1", "b/n2"), nil, snap("eureka", "a/x", "b/y", "c/z"))
	want := []Conflict{{"a", "serviceentry", []string{"eureka"}}, {"b", "serviceentry", []string{"eureka"}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	got = Conflicts([]string{"a", "b", "c"}, snap("a", "h/n"), snap("b", "h/n"), snap("c", "h/n", "i/n"))
	if fmt.Sprint(got) != fmt.Sprint([]Conflict{{"h", "a", []string{"b", "c"}}}) {
		t.Errorf("three registries: %v", got)
	}
}
