package serviceentry

import (
	"cmp"
	"testing"

	"github.com/mast-mesh/mast/internal/config"
)

// FuzzBuild feeds decoded (unvalidated) configuration to Build: it must not
// panic, and its snapshot must keep the documented order and shape.
func FuzzBuild(f *testing.F) {
	for _, tc := range buildTests {
		f.Add([]byte(tc.yaml))
	}
	f.Add([]byte("kind: ServiceEntry\napiVersion: networking.istio.io/v1\nmetadata: {name: x}\nspec: {endpoints: [{}], ports: [{}], workloadSelector: {}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := config.Decode("fuzz.yaml", data)
		if err != nil {
			return
		}
		s := Build(config.NewSnapshot(rs), Options{TrustDomain: "td"})
		for i := 1; i < len(s.Services); i++ {
			a, b := s.Services[i-1], s.Services[i]
			if cmp.Or(cmp.Compare(a.Hostname, b.Hostname), cmp.Compare(a.Namespace, b.Namespace)) >= 0 {
				t.Fatalf("services out of order or duplicated: %s/%s then %s/%s", a.Hostname, a.Namespace, b.Hostname, b.Namespace)
			}
		}
		for host, eps := range s.Endpoints {
			svc := s.Service(host)
			if svc == nil {
				t.Fatalf("endpoints for %q without a service", host)
			}
			for i, e := range eps {
				if e.Hostname != host {
					t.Fatalf("endpoint of %q filed under %q", e.Hostname, host)
				}
				if _, ok := svc.PortByNumber(e.ServicePort); !ok {
					t.Fatalf("endpoint %s:%d for a port %q lacks", e.Address, e.ServicePort, host)
				}
				if i > 0 && compareEndpoints(eps[i-1], e) > 0 {
					t.Fatalf("endpoints of %q out of order", host)
				}
			}
		}
	})
}
