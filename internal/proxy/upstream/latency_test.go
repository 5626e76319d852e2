package upstream

import (
	"log/slog"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

func TestLatencyBuckets(t *testing.T) {
	for _, d := range []time.Duration{time.Microsecond, 3 * time.Microsecond, 900 * time.Microsecond, 10 * time.Millisecond, 2 * time.Second} {
		up := latUpper(latBucket(d))
		if up < d || float64(up) > float64(d)*1.3+float64(time.Microsecond) {
			t.Errorf("%v: bucket upper bound %v", d, up)
		}
	}
}

// TestLatencyEjection: of four hosts, the one whose p90 is over 3x the
// others' median (and 10ms above it) is ejected at the end of the interval;
// max_ejection_percent still bounds ejections.
func TestLatencyEjection(t *testing.T) {
	cfg := &xdsparse.Cluster{Name: "c", Outlier: &xdsparse.OutlierDetection{BaseEjectionTime: time.Minute, MaxEjectionTime: time.Hour,
		MaxEjectionPercent: 25, Interval: time.Hour,
		Latency: &xdsparse.LatencyOutlier{Percentile: 90, Factor: 3, MinimumExcess: 10 * time.Millisecond, RequestVolume: 5, MinimumHosts: 3}}}
	m := NewManager(slog.New(slog.DiscardHandler))
	var eps []xdsparse.Endpoint
	for _, a := range []string{"h1:1", "h2:1", "h3:1", "h4:1"} {
		eps = append(eps, xdsparse.Endpoint{Address: a, Weight: 1, Healthy: true})
	}
	cfg.Endpoints = &xdsparse.EndpointSet{Localities: []xdsparse.LocalityGroup{{Endpoints: eps}}}
	c := m.Update(map[string]*xdsparse.Cluster{"c": cfg}, nil)["c"]
	hosts := c.Hosts()
	for i := 0; i < 10; i++ {
		c.ReportLatency(hosts[0], 2*time.Millisecond)
		c.ReportLatency(hosts[1], 3*time.Millisecond)
		c.ReportLatency(hosts[2], 40*time.Millisecond) // slow, and so is h4
		c.ReportLatency(hosts[3], 45*time.Millisecond)
	}
	c.judgeLatency(time.Now())
	// h3 and h4 are both slow: the median of the others is 3ms or 40ms;
	// with max_ejection_percent 25, at most one is ejected.
	ejected := 0
	for _, h := range hosts {
		if h.Ejected(time.Now()) {
			ejected++
		}
	}
	if ejected > 1 {
		t.Fatalf("%d hosts ejected, max_ejection_percent allows 1", ejected)
	}
	// A single slow host among fast ones is ejected.
	cfg2 := *cfg
	m2 := NewManager(slog.New(slog.DiscardHandler))
	c2 := m2.Update(map[string]*xdsparse.Cluster{"c": &cfg2}, nil)["c"]
	hs := c2.Hosts()
	for i := 0; i < 10; i++ {
		c2.ReportLatency(hs[0], 2*time.Millisecond)
		c2.ReportLatency(hs[1], 3*time.Millisecond)
		c2.ReportLatency(hs[2], 2*time.Millisecond)
		c2.ReportLatency(hs[3], 300*time.Millisecond)
	}
	c2.judgeLatency(time.Now())
	for i, h := range hs {
		if h.Ejected(time.Now()) != (i == 3) {
			t.Errorf("host %d ejected %v", i, h.Ejected(time.Now()))
		}
	}
	if c2.LatencyEjections() != 1 {
		t.Errorf("latency ejections %d", c2.LatencyEjections())
	}
	// Too few answers: nobody is judged.
	for i := 0; i < 2; i++ {
		c2.ReportLatency(hs[0], 2*time.Millisecond)
		c2.ReportLatency(hs[1], 900*time.Millisecond)
		c2.ReportLatency(hs[2], 2*time.Millisecond)
	}
	c2.judgeLatency(time.Now())
	if hs[1].Ejected(time.Now()) {
		t.Error("a host with 2 answers (request volume 5) was ejected")
	}
}

func TestRetryBudgetLimit(t *testing.T) {
	c := &Cluster{Cfg: &xdsparse.Cluster{MaxRetries: 3}, Stats: &Stats{}}
	if c.RetryLimit() != 3 {
		t.Fatalf("no budget: %d", c.RetryLimit())
	}
	c.Cfg.RetryBudget = &xdsparse.RetryBudget{Percent: 20, MinConcurrency: 3}
	c.Stats.RqActive.Store(100)
	if c.RetryLimit() != 20 {
		t.Fatalf("20%% of 100: %d", c.RetryLimit())
	}
	c.Stats.RqActive.Store(5)
	if c.RetryLimit() != 3 {
		t.Fatalf("minimum 3: %d", c.RetryLimit())
	}
	c.Cfg.RetryBudget.Interval = time.Minute
	for i := 0; i < 50; i++ {
		c.NoteRequest()
	}
	if c.RetryLimit() != 10 {
		t.Fatalf("20%% of 50 recent: %d", c.RetryLimit())
	}
}
