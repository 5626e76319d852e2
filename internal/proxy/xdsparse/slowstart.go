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

