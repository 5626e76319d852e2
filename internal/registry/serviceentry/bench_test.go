package serviceentry

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/registry"
)

// benchConfig is services ServiceEntries of one HTTP port with perService
// endpoints each: inline, or WorkloadEntries picked by a selector.
func benchConfig(services, perService int, selector bool) *config.Snapshot {
	var rs []config.Resource
	for i := range services {
		ns := fmt.Sprintf("ns%d", i%10)
		se := &networking.ServiceEntry{
			Hosts:      []string{fmt.Sprintf("svc%d.%s.svc.cluster.local", i, ns)},
			Ports:      []*networking.ServicePort{{Number: 8080, Name: "http-api"}},
			Location:   networking.ServiceEntry_MESH_INTERNAL,
			Resolution: networking.ServiceEntry_STATIC,
		}
		labels := map[string]string{"app": fmt.Sprintf("app%d", i)}
		for j := range perService {
			we := &networking.WorkloadEntry{
				Address:        fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j),
				Labels:         labels,
				ServiceAccount: "sa",
				Locality:       "region/zone",
			}
			if selector {
				rs = append(rs, config.Resource{Meta: config.Meta{Kind: config.WorkloadEntry, Namespace: ns, Name: fmt.Sprintf("we-%d-%d", i, j)}, Spec: we})
			} else {
				se.Endpoints = append(se.Endpoints, we)
			}
		}
		if selector {
			se.WorkloadSelector = &networking.WorkloadSelector{Labels: labels}
		}
		rs = append(rs, config.Resource{Meta: config.Meta{Kind: config.ServiceEntry, Namespace: ns, Name: fmt.Sprintf("se%d", i)}, Spec: se})
	}
	return config.NewSnapshot(rs)
}

func BenchmarkBuild(b *testing.B) {
	for _, bc := range []struct {
		name     string
		selector bool
	}{{"inline", false}, {"selector", true}} {
		cfg := benchConfig(1000, 5, bc.selector)
		b.Run(fmt.Sprintf("1000x5/%s", bc.name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s := Build(cfg, Options{})
				if len(s.Services) != 1000 || len(s.Endpoints["svc0.ns0.svc.cluster.local"]) != 5 {
					b.Fatalf("%d services", len(s.Services))
				}
			}
		})
	}
}

// BenchmarkDiffAfterRebuild measures registry.Diff as the control plane runs
// it: one WorkloadEntry changed, the registry rebuilt from a config snapshot
// whose other resources are the same stored objects.
func BenchmarkDiffAfterRebuild(b *testing.B) {
	cfg := benchConfig(1000, 5, true)
	rs := cfg.All()
	for i, r := range rs {
		if r.Kind == config.WorkloadEntry && r.Name == "we-500-2" {
			we := proto.Clone(r.Spec).(*networking.WorkloadEntry)
			we.Address = "10.250.0.1"
			rs[i].Spec = we
		}
	}
	old, new := Build(cfg, Options{}), Build(config.NewSnapshot(rs), Options{})
	b.ReportAllocs()
	for b.Loop() {
		services, hosts := registry.Diff(old, new)
		if services || len(hosts) != 1 {
			b.Fatalf("diff = %v, %d hosts", services, len(hosts))
		}
	}
}

// BenchmarkBuilderOneChange is what the control plane pays per change to
// one WorkloadEntry at 1,000 and 10,000 services x 5 endpoints: the
// incremental Builder (compare BenchmarkBuild's full rebuild; "full" runs
// Build on the same changes).
func BenchmarkBuilderOneChange(b *testing.B) {
	for _, services := range []int{1000, 10000} {
		cfg := benchConfig(services, 5, true)
		var alt [2]*config.Snapshot
		for k := range alt {
			r, _ := cfg.Get(config.Key{Kind: config.WorkloadEntry, Namespace: "ns0", Name: "we-500-2"})
			we := proto.Clone(r.Spec).(*networking.WorkloadEntry)
			we.Address = fmt.Sprintf("10.250.0.%d", k+1)
			alt[k] = cfg.Update([]config.Resource{{Meta: r.Meta, Spec: we}}, nil)
		}
		for _, mode := range []string{"incremental", "full"} {
			b.Run(fmt.Sprintf("%dx5/%s", services, mode), func(b *testing.B) {
				var bl Builder
				bl.Build(cfg, Options{})
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					var s *registry.Snapshot
					if mode == "full" {
						s = Build(alt[i%2], Options{})
					} else {
						s = bl.Build(alt[i%2], Options{})
					}
					if len(s.Services) != services {
						b.Fatalf("%d services", len(s.Services))
					}
				}
			})
		}
	}
}
