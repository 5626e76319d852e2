package generate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
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
