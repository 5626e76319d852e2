package serviceentry

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/registry"
)

// randomMesh makes random ServiceEntries and WorkloadEntries over a few
// namespaces, hosts and labels, so that hosts repeat across entries and
// namespaces and selectors overlap.
type randomMesh struct {
	rng     *rand.Rand
	res     map[config.Key]config.Resource
	changed map[config.Key]bool // since the last snapshot
	snap    *config.Snapshot    // the last snapshot
}

func (m *randomMesh) pick(xs ...string) string { return xs[m.rng.IntN(len(xs))] }

func (m *randomMesh) serviceEntry(ns, name string) config.Resource {
	se := &networking.ServiceEntry{
		Resolution: []networking.ServiceEntry_Resolution{networking.ServiceEntry_STATIC, networking.ServiceEntry_DNS, networking.ServiceEntry_NONE}[m.rng.IntN(3)],
		Location:   networking.ServiceEntry_Location(m.rng.IntN(2)),
	}
	for range 1 + m.rng.IntN(2) {
		se.Hosts = append(se.Hosts, fmt.Sprintf("h%d.example.com", m.rng.IntN(6)))
	}
	se.Ports = append(se.Ports, &networking.ServicePort{Number: 80, Name: "http", Protocol: "HTTP", TargetPort: uint32(m.rng.IntN(2)) * 8080})
	if m.rng.IntN(2) == 0 {
		se.Ports = append(se.Ports, &networking.ServicePort{Number: 443, Name: "tls", Protocol: "TLS"})
	}
	switch m.rng.IntN(4) {
	case 0: // no selector
	case 1:
		se.WorkloadSelector = &networking.WorkloadSelector{}
	default:
		se.WorkloadSelector = &networking.WorkloadSelector{Labels: map[string]string{"app": m.pick("a", "b", "c")}}
		if m.rng.IntN(3) == 0 {
			se.WorkloadSelector.Labels["version"] = m.pick("v1", "v2")
		}
	}
	if se.WorkloadSelector == nil && m.rng.IntN(2) == 0 {
		se.Endpoints = []*networking.WorkloadEntry{{Address: fmt.Sprintf("10.9.0.%d", m.rng.IntN(9)), ServiceAccount: m.pick("", "sa")}}
	}
	return config.Resource{Meta: config.Meta{Kind: config.ServiceEntry, Namespace: ns, Name: name}, Spec: se}
}

func (m *randomMesh) workloadEntry(ns, name string) config.Resource {
	we := &networking.WorkloadEntry{
		Address:        fmt.Sprintf("10.0.%d.%d", m.rng.IntN(3), m.rng.IntN(9)),
		Labels:         map[string]string{"app": m.pick("a", "b", "c"), "version": m.pick("v1", "v2")},
		ServiceAccount: m.pick("", "sa1", "sa2"),
		Locality:       m.pick("", "r/z1"),
		Weight:         uint32(m.rng.IntN(3)),
	}
	if m.rng.IntN(3) == 0 {
		we.Ports = map[string]uint32{"http": 9090}
	}
	r := config.Resource{Meta: config.Meta{Kind: config.WorkloadEntry, Namespace: ns, Name: name}, Spec: we}
	if m.rng.IntN(4) == 0 {
		r.Labels = map[string]string{"app": m.pick("a", "b", "c")} // metadata labels override
	}
	return r
}

// change adds, replaces or removes a few resources.
func (m *randomMesh) change() {
	for range 1 + m.rng.IntN(3) {
		ns := fmt.Sprintf("ns%d", m.rng.IntN(3))
		if m.rng.IntN(2) == 0 {
			k := config.Key{Kind: config.ServiceEntry, Namespace: ns, Name: fmt.Sprintf("se%d", m.rng.IntN(8))}
			if _, ok := m.res[k]; ok && m.rng.IntN(3) == 0 {
				delete(m.res, k)
			} else {
				m.res[k] = m.serviceEntry(ns, k.Name)
			}
			m.changed[k] = true
		} else {
			k := config.Key{Kind: config.WorkloadEntry, Namespace: ns, Name: fmt.Sprintf("we%d", m.rng.IntN(12))}
			if _, ok := m.res[k]; ok && m.rng.IntN(3) == 0 {
				delete(m.res, k)
			} else {
				m.res[k] = m.workloadEntry(ns, k.Name)
			}
			m.changed[k] = true
		}
	}
}

func (m *randomMesh) snapshot() *config.Snapshot {
	rs := make([]config.Resource, 0, len(m.res))
	for _, r := range m.res {
		rs = append(rs, r)
	}
	m.snap, m.changed = config.NewSnapshot(rs), map[config.Key]bool{}
	return m.snap
}

// update is snapshot made as the config store makes it: the last snapshot
// updated with the changed keys, so that the namespaces no change touched
// keep their lists (config.SameResources) and the Builder skips them.
func (m *randomMesh) update() *config.Snapshot {
	var put []config.Resource
	var del []config.Key
	for k := range m.changed {
		if r, ok := m.res[k]; ok {
			put = append(put, r)
		} else {
			del = append(del, k)
		}
	}
	m.snap, m.changed = m.snap.Update(put, del), map[config.Key]bool{}
	return m.snap
}

