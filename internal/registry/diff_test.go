package registry_test

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/registry"
)

// snapshot builds services host0..host(n-1), each with eps endpoints.
func snapshot(n, eps int) *registry.Snapshot {
	s := &registry.Snapshot{Endpoints: map[string][]*registry.Endpoint{}}
	for i := range n {
		host := fmt.Sprintf("host%04d.example.com", i)
		s.Services = append(s.Services, &registry.Service{
			Hostname: host, Namespace: "default", Ports: []registry.Port{{Name: "http", Number: 80, Protocol: registry.HTTP}},
			Labels: map[string]string{"app": host}, Registry: "serviceentry",
		})
		for j := range eps {
			s.Endpoints[host] = append(s.Endpoints[host], &registry.Endpoint{
				Hostname: host, ServicePort: 80, Address: fmt.Sprintf("10.0.%d.%d", i%250, j), Port: 8080,
				Labels: map[string]string{"app": host, "version": "v1"}, Locality: "r/z", ServiceAccount: "spiffe://td/ns/default/sa/x",
			})
		}
	}
	return s
}

// deepCopy rebuilds s with no shared pointers, slices or maps, as a new Build would.
func deepCopy(s *registry.Snapshot) *registry.Snapshot {
	out := &registry.Snapshot{Endpoints: map[string][]*registry.Endpoint{}}
	for _, svc := range s.Services {
		c := *svc
		c.Ports = slices.Clone(svc.Ports)
		c.Labels = maps.Clone(svc.Labels)
		c.Addresses = slices.Clone(svc.Addresses)
		out.Services = append(out.Services, &c)
	}
	for host, eps := range s.Endpoints {
		for _, e := range eps {
			c := *e
			c.Labels = maps.Clone(e.Labels)
			out.Endpoints[host] = append(out.Endpoints[host], &c)
		}
	}
	return out
}

func TestDiff(t *testing.T) {
	const h0, h1 = "host0000.example.com", "host0001.example.com"
	base := snapshot(3, 2)
	tests := []struct {
		name         string
		old, new     *registry.Snapshot
		edit         func(s *registry.Snapshot)
		wantServices bool
		wantHosts    []string
	}{
		{name: "same snapshot", old: base, new: base},
		{name: "both nil"},
		{name: "equal copy", edit: func(s *registry.Snapshot) {}},
		{name: "endpoint address", edit: func(s *registry.Snapshot) { s.Endpoints[h1][0].Address = "10.9.9.9" }, wantHosts: []string{h1}},
		{name: "endpoint weight", edit: func(s *registry.Snapshot) { s.Endpoints[h0][1].Weight = 5 }, wantHosts: []string{h0}},
		{name: "endpoint label value", edit: func(s *registry.Snapshot) { s.Endpoints[h0][0].Labels["version"] = "v2" }, wantHosts: []string{h0}},
		{name: "endpoint locality", edit: func(s *registry.Snapshot) { s.Endpoints[h0][0].Locality = "r/z2" }, wantHosts: []string{h0}},
		{name: "endpoint added", edit: func(s *registry.Snapshot) {
			s.Endpoints[h1] = append(s.Endpoints[h1], &registry.Endpoint{Hostname: h1, Address: "10.1.1.1"})
		}, wantHosts: []string{h1}},
		{name: "endpoints of a host removed", edit: func(s *registry.Snapshot) { delete(s.Endpoints, h0) }, wantHosts: []string{h0}},
		{name: "empty list is no endpoints", edit: func(s *registry.Snapshot) { s.Endpoints["none.example.com"] = nil }},
		{name: "service port protocol", edit: func(s *registry.Snapshot) { s.Services[2].Ports[0].Protocol = registry.TCP }, wantServices: true},
		{name: "service label", edit: func(s *registry.Snapshot) { s.Services[0].Labels["x"] = "y" }, wantServices: true},
		{name: "service export", edit: func(s *registry.Snapshot) { s.Services[0].ExportTo = []string{"."} }, wantServices: true},
		{name: "service resolution", edit: func(s *registry.Snapshot) { s.Services[1].Resolution = registry.ResolutionDNS }, wantServices: true},
		{name: "service removed with its endpoints", edit: func(s *registry.Snapshot) {
			s.Services = s.Services[1:]
			delete(s.Endpoints, h0)
		}, wantServices: true, wantHosts: []string{h0}},
		{name: "from nothing", old: &registry.Snapshot{}, new: base, wantServices: true, wantHosts: []string{h0, h1, "host0002.example.com"}},
		{name: "to nil", old: base, new: nil, wantServices: true, wantHosts: []string{h0, h1, "host0002.example.com"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old, new := tc.old, tc.new
			if tc.edit != nil {
				old, new = base, deepCopy(base)
				tc.edit(new)
			}
			services, hosts := registry.Diff(old, new)
			if services != tc.wantServices {
				t.Errorf("servicesChanged = %v, want %v", services, tc.wantServices)
			}
			if got := slices.Sorted(maps.Keys(hosts)); !slices.Equal(got, tc.wantHosts) {
				t.Errorf("changed endpoint hosts = %v, want %v", got, tc.wantHosts)
			}
			if len(tc.wantHosts) == 0 && hosts != nil {
				t.Error("no change must give a nil map")
			}
		})
	}
}

