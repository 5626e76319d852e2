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
// side, one namespace at a time; a namespace both hold as the same list
// (config.SameResources: the update did not touch it) is skipped, and a
// resource both hold as the same stored spec (most of them: stored
// resources are immutable) is unchanged without comparing contents.
func countConfigEvents(c *prometheus.CounterVec, old, cur *config.Snapshot, kinds map[config.Kind]struct{}) {
	if c == nil || old == nil {
		return
	}
	for k := range kinds {
		var n eventCounts
		config.ChangedNamespaces(old.ByNamespace(k), cur.ByNamespace(k), n.count)
		for event, v := range map[string]int{"add": n.add, "update": n.update, "delete": n.del} {
			if v > 0 {
				c.WithLabelValues(k.Kind, event).Add(float64(v))
			}
		}
	}
}

type eventCounts struct{ add, update, del int }

// count adds the events between two lists of one kind and namespace.
func (n *eventCounts) count(a, b []config.Resource) {
	for i, j := 0, 0; i < len(a) || j < len(b); {
		switch c := compareResources(a, b, i, j); {
		case c < 0:
			n.del++
			i++
		case c > 0:
			n.add++
			j++
		default:
			if a[i].Spec != b[j].Spec && !proto.Equal(a[i].Spec, b[j].Spec) {
				n.update++
			}
			i++
			j++
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
