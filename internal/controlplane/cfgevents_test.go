package controlplane

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
)

// TestConfigEventsByNamespace counts the events of an Update that touches
// some namespaces (an update, an addition in a new namespace, the deletion
// of a namespace's only resource) and leaves another as it was.
func TestConfigEventsByNamespace(t *testing.T) {
	we := func(ns, name, addr string) config.Resource {
		r := config.Resource{Spec: &networking.WorkloadEntry{Address: addr}}
		r.Kind, r.Namespace, r.Name = config.WorkloadEntry, ns, name
		return r
	}
	old := config.NewSnapshot([]config.Resource{we("a", "w1", "10.0.0.1"), we("a", "w2", "10.0.0.2"), we("b", "w1", "10.0.1.1"), we("d", "w1", "10.0.3.1")})
	cur := old.Update([]config.Resource{we("a", "w2", "10.0.0.9"), we("c", "w1", "10.0.2.1"), we("c", "w2", "10.0.2.2")},
		[]config.Key{{Kind: config.WorkloadEntry, Namespace: "d", Name: "w1"}})
	c := newConfigEvents(prometheus.NewRegistry())
	countConfigEvents(c, old, cur, kinds(config.WorkloadEntry))
	for event, want := range map[string]float64{"update": 1, "add": 2, "delete": 1} {
		if got := testutil.ToFloat64(c.WithLabelValues("WorkloadEntry", event)); got != want {
			t.Errorf("%s = %v, want %v", event, got, want)
		}
	}
}
