package upstream

import (
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// TestSlowStartWeight: Envoy's formula, weight * max(min weight,
// (age/window)^(1/aggression)), full weight once past the window.
func TestSlowStartWeight(t *testing.T) {
	ss := &xdsparse.SlowStart{Window: 100 * time.Second, Aggression: 2, MinWeight: 0.1}
	now := time.Now().UnixNano()
	at := func(age time.Duration) float64 {
		return slowStartWeight(ss, HostInfo{Host: &Host{created: now - int64(age)}, Weight: 10}, now)
	}
	for _, tc := range []struct {
		age  time.Duration
		want float64
	}{{25 * time.Second, 5}, {0, 1}, {100 * time.Second, 10}, {time.Hour, 10}} {
		if got := at(tc.age); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("age %v: weight %v, want %v", tc.age, got, tc.want)
		}
	}
}

// TestSlowStartNewHostGetsLess: a host added to a round robin cluster
// whose other host is past the window gets about min_weight of a share
// (9%% here); hosts that came in the same update share evenly.
func TestSlowStartNewHostGetsLess(t *testing.T) {
	m := NewManager(slog.New(slog.DiscardHandler))
	cfg := func(addrs ...string) map[string]*xdsparse.Cluster {
		es := &xdsparse.EndpointSet{Name: "c", Localities: []xdsparse.LocalityGroup{{}}}
		for _, a := range addrs {
			es.Localities[0].Endpoints = append(es.Localities[0].Endpoints, xdsparse.Endpoint{Address: a, Weight: 1, Healthy: true})
		}
		return map[string]*xdsparse.Cluster{"c": {Name: "c", Type: xdsparse.Static, LB: xdsparse.RoundRobin, Endpoints: es, ConnectTimeout: time.Second,
			MaxConnections: 1024, MaxRequests: 1024, MaxPending: 1024,
			SlowStart: &xdsparse.SlowStart{Window: time.Hour, Aggression: 1, MinWeight: 0.1}}}
	}
	count := func(c *Cluster) map[string]int {
		got := map[string]int{}
		for range 2000 {
			got[c.Pick(PickOptions{}).Addr]++
		}
		return got
	}
	m.now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	c := m.Update(cfg("10.0.0.1:80", "10.0.0.2:80"), nil)["c"]
	if got := count(c); got["10.0.0.1:80"] != 1000 {
		t.Errorf("two hosts of one update: %v, want an even round robin", got)
	}
	m.now = time.Now
	c = m.Update(cfg("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"), nil)["c"]
	got := count(c)
	// Expected 2000 * 0.1/2.1 = 95.
	if n := got["10.0.0.3:80"]; n < 30 || n > 250 {
		t.Errorf("the new host got %d of 2000 picks (%v), want about 95 (10%% weight)", n, got)
	}
}
