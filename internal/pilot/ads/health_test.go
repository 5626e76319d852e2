package ads

import (
	"context"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// TestHealthReports: istio-agent's health requests reach Config.Health
// (healthy without error_detail, its message otherwise) on both protocols,
// are never answered, and leave the stream's subscriptions alone.
func TestHealthReports(t *testing.T) {
	type report struct {
		proxy   string
		healthy bool
		msg     string
	}
	reports := make(chan report, 10)
	m := newTestMesh()
	e := newEnv(t, m, func(c *Config) {
		c.Health = func(_ context.Context, p *model.Proxy, healthy bool, msg string) {
			reports <- report{p.ID, healthy, msg}
		}
	})
	e.ads.Push(m.set("v1", baseState()), nil)

	s := e.sotw(t, e.dial(t), "vm")
	s.send(&discoveryv3.DiscoveryRequest{TypeUrl: HealthInfoType, ErrorDetail: &statuspb.Status{Code: 13, Message: "status 503"}})
	if r := <-reports; r.proxy != nodeID("vm") || r.healthy || r.msg != "status 503" {
		t.Fatalf("report %+v, want vm unhealthy with the message", r)
	}
	s.request(ClusterType)
	s.expect(ClusterType, "v1", clA, clB, clC) // the health request was not answered
	s.send(&discoveryv3.DiscoveryRequest{TypeUrl: HealthInfoType})
	if r := <-reports; !r.healthy {
		t.Fatalf("report %+v, want healthy", r)
	}

	d := e.delta(t, e.dial(t), "vm2")
	d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: ClusterType})
	d.expect(ClusterType, []string{clA, clB, clC}, nil)
	d.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: HealthInfoType, ErrorDetail: &statuspb.Status{Code: 13, Message: "refused"}})
	if r := <-reports; r.proxy != nodeID("vm2") || r.healthy || r.msg != "refused" {
		t.Fatalf("delta report %+v", r)
	}
	d.barrier()
	if st := e.status(t, nodeID("vm2")); st.typ(HealthInfoType).TypeURL != "" {
		t.Fatalf("a watch for the health type: %+v", st.typ(HealthInfoType))
	}
}
