package xdsparse

import (
	"fmt"
	"math"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// SlowStart is a round robin or least request cluster's slow_start_config
// (Istio's warmup): a host added to the cluster takes a growing share of
// its weight over Window, as Envoy computes it: weight *
// max(MinWeight, (age/Window)^(1/Aggression)).
type SlowStart struct {
	Window     time.Duration
	Aggression float64 // > 0; default 1 (linear)
	MinWeight  float64 // fraction 0-1; default 0.1
}

// parseSlowStart reads round_robin_lb_config / least_request_lb_config
// (their other fields are refused by the cluster's field rules); least
// request's choice_count and active_request_bias are refused unless at
// their defaults.
func parseSlowStart(c *clusterv3.Cluster) (*SlowStart, error) {
	var sc *clusterv3.Cluster_SlowStartConfig
	switch lc := c.GetLbConfig().(type) {
	case nil:
		return nil, nil
	case *clusterv3.Cluster_RoundRobinLbConfig_:
		if c.GetLbPolicy() != clusterv3.Cluster_ROUND_ROBIN {
			return nil, fmt.Errorf("round_robin_lb_config: lb_policy is %v", c.GetLbPolicy())
		}
		sc = lc.RoundRobinLbConfig.GetSlowStartConfig()
	case *clusterv3.Cluster_LeastRequestLbConfig_:
		if c.GetLbPolicy() != clusterv3.Cluster_LEAST_REQUEST {
			return nil, fmt.Errorf("least_request_lb_config: lb_policy is %v", c.GetLbPolicy())
		}
		lr := lc.LeastRequestLbConfig
		if n := lr.GetChoiceCount(); n != nil && n.GetValue() != 2 {
			return nil, fmt.Errorf("least_request_lb_config.choice_count %d: only 2 is supported", n.GetValue())
		}
		if b := lr.GetActiveRequestBias(); b != nil && b.GetDefaultValue() != 1 {
			return nil, fmt.Errorf("least_request_lb_config.active_request_bias: not supported")
		}
		sc = lr.GetSlowStartConfig()
	default:
		return nil, nil // ring hash and maglev configs are read with their policies
	}
	if sc == nil {
		return nil, nil
	}
	w := sc.GetSlowStartWindow()
	if w == nil || w.AsDuration() <= 0 {
		return nil, fmt.Errorf("slow_start_config.slow_start_window: must be > 0")
	}
	out := &SlowStart{Window: w.AsDuration(), Aggression: 1, MinWeight: 0.1}
	if a := sc.GetAggression(); a != nil {
		// Mast has no runtime: the runtime key (istiod sets "(") is not read.
		// As Envoy: an aggression that is not positive counts as 1.
		if v := a.GetDefaultValue(); v > 0 && !math.IsInf(v, 0) {
			out.Aggression = v
		}
	}
	if p := sc.GetMinWeightPercent(); p != nil {
		if p.GetValue() < 0 || p.GetValue() > 100 || math.IsNaN(p.GetValue()) {
			return nil, fmt.Errorf("slow_start_config.min_weight_percent %v: want 0-100", p.GetValue())
		}
		out.MinWeight = p.GetValue() / 100
	}
	return out, nil
}
