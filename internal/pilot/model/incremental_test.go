package model

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/registry"
)

// TestNextPushContextMatchesNew is the differential test of the incremental
// push context: over random sequences of changes to VirtualServices,
// DestinationRules, Gateways, Sidecars, services and endpoint lists (and
// pushes that change nothing, and registry snapshots rebuilt whole), the
// push context NextPushContext derives from the previous one has indexes and
// sidecar scopes deep-equal to those NewPushContext builds from scratch.
func TestNextPushContextMatchesNew(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			w := newRandomMesh(r)
			mesh := DefaultMeshConfig()
			cfg, reg := w.config(), w.registry()
			pc := NextPushContext(nil, "0", mesh, cfg, reg)
			for step := range 30 {
				what := w.change(r, &cfg, &reg)
				next := NextPushContext(pc, fmt.Sprint(step+1), mesh, cfg, reg)
				fresh := NewPushContext(fmt.Sprint(step+1), mesh, cfg, reg)
				if d := indexDiff(next, fresh, w.proxies()); d != "" {
					t.Fatalf("step %d (%s): incremental push context differs from a rebuilt one: %s", step, what, d)
				}
				pc = next
			}
		})
	}
}

// indexDiff compares what generators can read of two push contexts.
func indexDiff(a, b *PushContext, proxies []*Proxy) string {
	x, y := a.ix(), b.ix()
	for _, c := range []struct {
		name string
		a, b any
	}{
		{"meshVS", x.meshVS, y.meshVS},
		{"gatewayVS", x.gatewayVS, y.gatewayVS},
		{"destination rules", x.drByNS, y.drByNS},
		{"gateways", x.gateways, y.gateways},
		{"sidecars", x.sidecars, y.sidecars},
		{"services", plain(x.services), plain(y.services)},
		{"endpoints", plain(x.endpoints), plain(y.endpoints)},
		{"by address", plain(x.byAddress), plain(y.byAddress)},
		{"networks", x.networks, y.networks},
	} {
		if !reflect.DeepEqual(c.a, c.b) {
			return fmt.Sprintf("%s:\n%v\nwant\n%v", c.name, c.a, c.b)
		}
	}
	if x.services.len() != len(plain(x.services)) || x.endpoints.len() != len(plain(x.endpoints)) || x.byAddress.len() != len(plain(x.byAddress)) {
		return "a cowMap's count is wrong"
	}
	for _, p := range proxies {
		if s, f := a.Scope(p), b.Scope(p); !reflect.DeepEqual(s, f) {
			return fmt.Sprintf("scope of %s/%v:\n%+v\nwant\n%+v", p.Namespace, p.Labels, s, f)
		}
	}
	return ""
}

func plain[K comparable, V any](m *cowMap[K, V]) map[K]V {
	out := map[K]V{}
	m.all(func(k K, v V) { out[k] = v })
	return out
}

// randomMesh is a small mesh whose names collide often: hosts in several
// namespaces, endpoints of several hosts at one address.
type randomMesh struct {
	namespaces []string
	hosts      []string
	n          int // a counter that makes every new value distinct
}

func newRandomMesh(r *rand.Rand) *randomMesh {
	w := &randomMesh{namespaces: []string{"a", "b", "c"}}
	for i := range 12 {
		w.hosts = append(w.hosts, fmt.Sprintf("h%d.%s.svc.cluster.local", i, w.namespaces[i%3]))
	}
	return w
}

func (w *randomMesh) pick(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }

func (w *randomMesh) proxies() []*Proxy {
	var out []*Proxy
	for _, ns := range w.namespaces {
		out = append(out,
			&Proxy{Type: SidecarProxy, Namespace: ns, Labels: map[string]string{"app": "x"}},
			&Proxy{Type: SidecarProxy, Namespace: ns, Labels: map[string]string{"app": "y"}},
			&Proxy{Type: Router, Namespace: ns})
	}
	return out
}

func (w *randomMesh) resource(r *rand.Rand) config.Resource {
	w.n++
	ns := w.pick(r, w.namespaces)
	name := fmt.Sprintf("r%d", r.IntN(4))
	host := w.pick(r, w.hosts)
	if r.IntN(4) == 0 {
		host = "*." + w.pick(r, w.namespaces) + ".svc.cluster.local"
	}
	var export []string
	if r.IntN(3) == 0 {
		export = []string{w.pick(r, []string{".", "*", "a", "b"})}
	}
	switch r.IntN(4) {
	case 0:
		vs := &networking.VirtualService{Hosts: []string{host}, ExportTo: export,
			Http: []*networking.HTTPRoute{{Name: fmt.Sprint(w.n), Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: host}}}}}}
		if r.IntN(3) == 0 {
			vs.Gateways = []string{w.pick(r, []string{"mesh", "gw", "a/gw"})}
		}
		return randomRes(config.VirtualService, ns, name, vs)
	case 1:
		return randomRes(config.DestinationRule, ns, name, &networking.DestinationRule{Host: host, ExportTo: export,
			TrafficPolicy: &networking.TrafficPolicy{Tls: &networking.ClientTLSSettings{Sni: fmt.Sprint(w.n)}}})
	case 2:
		return randomRes(config.Gateway, ns, name, &networking.Gateway{Selector: map[string]string{"istio": fmt.Sprint(w.n)}})
	default:
		sc := &networking.Sidecar{Egress: []*networking.IstioEgressListener{{Hosts: []string{w.pick(r, []string{"./*", "*/*", "a/*", "~/*"}), "*/" + host}}}}
		if r.IntN(2) == 0 {
			sc.WorkloadSelector = &networking.WorkloadSelector{Labels: map[string]string{"app": w.pick(r, []string{"x", "y"})}}
		}
		if r.IntN(3) == 0 {
			sc.Egress = append(sc.Egress, &networking.IstioEgressListener{Port: &networking.SidecarPort{Number: 9000 + uint32(r.IntN(3)), Protocol: "HTTP", Name: "http"}, Hosts: []string{"*/" + host}})
		}
		return randomRes(config.Sidecar, ns, name, sc)
	}
}

