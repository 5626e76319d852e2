package generate

import (
	"strconv"
	"strings"
	"time"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/celfilter"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/telemetry/metrics"
)

// Istio's stats filter: its name and configuration type (istio/proxy's
// stats.PluginConfig, sent in a TypedStruct as istiod does).
const (
	statsFilterName = "istio.stats"
	statsTypeURL    = "type.googleapis.com/stats.PluginConfig"
)

// statsConfig is the stats filter configuration of one reporter side: the
// Telemetry API's metrics overrides in order, each an entry of
// PluginConfig.metrics {name, drop, tags_to_remove, dimensions} with the
// CEL values translated to what mast-proxy evaluates (celfilter.TagValue).
// nil when the side keeps Istio's standard metrics. A reporting interval
// becomes tcp_reporting_duration, as istiod sends the Telemetry API's
// reportingInterval.
func statsConfig(ovs []model.MetricsOverride, off bool, interval time.Duration) *anypb.Any {
	if !off && len(ovs) == 0 && interval == 0 {
		return nil
	}
	var entries []any
	if off {
		entries = append(entries, map[string]any{"name": "", "drop": true})
	}
	for _, o := range ovs {
		e := map[string]any{"name": ""}
		if o.Metric != "" {
			m, ok := metrics.MetricBySelector(o.Metric)
			if !ok {
				continue // a metric Mast does not report (validation warns)
			}
			e["name"] = strings.TrimPrefix(m.Name(), "istio_")
		}
		if o.Disabled != nil {
			e["drop"] = *o.Disabled
		}
		if len(o.Remove) > 0 {
			rm := make([]any, len(o.Remove))
			for i, t := range o.Remove {
				rm[i] = t
			}
			e["tags_to_remove"] = rm
		}
		if len(o.Upsert) > 0 {
			dims := map[string]any{}
			for t, v := range o.Upsert {
				canon, err := celfilter.TagValue(v)
				if err != nil {
					continue // validation refuses such a resource
				}
				dims[t] = canon
			}
			e["dimensions"] = dims
		}
		entries = append(entries, e)
	}
	cfg := map[string]any{"metrics": entries}
	if interval > 0 {
		// protobuf's JSON form of a Duration: seconds, suffix "s".
		cfg["tcp_reporting_duration"] = strconv.FormatFloat(interval.Seconds(), 'f', -1, 64) + "s"
	}
	v, err := structpb.NewStruct(cfg)
	if err != nil {
		return nil
	}
	return toAny(&xdstypev3.TypedStruct{TypeUrl: statsTypeURL, Value: v})
}

// addStatsHTTP puts the stats filter before the router of h.
func addStatsHTTP(h *hcmv3.HttpConnectionManager, cfg *anypb.Any) {
	if cfg == nil || len(h.HttpFilters) == 0 {
		return
	}
	f := &hcmv3.HttpFilter{Name: statsFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: cfg}}
	n := len(h.HttpFilters)
	h.HttpFilters = append(h.HttpFilters[:n-1:n-1], f, h.HttpFilters[n-1])
}

// addStatsTCP puts the stats network filter before a chain's tcp_proxy
// (the filter at index i).
func addStatsTCP(fc *listenerv3.FilterChain, i int, cfg *anypb.Any) {
	if cfg == nil {
		return
	}
	f := &listenerv3.Filter{Name: statsFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: cfg}}
	fc.Filters = append(fc.Filters[:i:i], append([]*listenerv3.Filter{f}, fc.Filters[i:]...)...)
}
