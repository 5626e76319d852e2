package generate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	acv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/adaptive_concurrency/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/config"
)

// LatencyOutlierMetadata is the cluster filter metadata namespace and key
// that carry latency-based ejection to mast-proxy (Envoy has no such
// detector and ignores the metadata; docs/resilience.md).
const (
	MastMetadata          = "mast"
	LatencyOutlierMetaKey = "latency_outlier"
)

// applyLatencyOutlier puts a DestinationRule's latency-outlier annotation
// (validated: a bad value was refused before) into the cluster's metadata,
// next to its outlier_detection.
func applyLatencyOutlier(c *clusterv3.Cluster, ann string) {
	if ann == "" || ann == "false" {
		return
	}
	lo, err := config.ParseLatencyOutlier(ann)
	if err != nil {
		return
	}
	st := &structpb.Struct{Fields: map[string]*structpb.Value{
		"percentile":     structpb.NewNumberValue(lo.Percentile),
		"factor":         structpb.NewNumberValue(lo.Factor),
		"minimum_excess": structpb.NewStringValue(lo.MinimumExcess.String()),
		"request_volume": structpb.NewNumberValue(float64(lo.RequestVolume)),
		"minimum_hosts":  structpb.NewNumberValue(float64(lo.MinimumHosts)),
	}}
	if c.Metadata == nil {
		c.Metadata = &corev3.Metadata{}
	}
	if c.Metadata.FilterMetadata == nil {
		c.Metadata.FilterMetadata = map[string]*structpb.Struct{}
	}
	c.Metadata.FilterMetadata[MastMetadata] = &structpb.Struct{Fields: map[string]*structpb.Value{
		LatencyOutlierMetaKey: structpb.NewStructValue(st)}}
}

// adaptiveConcurrencyName is Envoy's adaptive concurrency HTTP filter.
const adaptiveConcurrencyName = "envoy.filters.http.adaptive_concurrency"

// withAdaptiveConcurrency puts Envoy's adaptive concurrency filter (gradient
// controller) before the router of an inbound connection manager when a
// DestinationRule of a service the port serves has the adaptive-concurrency
// annotation: the workload's proxy limits the requests outstanding to its
// application, the placement Envoy documents. The first such service (by
// host) gives the knobs.
func (g *gen) withAdaptiveConcurrency(m *hcmv3.HttpConnectionManager, ip inboundPort) {
	for _, svc := range ip.services {
		dr := g.pc.DestinationRule(g.p, svc.Hostname)
		if dr == nil {
			continue
		}
		ann := dr.Annotations[config.AdaptiveConcurrencyAnnotation]
		if ann == "" || ann == "false" {
			continue
		}
		ac, err := config.ParseAdaptiveConcurrency(ann)
		if err != nil {
			continue // refused by validation
		}
		f := httpFilter(adaptiveConcurrencyName, toAny(&acv3.AdaptiveConcurrency{
			ConcurrencyControllerConfig: &acv3.AdaptiveConcurrency_GradientControllerConfig{GradientControllerConfig: &acv3.GradientControllerConfig{
				SampleAggregatePercentile: &typev3.Percent{Value: ac.Percentile},
				ConcurrencyLimitParams: &acv3.GradientControllerConfig_ConcurrencyLimitCalculationParams{
					MaxConcurrencyLimit:       u32(ac.MaxLimit),
					ConcurrencyUpdateInterval: durationpb.New(ac.UpdateInterval),
				},
				MinRttCalcParams: &acv3.GradientControllerConfig_MinimumRTTCalculationParams{
					Interval:       durationpb.New(ac.MinRTTInterval),
					RequestCount:   u32(ac.RequestCount),
					Jitter:         &typev3.Percent{Value: ac.Jitter},
					MinConcurrency: u32(ac.MinConcurrency),
					Buffer:         &typev3.Percent{Value: ac.Buffer},
				},
			}},
		}))
		n := len(m.HttpFilters)
		m.HttpFilters = append(m.HttpFilters[:n-1:n-1], f, m.HttpFilters[n-1])
		return
	}
}
