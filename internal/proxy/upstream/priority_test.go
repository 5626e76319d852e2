package upstream

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// localities builds an endpoint set: one group per (locality, priority,
// weight, endpoint count); endpoint addresses are 127.0.<group>.<n>.
func localities(groups ...xdsparse.LocalityGroup) *xdsparse.EndpointSet {
	es := &xdsparse.EndpointSet{Name: "c"}
	for i, g := range groups {
		n := len(g.Endpoints)
		g.Endpoints = nil
		for j := 0; j < n; j++ {
			g.Endpoints = append(g.Endpoints, xdsparse.Endpoint{Address: fmt.Sprintf("127.0.%d.%d:80", i+1, j+1), Weight: 1, Healthy: true, Locality: g.Locality})
		}
		es.Localities = append(es.Localities, g)
	}
	return es
}

func group(loc string, prio, weight uint32, n int) xdsparse.LocalityGroup {
	return xdsparse.LocalityGroup{Locality: loc, Priority: prio, Weight: weight, Endpoints: make([]xdsparse.Endpoint, n)}
}

func localityCluster(es *xdsparse.EndpointSet, weighted bool) *Cluster {
	cfg := &xdsparse.Cluster{Name: "c", Type: xdsparse.Static, LB: xdsparse.RoundRobin, Endpoints: es, ConnectTimeout: time.Second,
		MaxConnections: 1024, MaxRequests: 1024, MaxPending: 1024, PanicThreshold: 50, LocalityWeighted: weighted,
		Outlier: &xdsparse.OutlierDetection{Consecutive5xx: 1, BaseEjectionTime: time.Hour, MaxEjectionTime: time.Hour, MaxEjectionPercent: 100}}
	return NewManager(slog.New(slog.DiscardHandler)).Update(map[string]*xdsparse.Cluster{"c": cfg}, nil)["c"]
}

// share picks n times and returns the share of picks per locality group
// (the third byte of the address), in percent.
func share(c *Cluster, n int) map[string]int {
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		h := c.Pick(PickOptions{})
		if h == nil {
			counts["none"]++
			continue
		}
		var a, b, g, e int
		fmt.Sscanf(h.Addr, "%d.%d.%d.%d:80", &a, &b, &g, &e)
		counts[fmt.Sprint("g", g)]++
	}
	for k, v := range counts {
		counts[k] = v * 100 / n
	}
	return counts
}

func (c *Cluster) ejectAddr(t *testing.T, addr string) {
	t.Helper()
	for _, h := range c.Hosts() {
		if h.Addr == addr {
			c.eject(h, time.Now())
			return
		}
	}
	t.Fatalf("no host %s", addr)
}

// TestPriorityFailover: traffic stays in priority 0 while it is healthy
// enough; outlier ejections move Envoy's share of it to priority 1 (with
// the 1.4 overprovisioning factor: one of two hosts ejected leaves
// priority 0 with 70 %), and all of it once priority 0 has no usable host.
func TestPriorityFailover(t *testing.T) {
	c := localityCluster(localities(group("r1/z1/", 0, 1, 2), group("r1/z2/", 1, 1, 2)), false)
	within := func(got, want int) bool { return got >= want-4 && got <= want+4 }
	if s := share(c, 2000); s["g1"] != 100 {
		t.Fatalf("all healthy: %v, want all in priority 0", s)
	}
	c.ejectAddr(t, "127.0.1.1:80")
	if s := share(c, 4000); !within(s["g1"], 70) || !within(s["g2"], 30) {
		t.Errorf("one of two priority-0 hosts ejected: %v, want 70/30", s)
	}
	c.ejectAddr(t, "127.0.1.2:80")
	if s := share(c, 2000); s["g2"] != 100 {
		t.Errorf("priority 0 ejected: %v, want all in priority 1", s)
	}
	// Overprovisioning 1.4: 3 of 4 usable (75 % * 1.4 > 100) keeps it all.
	c = localityCluster(localities(group("a", 0, 1, 4), group("b", 1, 1, 1)), false)
	c.ejectAddr(t, "127.0.1.1:80")
	if s := share(c, 2000); s["g1"] != 100 {
		t.Errorf("3 of 4 usable: %v, want all in priority 0", s)
	}
	// EDS-unhealthy endpoints count against their priority.
	es := localities(group("a", 0, 1, 2), group("b", 1, 1, 2))
	es.Localities[0].Endpoints[0].Healthy = false
	c = localityCluster(es, false)
	if s := share(c, 4000); !within(s["g1"], 70) || !within(s["g2"], 30) {
		t.Errorf("one of two EDS-unhealthy: %v, want 70/30", s)
	}
}

// TestLocalityWeighted: with locality_weighted_lb_config, localities of a
// priority share its traffic by weight (Istio's distribute), scaled by
// availability; a locality without weight gets nothing.
func TestLocalityWeighted(t *testing.T) {
	c := localityCluster(localities(group("r1/z1/", 0, 80, 2), group("r1/z2/", 0, 20, 2), group("r2/z1/", 0, 0, 1)), true)
	within := func(got, want int) bool { return got >= want-4 && got <= want+4 }
	if s := share(c, 4000); !within(s["g1"], 80) || !within(s["g2"], 20) || s["g3"] != 0 {
		t.Errorf("weights 80/20/0: %v", s)
	}
	// Half of z1 ejected: its availability is 70 %, its effective weight 56 against 20.
	c.ejectAddr(t, "127.0.1.1:80")
	if s := share(c, 4000); !within(s["g1"], 74) || !within(s["g2"], 26) {
		t.Errorf("z1 half ejected: %v, want 74/26", s)
	}
}

