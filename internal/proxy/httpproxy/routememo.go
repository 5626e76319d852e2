package httpproxy

import (
	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// routeMemo is what a request state remembers of the last request's route
// selection: its route table (by RDS name), its virtual host (by
// authority) and its cluster (by name). Consecutive requests on a
// keep-alive connection almost always ask for the same ones, and a map
// lookup's code and buckets are cold at every request. Each answer is
// keyed by the configuration it came from: every update publishes a new
// Config (and new route tables), whose first request looks up again. A
// memo keeps what it remembers alive until the state's next request
// replaces it (pooled states are dropped at garbage collections).
type routeMemo struct {
	tableCfg *Config
	rdsName  string
	table    *xdsparse.RouteTable

	clusterCfg *Config
	cluster    string
	cl         *upstream.Cluster

	vh xdsparse.VirtualHostMemo

	filters filterMemo // filters.go
}

// routeTable is cfg.Routes[name].
func (m *routeMemo) routeTable(cfg *Config, name string) *xdsparse.RouteTable {
	if m.tableCfg != cfg || m.rdsName != name {
		m.tableCfg, m.rdsName, m.table = cfg, name, cfg.Routes[name]
	}
	return m.table
}

// clusterFor is cfg.Clusters[name].
func (m *routeMemo) clusterFor(cfg *Config, name string) *upstream.Cluster {
	if m.clusterCfg != cfg || m.cluster != name {
		m.clusterCfg, m.cluster, m.cl = cfg, name, cfg.Clusters[name]
	}
	return m.cl
}
