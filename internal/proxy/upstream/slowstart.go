package upstream

import (
	"math"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// Slow start (Envoy's slow_start_config, Istio's warmup): for round robin
// and least request, a host younger than the window weighs
// weight * max(min_weight, (age/window)^(1/aggression)). Hosts added
// together keep equal shares, so a set whose hosts all came in one update
// is balanced as usual (Envoy: "not very effective as all endpoints end up
// getting same amount of requests").

// noteSlowStart sets warmUntil when slow start can change the set's picks:
// the cluster has it, its policy is round robin or least request, and its
// hosts were not all added at once.
func (hs *hostSet) noteSlowStart(cfg *xdsparse.Cluster) {
	ss := cfg.SlowStart
	if ss == nil || (cfg.LB != xdsparse.RoundRobin && cfg.LB != xdsparse.LeastRequest) {
		return
	}
	oldest, newest := hs.hosts[0].Host.created, hs.hosts[0].Host.created
	for _, h := range hs.hosts {
		oldest, newest = min(oldest, h.Host.created), max(newest, h.Host.created)
	}
	if oldest != newest {
		hs.warmUntil = newest + int64(ss.Window)
	}
}

// slowStartWeight is h's weight at now, as Envoy's applySlowStartFactor.
func slowStartWeight(ss *xdsparse.SlowStart, h HostInfo, now int64) float64 {
	w := float64(h.Weight)
	age := time.Duration(now - h.Host.created)
	if age >= ss.Window {
		return w
	}
	f := float64(max(age, time.Millisecond)) / float64(ss.Window)
	if ss.Aggression != 1 {
		f = math.Pow(f, 1/ss.Aggression)
	}
	return w * max(f, ss.MinWeight)
}

// pickWarming picks a host at random in proportion to its slow-start
// weight (O(hosts); only while a host is warming).
func (c *Cluster) pickWarming(hs *hostSet) *Host {
	ss := c.Cfg.SlowStart
	now := time.Now().UnixNano()
	total := 0.0
	for _, h := range hs.hosts {
		total += slowStartWeight(ss, h, now)
	}
	x := float64(c.rand()>>11) / (1 << 53) * total
	for _, h := range hs.hosts {
		if x -= slowStartWeight(ss, h, now); x < 0 {
			return h.Host
		}
	}
	return hs.hosts[len(hs.hosts)-1].Host
}