func BenchmarkDiff(b *testing.B) {
	old := snapshot(1000, 5)
	oneChanged := deepCopy(old)
	oneChanged.Endpoints["host0500.example.com"][2].Address = "10.200.0.1"
	shared := &registry.Snapshot{Services: slices.Clone(old.Services), Endpoints: maps.Clone(old.Endpoints)}
	for _, bc := range []struct {
		name  string
		new   *registry.Snapshot
		hosts int
	}{
		{"1000x5/shared-unchanged", shared, 0},
		{"1000x5/rebuilt-unchanged", deepCopy(old), 0},
		{"1000x5/rebuilt-one-endpoint-changed", oneChanged, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				services, hosts := registry.Diff(old, bc.new)
				if services || len(hosts) != bc.hosts {
					b.Fatalf("diff = %v, %d hosts", services, len(hosts))
				}
			}
		})
	}
}

func TestParseProtocol(t *testing.T) {
	for _, tc := range []struct {
		protocol, name string
		want           registry.Protocol
	}{
		{"HTTP", "", registry.HTTP},
		{"http", "tcp-x", registry.HTTP},
		{"Http2", "", registry.HTTP2},
		{"GRPC", "", registry.GRPC},
		{"GRPC-Web", "", registry.HTTP},
		{"HTTP_PROXY", "", registry.HTTP},
		{"HTTPS", "", registry.HTTPS},
		{"TLS", "", registry.TLS},
		{"TCP", "http-x", registry.TCP},
		{"Mongo", "", registry.Mongo},
		{"REDIS", "", registry.Redis},
		{"MySQL", "", registry.MySQL},
		{"UDP", "", registry.Unknown},
		{"bogus", "http", registry.Unknown},
		{"", "http", registry.HTTP},
		{"", "http-web", registry.HTTP},
		{"", "http2-x", registry.HTTP2},
		{"", "grpc", registry.GRPC},
		{"", "grpc-api", registry.GRPC},
		{"", "grpc-web", registry.HTTP},
		{"", "GRPC-WEB-ui", registry.HTTP},
		{"", "tcp-db", registry.TCP},
		{"", "https", registry.HTTPS},
		{"", "tls-passthrough", registry.TLS},
		{"", "mongo-1", registry.Mongo},
		{"", "web", registry.Unknown},
		{"", "httpx", registry.Unknown},
		{"", "", registry.Unknown},
		{"", "-http", registry.Unknown},
	} {
		if got := registry.PortProtocol(tc.protocol, tc.name); got != tc.want {
			t.Errorf("PortProtocol(%q, %q) = %q, want %q", tc.protocol, tc.name, got, tc.want)
		}
	}
}

