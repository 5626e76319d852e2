package dataplane

import (
	"sort"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/telemetry/metrics"
)

// applyMetricsConfig sets the metrics configuration of each reporter side
// from the listeners' istio.stats filters: inbound listeners carry the
// SERVER side's, the others (outbound, gateways) the CLIENT side's. mastd
// gives every listener of a side the same one; without any a side
// reports Istio's standard metrics unchanged.
func (p *Proxy) applyMetricsConfig(ls map[string]*xdsparse.Listener) {
	if p.cfg.Telemetry == nil {
		return
	}
	names := make([]string, 0, len(ls))
	for n := range ls {
		names = append(names, n)
	}
	sort.Strings(names)
	var side [2]*metrics.Config
	set := func(inbound bool, c *metrics.Config) {
		s := metrics.Client
		if inbound {
			s = metrics.Server
		}
		if c != nil && side[s] == nil {
			side[s] = c
		}
	}
	for _, n := range names {
		l := ls[n]
		for _, c := range append(l.Chains[:len(l.Chains):len(l.Chains)], l.Default) {
			switch {
			case c == nil:
			case c.HTTP != nil:
				set(c.HTTP.Inbound, c.HTTP.Stats)
			case c.TCP != nil:
				set(c.TCP.Inbound, c.TCP.Stats)
			}
		}
	}
	p.cfg.Telemetry.Metrics.SetSideConfig(metrics.Client, side[metrics.Client])
	p.cfg.Telemetry.Metrics.SetSideConfig(metrics.Server, side[metrics.Server])
}
