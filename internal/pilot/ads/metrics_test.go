package ads

import (
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// A push measured from its request's Start lands in
// pilot_proxy_convergence_time with at least that delay.
func TestConvergenceTime(t *testing.T) {
	m := newTestMesh()
	e := newEnv(t, m)
	e.ads.Push(m.set("v1", baseState()), nil)
	c := e.sotw(t, e.dial(t), "app")
	subscribeAll(c, "v1", clA, clB)
	c.barrier()
	v2 := baseState()
	v2.endpoints[hostA] = "10.2.0.1"
	e.ads.Push(m.set("v2", v2), &model.PushRequest{Full: true, Reason: "test", Start: time.Now().Add(-2 * time.Second)})
	c.ack(c.expect(ClusterType, "v2", clA, clB, clC))
	c.ack(c.expect(EndpointType, "v2", clA, clB), clA, clB)
	c.ack(c.expect(ListenerType, "v2", "0.0.0.0_80"))
	c.ack(c.expect(RouteType, "v2", "80"), "80")
	c.barrier()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "pilot_proxy_convergence_time" {
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() < 1 || h.GetSampleSum() < 2 {
				t.Fatalf("convergence: count %d sum %v, want a sample of at least 2s", h.GetSampleCount(), h.GetSampleSum())
			}
			return
		}
	}
	t.Fatal("pilot_proxy_convergence_time not registered")
}
