package controlplane

import (
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/config"
)

// newConfigEvents is Istio's pilot_k8s_cfg_events (events from the config
// store, by kind and add/update/delete), counted for every config source.
func newConfigEvents(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pilot_k8s_cfg_events", Help: "Events from k8s config."}, []string{"type", "event"})
	reg.MustRegister(c)
	return c
}

// countConfigEvents counts the resources of the changed kinds that were
// added, updated or deleted between two snapshots.
func countConfigEvents(c *prometheus.CounterVec, old, cur *config.Snapshot, kinds map[config.Kind]struct{}) {
	if c == nil || old == nil {
		return
	}
	for k := range kinds {
		for _, r := range cur.List(k) {
			prev, ok := old.Get(r.Key())
			switch {
			case !ok:
				c.WithLabelValues(k.Kind, "add").Inc()
			case !proto.Equal(prev.Spec, r.Spec):
				c.WithLabelValues(k.Kind, "update").Inc()
			}
		}
		for _, r := range old.List(k) {
			if _, ok := cur.Get(r.Key()); !ok {
				c.WithLabelValues(k.Kind, "delete").Inc()
			}
		}
	}
}
