package xdsparse

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/telemetry/metrics"
)

// StatsFilterName is Istio's stats filter (HTTP filter in connection
// managers, network filter before tcp_proxy): its configuration is the
// Telemetry API's metrics overrides for the listener's reporter side.
const StatsFilterName = "istio.stats"

// StatsTypeURL is the type of the stats filter's configuration, carried in
// a TypedStruct as istiod does (istio/proxy's stats.PluginConfig).
const StatsTypeURL = "type.googleapis.com/stats.PluginConfig"

// statsMetricNames are PluginConfig's metric names (Istio's without the
// istio_ prefix).
var statsMetricNames = map[string]metrics.Metric{
	"requests_total": metrics.RequestCount, "request_duration_milliseconds": metrics.RequestDuration,
	"request_bytes": metrics.RequestSize, "response_bytes": metrics.ResponseSize,
	"request_messages_total": metrics.GRPCRequestMessages, "response_messages_total": metrics.GRPCResponseMessages,
	"tcp_connections_opened_total": metrics.TCPOpenedConnections, "tcp_connections_closed_total": metrics.TCPClosedConnections,
	"tcp_sent_bytes_total": metrics.TCPSentBytes, "tcp_received_bytes_total": metrics.TCPReceivedBytes,
}

// ParseStats parses a stats filter's typed_config: a TypedStruct of
// stats.PluginConfig with metrics[] entries {name, dimensions, tags_to_remove,
// drop}, applied in order, and tcp_reporting_duration. Anything else is
// refused by name.
func ParseStats(a *anypb.Any) (*metrics.Config, error) {
	if a == nil {
		return nil, fmt.Errorf("typed_config missing")
	}
	if u := a.GetTypeUrl(); u[strings.LastIndexByte(u, '/')+1:] != typedStructName {
		return nil, fmt.Errorf("typed_config %s: want xds.type.v3.TypedStruct of %s", a.GetTypeUrl(), StatsTypeURL)
	}
	typeURL, value, err := decodeTypedStruct(a.GetValue())
	if err != nil {
		return nil, err
	}
	if typeURL != StatsTypeURL {
		return nil, fmt.Errorf("type_url %q: want %s", typeURL, StatsTypeURL)
	}
	cfg := &metrics.Config{}
	fields := value.GetFields()
	for k, v := range fields {
		switch k {
		case "metrics":
		case "tcp_reporting_duration":
			d, err := time.ParseDuration(v.GetStringValue())
			if err != nil || d <= 0 || !strings.HasSuffix(v.GetStringValue(), "s") {
				return nil, fmt.Errorf("value.tcp_reporting_duration %q: want a positive protobuf JSON duration (\"15s\")", v.GetStringValue())
			}
			cfg.ReportInterval = d
		default:
			return nil, fmt.Errorf("value.%s: not supported (metrics and tcp_reporting_duration are)", k)
		}
	}
	for i, e := range fields["metrics"].GetListValue().GetValues() {
		if err := applyStatsEntry(cfg, e.GetStructValue()); err != nil {
			return nil, fmt.Errorf("value.metrics[%d]: %w", i, err)
		}
	}
	return cfg, nil
}

// typedStructName is xds.type.v3.TypedStruct's full name.
const typedStructName = "xds.type.v3.TypedStruct"

// TypedStruct's fields.
const tsTypeURL, tsValue = 1, 2

// decodeTypedStruct reads an xds.type.v3.TypedStruct (1: type_url, 2: value,
// a google.protobuf.Struct) with the wire table, as proto.Unmarshal would:
// the last type_url wins, repeated value fields merge, unknown fields are
// skipped, and a malformed message or a string that is not UTF-8 fails.
// Reading it here keeps cncf/xds's generated packages (and cel.dev/expr,
// which they import) out of mast-proxy.
func decodeTypedStruct(b []byte) (string, *structpb.Struct, error) {
	if err := validateWire(descTypedStruct, b); err != nil {
		return "", nil, fmt.Errorf("%s: %w", typedStructName, err)
	}
	m := decodeWire(descTypedStruct, b)
	value := &structpb.Struct{}
	if err := proto.Unmarshal(m.Bytes(tsValue), value); err != nil {
		return "", nil, fmt.Errorf("%s.value: %w", typedStructName, err)
	}
	return m.Str(tsTypeURL), value, nil
}

func applyStatsEntry(cfg *metrics.Config, e *structpb.Struct) error {
	if e == nil {
		return fmt.Errorf("not an object")
	}
	f := e.GetFields()
	var which []metrics.Metric
	name := f["name"].GetStringValue()
	if name == "" {
		for m := metrics.Metric(0); m < metrics.NumMetrics; m++ {
			which = append(which, m)
		}
	} else {
		m, ok := statsMetricNames[strings.TrimPrefix(name, "istio_")]
		if !ok {
			return fmt.Errorf("name %q: not a standard metric", name)
		}
		which = []metrics.Metric{m}
	}
	for k := range f {
		switch k {
		case "name", "dimensions", "tags_to_remove", "drop":
		default:
			return fmt.Errorf("%s: not supported", k)
		}
	}
	if d, ok := f["drop"]; ok {
		// A later entry may enable again what an earlier one dropped.
		for _, m := range which {
			cfg.Disabled[m] = d.GetBoolValue()
		}
	}
	for _, t := range f["tags_to_remove"].GetListValue().GetValues() {
		tag := t.GetStringValue()
		if tag == "" {
			return fmt.Errorf("tags_to_remove: empty tag")
		}
		for _, m := range which {
			removeTag(cfg, m, tag)
		}
	}
	dims := f["dimensions"].GetStructValue().GetFields()
	// In name order, so that every listener's copy gives the same slots.
	for _, tag := range slices.Sorted(maps.Keys(dims)) {
		v := dims[tag]
		if !metrics.ValidLabelName(tag) {
			return fmt.Errorf("dimensions.%s: not a Prometheus label name", tag)
		}
		attr, err := metrics.ParseAttr(v.GetStringValue())
		if err != nil {
			return fmt.Errorf("dimensions.%s: %w", tag, err)
		}
		slot := -1
		for i := range cfg.Custom {
			if cfg.Custom[i].Name == tag && cfg.Custom[i].Value == attr {
				slot = i
				break
			}
		}
		if slot < 0 {
			slot = len(cfg.Custom)
			cfg.Custom = append(cfg.Custom, metrics.Dimension{Name: tag, Value: attr})
		}
		for _, m := range which {
			removeTag(cfg, m, tag) // an earlier value of the same tag, or the standard label
			cfg.Custom[slot].In[m] = true
		}
	}
	return nil
}

// removeTag drops a standard label or a custom dimension from metric m.
func removeTag(cfg *metrics.Config, m metrics.Metric, tag string) {
	if l, ok := metrics.LabelByName(tag); ok {
		cfg.Removed[m][l] = true
	}
	for i := range cfg.Custom {
		if cfg.Custom[i].Name == tag {
			cfg.Custom[i].In[m] = false
		}
	}
}