// TestSkipLevels: retry previous_priorities leaves the priorities of
// earlier attempts out of the load (the rest takes it all); when every
// priority with a usable host is skipped, the unmodified load applies.
func TestSkipLevels(t *testing.T) {
	c := localityCluster(localities(group("r1/z1/", 0, 1, 1), group("r1/z2/", 1, 1, 1), group("r2/z1/", 2, 1, 1)), false)
	pick := func(skip uint64) string {
		h := c.Pick(PickOptions{SkipLevels: skip})
		if h == nil {
			return "none"
		}
		return h.Addr
	}
	for range 20 {
		if got := pick(1); got != "127.0.2.1:80" {
			t.Fatalf("priority 0 skipped: picked %s, want priority 1's host", got)
		}
		if got := pick(1 | 2); got != "127.0.3.1:80" {
			t.Fatalf("priorities 0 and 1 skipped: picked %s, want priority 2's host", got)
		}
		if got := pick(7); got != "127.0.1.1:80" {
			t.Fatalf("every priority skipped: picked %s, want the unmodified load (priority 0)", got)
		}
	}
	for addr, want := range map[string]int{"127.0.1.1:80": 0, "127.0.2.1:80": 1, "127.0.3.1:80": 2} {
		for _, h := range c.Hosts() {
			if h.Addr == addr && c.LevelOf(h) != want {
				t.Errorf("LevelOf(%s) = %d, want %d", addr, c.LevelOf(h), want)
			}
		}
	}
}

// TestSplitLocalOrigin: with split_external_local_origin_errors, local
// failures (connect errors, resets) count apart from 5xx — two in a row
// eject (consecutive_local_origin_failure 2), an answer from the upstream
// ends the run, and they never count toward consecutive_5xx.
func TestSplitLocalOrigin(t *testing.T) {
	cfg := &xdsparse.Cluster{Name: "c", Type: xdsparse.Static, LB: xdsparse.RoundRobin, Endpoints: localities(group("a", 0, 1, 2)), ConnectTimeout: time.Second,
		MaxConnections: 1024, MaxRequests: 1024, MaxPending: 1024, PanicThreshold: 0,
		Outlier: &xdsparse.OutlierDetection{Consecutive5xx: 2, Enforcing5xx: 100, SplitLocalOrigin: true, ConsecutiveLocal: 2, EnforcingLocal: 100,
			BaseEjectionTime: time.Hour, MaxEjectionTime: time.Hour, MaxEjectionPercent: 100}}
	c := NewManager(slog.New(slog.DiscardHandler)).Update(map[string]*xdsparse.Cluster{"c": cfg}, nil)["c"]
	hosts := c.Hosts()
	a, b := hosts[0], hosts[1]
	local := errors.New("connection refused")
	c.ReportResult(a, 0, local)
	c.ReportResult(a, 200, nil) // an answer ends the run of local failures
	c.ReportResult(a, 0, local)
	if a.Ejected(time.Now()) {
		t.Fatal("ejected after local failures that were not consecutive")
	}
	c.ReportResult(a, 0, local)
	if !a.Ejected(time.Now()) {
		t.Fatal("not ejected after 2 consecutive local failures")
	}
	// Local failures do not count as 5xx: one 503 after them does not eject.
	c.ReportResult(b, 0, local)
	c.ReportResult(b, 503, nil)
	if b.Ejected(time.Now()) {
		t.Fatal("a local failure counted toward consecutive_5xx")
	}
	c.ReportResult(b, 503, nil)
	if !b.Ejected(time.Now()) {
		t.Fatal("not ejected after 2 consecutive 5xx")
	}
}

// TestOutlierErrorCodes: with outlierDetectionHttpErrorCodes only the
// listed statuses are errors: two 404s in a row eject (a listed code
// counts as a 5xx), while 500s, not listed, are successes and never eject.
func TestOutlierErrorCodes(t *testing.T) {
	cfg := &xdsparse.Cluster{Name: "c", Type: xdsparse.Static, LB: xdsparse.RoundRobin, Endpoints: localities(group("a", 0, 1, 2)), ConnectTimeout: time.Second,
		MaxConnections: 1024, MaxRequests: 1024, MaxPending: 1024, OutlierErrorCodes: []int{404, 503},
		Outlier: &xdsparse.OutlierDetection{Consecutive5xx: 2, Enforcing5xx: 100, ConsecutiveGateway: 1, EnforcingGateway: 0,
			BaseEjectionTime: time.Hour, MaxEjectionTime: time.Hour, MaxEjectionPercent: 100}}
	c := NewManager(slog.New(slog.DiscardHandler)).Update(map[string]*xdsparse.Cluster{"c": cfg}, nil)["c"]
	hosts := c.Hosts()
	a, b := hosts[0], hosts[1]
	for range 5 {
		c.ReportResult(a, 500, nil)
	}
	if a.Ejected(time.Now()) {
		t.Fatal("ejected after 500s, which are not listed error codes")
	}
	c.ReportResult(b, 404, nil)
	c.ReportResult(b, 500, nil) // a success: ends the run
	c.ReportResult(b, 404, nil)
	if b.Ejected(time.Now()) {
		t.Fatal("ejected after 404s that were not consecutive")
	}
	c.ReportResult(b, 404, nil)
	if !b.Ejected(time.Now()) {
		t.Fatal("not ejected after 2 consecutive 404s (a listed code)")
	}
}