// TestBuilderMatchesFullBuild applies random sequences of changes and holds
// the incremental Builder to Build of the whole configuration (the oracle)
// after each (TestBuilderRebuildsOnlyTouchedServices checks what it keeps).
func TestBuilderMatchesFullBuild(t *testing.T) {
	for seed := range uint64(60) {
		checkBuilderSequence(t, seed, 40)
	}
}

// FuzzBuilderSequence runs checkBuilderSequence on fuzzed seeds.
func FuzzBuilderSequence(f *testing.F) {
	f.Add(uint64(0), uint8(10))
	f.Add(uint64(12345), uint8(60))
	f.Fuzz(func(t *testing.T, seed uint64, steps uint8) {
		checkBuilderSequence(t, seed, int(steps))
	})
}

func checkBuilderSequence(t *testing.T, seed uint64, steps int) {
	t.Helper()
	m := &randomMesh{rng: rand.New(rand.NewPCG(seed, 1)), res: map[config.Key]config.Resource{}, changed: map[config.Key]bool{}}
	for range 20 {
		m.change()
	}
	var b Builder
	opts := Options{TrustDomain: "td"}
	b.Build(m.snapshot(), opts)
	for step := range steps {
		m.change()
		cfg := m.update()
		if seed%2 == 0 {
			cfg = m.snapshot() // unrelated to the last: nothing shared
		}
		prev := b.snap
		got, want := b.Build(cfg, opts), Build(cfg, opts)
		checkDelta(t, prev, got)
		if !reflect.DeepEqual(withoutDelta(got), want) {
			t.Fatalf("seed %d step %d: incremental differs from a full build:\n%s\nwant\n%s", seed, step, strings.Join(render(got), "\n"), strings.Join(render(want), "\n"))
		}
	}
}

// TestBuilderRebuildsOnlyTouchedServices: at 200 services, one changed
// ServiceEntry and one moved WorkloadEntry rebuild their own services only;
// every other service and endpoint list is the previous snapshot's.
func TestBuilderRebuildsOnlyTouchedServices(t *testing.T) {
	var rs []config.Resource
	for i := range 200 {
		ns := fmt.Sprintf("ns%d", i%4)
		name := fmt.Sprintf("svc%d", i)
		rs = append(rs, config.Resource{Meta: config.Meta{Kind: config.ServiceEntry, Namespace: ns, Name: name}, Spec: &networking.ServiceEntry{
			Hosts: []string{name + ".example.com"}, Resolution: networking.ServiceEntry_STATIC,
			Ports:            []*networking.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}},
			WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": name}},
		}})
		for j := range 3 {
			rs = append(rs, config.Resource{Meta: config.Meta{Kind: config.WorkloadEntry, Namespace: ns, Name: fmt.Sprintf("%s-%d", name, j)}, Spec: &networking.WorkloadEntry{
				Address: fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j+1), Labels: map[string]string{"app": name},
			}})
		}
	}
	cfg := config.NewSnapshot(rs)
	var b Builder
	first := b.Build(cfg, Options{})
	// svc7 is exported to its namespace only; svc9's endpoint 1 moves.
	se := rs[7*4]
	se7 := proto.Clone(se.Spec).(*networking.ServiceEntry)
	se7.ExportTo = []string{"."}
	we := rs[9*4+2]
	we9 := &networking.WorkloadEntry{Address: "10.200.0.1", Labels: map[string]string{"app": "svc9"}}
	next := cfg.Update([]config.Resource{{Meta: se.Meta, Spec: se7}, {Meta: we.Meta, Spec: we9}}, nil)
	got := b.Build(next, Options{})
	if want := Build(next, Options{}); !reflect.DeepEqual(withoutDelta(got), want) {
		t.Fatal("incremental differs from a full build")
	}
	// svc9's service was rebuilt equal: it keeps its pointer.
	touched := map[string]bool{"svc7.example.com": true}
	for i, s := range got.Services {
		if same := s == first.Services[i]; same == touched[s.Hostname] {
			t.Errorf("%s: same pointer %v, touched %v", s.Hostname, same, touched[s.Hostname])
		}
	}
	touched = map[string]bool{"svc9.example.com": true}
	for h, eps := range got.Endpoints {
		if same := &eps[0] == &first.Endpoints[h][0]; same == touched[h] {
			t.Errorf("endpoints of %s: same list %v", h, same)
		}
	}
	if _, changed := registry.Diff(first, got); len(changed) != 1 {
		t.Errorf("Diff: endpoints of %v changed, want svc9's only", changed)
	}
}

func withoutDelta(s *registry.Snapshot) *registry.Snapshot {
	c := *s
	c.Delta = nil
	return &c
}

// checkDelta: every host outside got's delta has prev's own services and
// endpoint list.
func checkDelta(t *testing.T, prev, got *registry.Snapshot) {
	t.Helper()
	if got == prev || got.Delta == nil {
		return
	}
	svc, eps := registry.ChangedHosts(withoutDelta(prev), withoutDelta(got))
	for _, m := range []map[string]struct{}{svc, eps} {
		for h := range m {
			if _, ok := got.Delta.Hosts[h]; !ok {
				t.Fatalf("%s changed but is not in the delta %v", h, got.Delta.Hosts)
			}
		}
	}
}
