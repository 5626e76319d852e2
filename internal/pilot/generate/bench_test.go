package generate

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

// bigMesh is 1,000 HTTP services in 10 namespaces with 5 endpoints each, and
// a handful of VirtualServices and DestinationRules.
func bigMesh() *model.PushContext {
	reg := &registry.Snapshot{Endpoints: map[string][]*registry.Endpoint{}}
	for i := 0; i < 1000; i++ {
		ns := fmt.Sprintf("ns%d", i%10)
		host := fmt.Sprintf("svc%04d.%s.svc.cluster.local", i, ns)
		reg.Services = append(reg.Services, &registry.Service{
			Hostname: host, Namespace: ns, Addresses: []string{fmt.Sprintf("10.%d.%d.1", i/250, i%250)},
			Ports: []registry.Port{{Name: "http", Number: 8080, Protocol: registry.HTTP}}, Resolution: registry.ResolutionStatic,
		})
		for j := 0; j < 5; j++ {
			reg.Endpoints[host] = append(reg.Endpoints[host], &registry.Endpoint{
				Hostname: host, ServicePort: 8080, Address: fmt.Sprintf("10.%d.%d.%d", 100+i/250, i%250, 10+j), Port: 8080,
				Labels: map[string]string{"app": fmt.Sprintf("svc%04d", i), "version": fmt.Sprintf("v%d", j%2+1)}, Locality: fmt.Sprintf("region/zone%d", j%3),
			})
		}
	}
	var cfg []config.Resource
	for i := 0; i < 10; i++ {
		host := fmt.Sprintf("svc%04d.ns0.svc.cluster.local", i*10)
		cfg = append(cfg,
			res(config.VirtualService, "ns0", fmt.Sprintf("vs%d", i), &networking.VirtualService{
				Hosts: []string{host},
				Http: []*networking.HTTPRoute{
					{Match: []*networking.HTTPMatchRequest{{Headers: map[string]*networking.StringMatch{"end-user": exact("jason")}}}, Route: []*networking.HTTPRouteDestination{{Destination: dest(host, "v2", 0)}}, Timeout: durp(time.Second)},
					{Route: []*networking.HTTPRouteDestination{{Destination: dest(host, "v1", 0), Weight: 90}, {Destination: dest(host, "v2", 0), Weight: 10}}},
				},
			}),
			res(config.DestinationRule, "ns0", fmt.Sprintf("dr%d", i), &networking.DestinationRule{
				Host: host,
				TrafficPolicy: &networking.TrafficPolicy{
					OutlierDetection: &networking.OutlierDetection{Consecutive_5XxErrors: nil, Interval: durp(time.Second)},
					Tls:              &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_ISTIO_MUTUAL},
				},
				Subsets: []*networking.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}},
			}),
		)
	}
	return model.NewPushContext("bench", model.DefaultMeshConfig(), config.NewSnapshot(cfg), reg)
}

func benchProxy() *model.Proxy {
	return &model.Proxy{
		ID: "sidecar~10.100.0.10~svc0000-0.ns0~ns0.svc.cluster.local", Type: model.SidecarProxy, IPAddresses: []string{"10.100.0.10"},
		Name: "svc0000-0", Namespace: "ns0", Labels: map[string]string{"app": "svc0000", "version": "v1"}, Metadata: map[string]string{},
	}
}

// BenchmarkSidecarFullConfig generates a sidecar's whole configuration (LDS,
// RDS, CDS, EDS) in a mesh of 1,000 services x 5 endpoints. It reports the
// proto size of that configuration as bytes/config.
func BenchmarkSidecarFullConfig(b *testing.B) {
	pc := bigMesh()
	p := benchProxy()
	size := 0
	for _, t := range allTypes {
		rs, err := Generate(pc, p, t, nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rs {
			size += proto.Size(r.Resource)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, t := range allTypes {
			if _, err := Generate(pc, p, t, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(size), "bytes/config")
}

// BenchmarkPushContext measures building the push context and its indexes for the same mesh.
func BenchmarkPushContext(b *testing.B) {
	pc := bigMesh()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		model.NewPushContext("bench", pc.Mesh, pc.Config, pc.Registry)
	}
}

func TestBigMeshValid(t *testing.T) {
	if testing.Short() {
		t.Skip("large mesh")
	}
	pc := bigMesh()
	byType, err := generateAll(pc, benchProxy())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(byType[ClusterType]); n != 1000+20+3+1 {
		t.Errorf("clusters = %d, want 1,024 (1,000 services, 20 subsets, 3 well-known, 1 inbound)", n)
	}
	if n := len(byType[EndpointType]); n != 1020 {
		t.Errorf("assignments = %d", n)
	}
	for _, typ := range allTypes {
		for _, r := range byType[typ] {
			if err := r.Resource.(validator).ValidateAll(); err != nil {
				t.Fatalf("%s: %v", r.Name, err)
			}
		}
	}
}

// BenchmarkRouteConfigChange is the route configuration work of one
// VirtualService change (its timeout) in bigMesh for a sidecar in each of
// the 10 namespaces, through the cache, up to the wire form the ADS server
// sends: one op is one change (a push context following the last, as
// mastd's pipeline makes them).
func BenchmarkRouteConfigChange(b *testing.B) {
	pc0 := bigMesh()
	var proxies []*model.Proxy
	for i := range 10 {
		p := benchProxy()
		p.Namespace = fmt.Sprintf("ns%d", i)
		p.ID = fmt.Sprintf("sidecar~10.100.0.%d~svc%04d-0.ns%d~ns%d.svc.cluster.local", 10+i, i, i, i)
		proxies = append(proxies, p)
	}
	c := NewCache(CacheConfig{})
	rs := pc0.Config.All()
	size := 0
	prev := pc0 // as mastd does: scopes are carried over
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		next := append([]config.Resource{}, rs...)
		for i, r := range next {
			if r.Kind == config.VirtualService && r.Name == "vs0" {
				vs := proto.Clone(r.Spec).(*networking.VirtualService)
				vs.Http[0].Timeout = durp(time.Duration(n%100+1) * time.Millisecond)
				next[i].Spec = vs
			}
		}
		pc := model.NextPushContext(prev, fmt.Sprint(n), pc0.Mesh, config.NewSnapshot(next), pc0.Registry)
		prev = pc
		size = 0
		for _, p := range proxies {
			out, err := c.Generate(pc, p, RouteType, nil)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range out {
				w := r.Encoded.Wire()
				if w == nil {
					m, err := deterministicMarshal(r.Resource)
					if err != nil {
						b.Fatal(err)
					}
					w = [][]byte{m}
				}
				for _, p := range w {
					size += len(p)
				}
			}
		}
	}
	b.ReportMetric(float64(size)/1024, "KB/change")
}