func (w *randomMesh) config() *config.Snapshot { return config.NewSnapshot(nil) }

func (w *randomMesh) service(r *rand.Rand, host, ns string) *registry.Service {
	w.n++
	s := &registry.Service{Hostname: host, Namespace: ns, Addresses: []string{fmt.Sprintf("240.0.0.%d", w.n%250)},
		Ports: []registry.Port{{Name: "http", Number: 8080, Protocol: registry.HTTP}}, Registry: "test"}
	if r.IntN(4) == 0 {
		s.ExportTo = []string{w.pick(r, []string{".", "a", "~"})}
	}
	return s
}

func (w *randomMesh) endpoints(r *rand.Rand, host string) []*registry.Endpoint {
	var out []*registry.Endpoint
	for range r.IntN(4) {
		w.n++
		out = append(out, &registry.Endpoint{Hostname: host, ServicePort: 8080 + uint32(r.IntN(2)), Address: fmt.Sprintf("10.0.0.%d", r.IntN(6)),
			Port: 80 + uint32(r.IntN(2)), Labels: map[string]string{"n": fmt.Sprint(w.n)}})
	}
	return out
}

func (w *randomMesh) registry() *registry.Snapshot {
	return &registry.Snapshot{Endpoints: map[string][]*registry.Endpoint{}}
}

func sortServices(s []*registry.Service) {
	slices.SortFunc(s, func(a, b *registry.Service) int {
		if c := strings.Compare(a.Hostname, b.Hostname); c != 0 {
			return c
		}
		return strings.Compare(a.Namespace, b.Namespace)
	})
}

// change applies one random change to cfg or reg (new snapshots; the old
// ones are not modified) and says what it did.
func (w *randomMesh) change(r *rand.Rand, cfg **config.Snapshot, reg **registry.Snapshot) string {
	old := *reg
	next := &registry.Snapshot{Services: slices.Clone(old.Services), Endpoints: make(map[string][]*registry.Endpoint, len(old.Endpoints))}
	for h, eps := range old.Endpoints {
		next.Endpoints[h] = eps
	}
	switch k := r.IntN(9); k {
	case 0, 1:
		rs := w.resource(r)
		*cfg = (*cfg).Update([]config.Resource{rs}, nil)
		return "put " + rs.Key().String()
	case 2:
		all := (*cfg).All()
		if len(all) == 0 {
			return "nothing"
		}
		k := all[r.IntN(len(all))].Key()
		*cfg = (*cfg).Update(nil, []config.Key{k})
		return "delete " + k.String()
	case 3: // a service added or replaced
		host := w.pick(r, w.hosts)
		ns := w.pick(r, w.namespaces)
		s := w.service(r, host, ns)
		i := slices.IndexFunc(next.Services, func(x *registry.Service) bool { return x.Hostname == host && x.Namespace == ns })
		if i >= 0 {
			next.Services[i] = s
		} else {
			next.Services = append(next.Services, s)
			sortServices(next.Services)
		}
		*reg = next
		return "service " + ns + "/" + host
	case 4: // a service removed, with its endpoints when it was the host's last
		if len(next.Services) == 0 {
			return "nothing"
		}
		i := r.IntN(len(next.Services))
		host := next.Services[i].Hostname
		next.Services = slices.Delete(next.Services, i, i+1)
		if !slices.ContainsFunc(next.Services, func(x *registry.Service) bool { return x.Hostname == host }) {
			delete(next.Endpoints, host)
		}
		*reg = next
		return "remove service " + host
	case 5, 6: // a host's endpoints replaced
		host := w.pick(r, w.hosts)
		if eps := w.endpoints(r, host); len(eps) > 0 {
			next.Endpoints[host] = eps
		} else {
			delete(next.Endpoints, host)
		}
		*reg = next
		return "endpoints " + host
	case 7: // everything rebuilt: equal values, new pointers
		for i, s := range next.Services {
			c := *s
			next.Services[i] = &c
		}
		for h, eps := range next.Endpoints {
			next.Endpoints[h] = slices.Clone(eps)
		}
		*reg = next
		return "rebuilt registry"
	default:
		return "no change"
	}
}

func randomRes(kind config.Kind, ns, name string, spec proto.Message) config.Resource {
	return config.Resource{Meta: config.Meta{Kind: kind, Namespace: ns, Name: name}, Spec: spec}
}
