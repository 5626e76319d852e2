package ads

import (
	"bytes"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// TestPiecedResourceOnTheWire: a route configuration the generator hands
// over in pieces reaches SotW and Delta clients as exactly its
// deterministic encoding, through the server's codec and through gRPC's
// own.
func TestPiecedResourceOnTheWire(t *testing.T) {
	rc := &routev3.RouteConfiguration{Name: "80"}
	for i := range 40 {
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{Name: strings.Repeat("v", 100+i), Domains: []string{strings.Repeat("d", 200)}})
	}
	want, err := deterministic.Marshal(rc)
	if err != nil {
		t.Fatal(err)
	}
	pieces := [][]byte{want[:7], want[7:3000], want[3000:3500], want[3500:]}
	for _, tc := range []struct {
		name string
		opts []grpc.ServerOption
	}{{"codec", ServerOptions()}, {"grpc's codec", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestMesh()
			e := newEnvWith(t, m, tc.opts, func(c *Config) {
				c.Generate = func(pc *model.PushContext, p *model.Proxy, typeURL string, names []string) ([]model.XDSResource, error) {
					if typeURL == RouteType {
						return []model.XDSResource{{Name: "80", Resource: rc, Encoded: model.EncodedWire(pieces...)}}, nil
					}
					return m.generate(pc, p, typeURL, names)
				}
			})
			e.ads.Push(m.set("v1", baseState()), nil)
			cc := e.dial(t)
			s := e.sotw(t, cc, "a")
			s.request(RouteType, "80")
			r := s.expect(RouteType, "v1", "80")
			if !bytes.Equal(r.Resources[0].Value, want) {
				t.Fatal("sotw: the pieced route configuration arrived as other bytes")
			}
			d := e.delta(t, cc, "b")
			d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: RouteType, ResourceNamesSubscribe: []string{"80"}})
			dr := d.expect(RouteType, []string{"80"}, nil)
			if !bytes.Equal(dr.Resources[0].Resource.GetValue(), want) || dr.Resources[0].Version != formatVersion(hashBytes(want)) {
				t.Fatal("delta: the pieced route configuration arrived as other bytes or version")
			}
		})
	}
}
