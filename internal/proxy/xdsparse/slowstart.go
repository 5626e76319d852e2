package xdsparse

import (
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/mast-mesh/mast/internal/proxy/pbwire"
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

// Fields of Cluster's lb_config members and of SlowStartConfig.
const (
	clLeastRequestLb, clRoundRobinLb                = 37, 56
	lrChoiceCount, lrActiveRequestBias, lrSlowStart = 1, 2, 3
	rrSlowStart                                     = 1
	ssWindow, ssAggression, ssMinWeight             = 1, 2, 3
	runtimeDoubleDefault                            = 1
)

// parseSlowStart reads round_robin_lb_config / least_request_lb_config
// (their other fields are refused by the cluster's field rules); least
// request's choice_count and active_request_bias are refused unless at
// their defaults.
func parseSlowStart(c *pbwire.Msg) (*SlowStart, error) {
	var lb *pbwire.Msg
	var sc protowire.Number
	switch policy := int32(c.U64(clLbPolicy)); {
	case c.Has(clRoundRobinLb):
		if policy != lbpRoundRobin {
			return nil, fmt.Errorf("round_robin_lb_config: lb_policy is %s", lbPolicyName(policy))
		}
		lb, sc = c.Sub(clRoundRobinLb), rrSlowStart
	case c.Has(clLeastRequestLb):
		if policy != lbpLeastRequest {
			return nil, fmt.Errorf("least_request_lb_config: lb_policy is %s", lbPolicyName(policy))
		}
		lb, sc = c.Sub(clLeastRequestLb), lrSlowStart
		if n := wrapperU32(lb, lrChoiceCount, 2); n != 2 {
			return nil, fmt.Errorf("least_request_lb_config.choice_count %d: only 2 is supported", n)
		}
		if lb.Has(lrActiveRequestBias) {
			if b := lb.Sub(lrActiveRequestBias); math.Float64frombits(b.U64(runtimeDoubleDefault)) != 1 {
				return nil, fmt.Errorf("least_request_lb_config.active_request_bias: not supported")
			}
		}
	default:
		return nil, nil // ring hash and maglev configs are read with their policies
	}
	if !lb.Has(sc) {
		return nil, nil
	}
	cfg := lb.Sub(sc)
	w := wireDuration(cfg.Bytes(ssWindow))
	if !cfg.Has(ssWindow) || w <= 0 {
		return nil, fmt.Errorf("slow_start_config.slow_start_window: must be > 0")
	}
	out := &SlowStart{Window: w, Aggression: 1, MinWeight: 0.1}
	if cfg.Has(ssAggression) {
		// Mast has no runtime: the runtime key (istiod sets "(") is not read.
		// As Envoy: an aggression that is not positive counts as 1.
		a := cfg.Sub(ssAggression)
		if v := math.Float64frombits(a.U64(runtimeDoubleDefault)); v > 0 && !math.IsInf(v, 0) {
			out.Aggression = v
		}
	}
	if cfg.Has(ssMinWeight) {
		p := cfg.Sub(ssMinWeight)
		v := math.Float64frombits(p.U64(percentValue))
		if v < 0 || v > 100 || math.IsNaN(v) {
			return nil, fmt.Errorf("slow_start_config.min_weight_percent %v: want 0-100", v)
		}
		out.MinWeight = v / 100
	}
	return out, nil
}
