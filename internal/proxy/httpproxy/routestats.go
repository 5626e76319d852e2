package httpproxy

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// RouteStats are the upstream counters of one route that has a
// stat_prefix, as Envoy keeps them under
// vhost.<virtual host>.route.<stat_prefix>.: every attempt sent upstream,
// answers by class, timeouts and retries.
type RouteStats struct {
	RqTotal, Rq2xx, Rq3xx, Rq4xx, Rq5xx atomic.Uint64
	RqTimeout, RqRetry                  atomic.Uint64
}

// routeStatsSet holds the RouteStats by name. Like Envoy's stats store it
// outlives configuration updates: a route that keeps its virtual host and
// stat_prefix keeps counting.
type routeStatsSet struct {
	m sync.Map // routeStatsKey -> *RouteStats
}

type routeStatsKey struct{ vhost, prefix string }

// For returns the counters of route, nil when it has no stat_prefix.
func (s *routeStatsSet) For(route *xdsparse.Route) *RouteStats {
	if route.StatPrefix == "" {
		return nil
	}
	vh := ""
	if route.VHost != nil {
		vh = route.VHost.Name
	}
	k := routeStatsKey{vh, route.StatPrefix}
	if v, ok := s.m.Load(k); ok {
		return v.(*RouteStats)
	}
	v, _ := s.m.LoadOrStore(k, &RouteStats{})
	return v.(*RouteStats)
}

// NamedRouteStats is one route's counters with its virtual host's name
// and its stat_prefix.
type NamedRouteStats struct {
	VHost, Prefix string
	Stats         *RouteStats
}

// All returns every route's counters, sorted by virtual host and prefix.
func (s *routeStatsSet) All() []NamedRouteStats {
	var out []NamedRouteStats
	s.m.Range(func(k, v any) bool {
		key := k.(routeStatsKey)
		out = append(out, NamedRouteStats{VHost: key.vhost, Prefix: key.prefix, Stats: v.(*RouteStats)})
		return true
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].VHost != out[j].VHost {
			return out[i].VHost < out[j].VHost
		}
		return out[i].Prefix < out[j].Prefix
	})
	return out
}

func (rs *RouteStats) countClass(status int) {
	if rs == nil {
		return
	}
	switch status / 100 {
	case 2:
		rs.Rq2xx.Add(1)
	case 3:
		rs.Rq3xx.Add(1)
	case 4:
		rs.Rq4xx.Add(1)
	case 5:
		rs.Rq5xx.Add(1)
	}
}
