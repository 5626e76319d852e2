package generate

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// TestWarmupSlowStart: warmup becomes the round robin or least request
// slow_start_config as istiod's setWarmup writes it (aggression as a
// runtime double keyed "(", minimum weight percent, defaults 1 and 10);
// warmupDurationSecs the window alone; the default policy (least request)
// carries it too.
func TestWarmupSlowStart(t *testing.T) {
	warm := &networking.WarmupConfiguration{Duration: durationpb.New(time.Minute), Aggression: wrapperspb.Double(2)}
	c := &clusterv3.Cluster{}
	applyLB(c, &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: networking.LoadBalancerSettings_ROUND_ROBIN}, Warmup: warm}, false)
	ss := c.GetRoundRobinLbConfig().GetSlowStartConfig()
	if ss.GetSlowStartWindow().AsDuration() != time.Minute || ss.GetAggression().GetDefaultValue() != 2 || ss.GetAggression().GetRuntimeKey() != "(" ||
		ss.GetMinWeightPercent().GetValue() != 10 {
		t.Errorf("ROUND_ROBIN warmup: %v", ss)
	}
	c = &clusterv3.Cluster{}
	applyLB(c, &networking.LoadBalancerSettings{WarmupDurationSecs: durationpb.New(30 * time.Second)}, false)
	ss = c.GetLeastRequestLbConfig().GetSlowStartConfig()
	if c.GetLbPolicy() != clusterv3.Cluster_LEAST_REQUEST || ss.GetSlowStartWindow().AsDuration() != 30*time.Second || ss.GetAggression() != nil {
		t.Errorf("default policy, warmupDurationSecs: %v %v", c.GetLbPolicy(), ss)
	}
	c = &clusterv3.Cluster{}
	applyLB(c, &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: networking.LoadBalancerSettings_RANDOM}, Warmup: warm}, false)
	if c.GetLbConfig() != nil {
		t.Errorf("RANDOM: %v, want no slow start (Envoy has it for round robin and least request only)", c.GetLbConfig())
	}
}
