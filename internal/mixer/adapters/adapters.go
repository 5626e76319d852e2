// Package adapters is the table of Mixer adapters mastd compiles in: the
// one place that maps an adapter name (a handler's compiledAdapter, or the
// kind of Istio's older per-adapter resources) to its package.
package adapters

import (
	"maps"
	"slices"

	"github.com/mast-mesh/mast/internal/mixer/adapter"
	"github.com/mast-mesh/mast/internal/mixer/adapters/denier"
	"github.com/mast-mesh/mast/internal/mixer/adapters/listchecker"
	"github.com/mast-mesh/mast/internal/mixer/adapters/memquota"
	"github.com/mast-mesh/mast/internal/mixer/adapters/prometheus"
	"github.com/mast-mesh/mast/internal/mixer/adapters/redisquota"
	"github.com/mast-mesh/mast/internal/mixer/adapters/stdio"
	"github.com/mast-mesh/mast/internal/mixer/adapters/zipkin"
)

// All returns every built-in adapter by name.
func All() map[string]*adapter.Info {
	out := map[string]*adapter.Info{}
	for _, i := range []*adapter.Info{denier.Info, listchecker.Info, memquota.Info, redisquota.Info, prometheus.Info, stdio.Info, zipkin.Info} {
		out[i.Name] = i
	}
	return out
}

// Names returns the adapter names, sorted.
func Names() []string { return slices.Sorted(maps.Keys(All())) }
