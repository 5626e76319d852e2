package controlplane

import (
	"cmp"
	"strings"

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
//
// Lists are sorted by namespace and name, so the two are walked side by
// side; a resource both hold as the same stored spec (most of them: stored
// resources are immutable) is unchanged without comparing contents.
func countConfigEvents(c *prometheus.CounterVec, old, cur *config.Snapshot, kinds map[config.Kind]struct{}) {
	if c == nil || old == nil {
		return
	}
	for k := range kinds {
		a, b := old.List(k), cur.List(k)
		var add, update, del int
		for i, j := 0, 0; i < len(a) || j < len(b); {
			switch c := compareResources(a, b, i, j); {
			case c < 0:
				del++
				i++
			case c > 0:
				add++
				j++
			default:
				if a[i].Spec != b[j].Spec && !proto.Equal(a[i].Spec, b[j].Spec) {
					update++
				}
				i++
				j++
			}
		}
		for event, n := range map[string]int{"add": add, "update": update, "delete": del} {
			if n > 0 {
				c.WithLabelValues(k.Kind, event).Add(float64(n))
			}
		}
	}
}

// compareResources orders a[i] and b[j] by namespace and name, an exhausted
// list's position last.
func compareResources(a, b []config.Resource, i, j int) int {
	switch {
	case i == len(a):
		return 1
	case j == len(b):
		return -1
	}
	return cmp.Or(strings.Compare(a[i].Namespace, b[j].Namespace), strings.Compare(a[i].Name, b[j].Name))
}