// TestChangedHosts: ChangedHosts names exactly the hosts whose services (in
// any namespace) or endpoint lists are not the old snapshot's own, over
// random additions, removals and replacements (some of them by equal values).
func TestChangedHosts(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	old := snapshot(30, 2)
	for step := range 500 {
		next := &registry.Snapshot{Services: slices.Clone(old.Services), Endpoints: maps.Clone(old.Endpoints)}
		touched := map[string]struct{}{}
		for range r.IntN(3) + 1 {
			host := fmt.Sprintf("host%04d.example.com", r.IntN(35))
			touched[host] = struct{}{}
			ns := []string{"default", "other"}[r.IntN(2)]
			switch r.IntN(4) {
			case 0: // a service added or replaced by an equal copy
				s := &registry.Service{Hostname: host, Namespace: ns}
				i, found := slices.BinarySearchFunc(next.Services, s, func(a, b *registry.Service) int {
					return cmp.Or(strings.Compare(a.Hostname, b.Hostname), strings.Compare(a.Namespace, b.Namespace))
				})
				if found {
					c := *next.Services[i]
					next.Services[i] = &c
				} else {
					next.Services = slices.Insert(next.Services, i, s)
				}
			case 1: // a service removed
				if i := slices.IndexFunc(next.Services, func(s *registry.Service) bool { return s.Hostname == host && s.Namespace == ns }); i >= 0 {
					next.Services = slices.Delete(next.Services, i, i+1)
				}
			case 2: // endpoints replaced by an equal copy
				next.Endpoints[host] = slices.Clone(next.Endpoints[host])
			default:
				delete(next.Endpoints, host)
			}
		}
		wantSvc, wantEps := map[string]struct{}{}, map[string]struct{}{}
		byHost := func(s *registry.Snapshot) map[string][]*registry.Service {
			m := map[string][]*registry.Service{}
			for _, svc := range s.Services {
				m[svc.Hostname] = append(m[svc.Hostname], svc)
			}
			return m
		}
		o, n := byHost(old), byHost(next)
		for _, m := range []map[string][]*registry.Service{o, n} {
			for h := range m {
				if !slices.Equal(o[h], n[h]) {
					wantSvc[h] = struct{}{}
				}
			}
		}
		for _, m := range []map[string][]*registry.Endpoint{old.Endpoints, next.Endpoints} {
			for h := range m {
				a, b := old.Endpoints[h], next.Endpoints[h]
				if len(a) != len(b) || len(a) > 0 && &a[0] != &b[0] {
					wantEps[h] = struct{}{}
				}
			}
		}
		svc, eps := registry.ChangedHosts(old, next)
		if !maps.Equal(svc, wantSvc) && len(svc)+len(wantSvc) > 0 || !maps.Equal(eps, wantEps) && len(eps)+len(wantEps) > 0 {
			t.Fatalf("step %d: ChangedHosts = %v, %v; want %v, %v", step, slices.Sorted(maps.Keys(svc)), slices.Sorted(maps.Keys(eps)),
				slices.Sorted(maps.Keys(wantSvc)), slices.Sorted(maps.Keys(wantEps)))
		}
		// With a delta naming the touched hosts, ChangedHosts, Diff and
		// Reuse look at those only and answer as without it.
		withDelta := *next
		withDelta.Delta = registry.NewDelta(old, touched)
		dsvc, deps := registry.ChangedHosts(old, &withDelta)
		if !maps.Equal(dsvc, svc) && len(dsvc)+len(svc) > 0 || !maps.Equal(deps, eps) && len(deps)+len(eps) > 0 {
			t.Fatalf("step %d: ChangedHosts with a delta = %v, %v; want %v, %v", step, dsvc, deps, svc, eps)
		}
		changed, hosts := registry.Diff(old, next)
		dchanged, dhosts := registry.Diff(old, &withDelta)
		if changed != dchanged || !maps.Equal(hosts, dhosts) {
			t.Fatalf("step %d: Diff with a delta = %v, %v; want %v, %v", step, dchanged, dhosts, changed, hosts)
		}
		reused, dreused := registry.Reuse(old, next), *registry.Reuse(old, &withDelta)
		dreused.Delta = nil
		if !slices.Equal(reused.Services, dreused.Services) || !maps.EqualFunc(reused.Endpoints, dreused.Endpoints, func(a, b []*registry.Endpoint) bool {
			return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
		}) {
			t.Fatalf("step %d: Reuse with a delta keeps other pointers than without", step)
		}
		old = next
	}
}
