package xdsparse

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

func TestParseOutlier(t *testing.T) {
	for _, tc := range []struct {
		name string
		od   *clusterv3.OutlierDetection
		want *OutlierDetection
		err  string
	}{
		{"none", nil, nil, ""},
		{"Envoy defaults", &clusterv3.OutlierDetection{}, &OutlierDetection{Consecutive5xx: 5, Enforcing5xx: 100, ConsecutiveGateway: 5,
			EnforcingGateway: 0, BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 10}, ""},
		{"Istio's consecutiveGatewayErrors", &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(0), ConsecutiveGatewayFailure: wrapperspb.UInt32(3),
			EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100), BaseEjectionTime: durationpb.New(time.Minute), MaxEjectionPercent: wrapperspb.UInt32(100)},
			&OutlierDetection{Consecutive5xx: 0, Enforcing5xx: 100, ConsecutiveGateway: 3, EnforcingGateway: 100,
				BaseEjectionTime: time.Minute, MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 100}, ""},
		{"max below base", &clusterv3.OutlierDetection{BaseEjectionTime: durationpb.New(10 * time.Minute), MaxEjectionTime: durationpb.New(time.Minute)},
			&OutlierDetection{Consecutive5xx: 5, Enforcing5xx: 100, ConsecutiveGateway: 5, BaseEjectionTime: 10 * time.Minute,
				MaxEjectionTime: 10 * time.Minute, MaxEjectionPercent: 10}, ""},
		{"percent over 100", &clusterv3.OutlierDetection{MaxEjectionPercent: wrapperspb.UInt32(101)}, nil, "max_ejection_percent 101: over 100"},
		{"zero base", &clusterv3.OutlierDetection{BaseEjectionTime: durationpb.New(0)}, nil, "base_ejection_time: must be > 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := xdstest.StaticCluster("c", "127.0.0.1:1")
			c.OutlierDetection = tc.od
			got, err := ParseCluster(c)
			if tc.err != "" {
				checkErr(t, err, `cluster "c": outlier_detection.`+tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got.Outlier == nil) != (tc.want == nil) || got.Outlier != nil && *got.Outlier != *tc.want {
				t.Fatalf("got %+v, want %+v", got.Outlier, tc.want)
			}
		})
	}
}
