package dashboard

import (
	"math"
	"testing"
	"time"
)

// Rates divide by the time the rounds really covered: a round that
// started late (the previous one overran its interval) must not make the
// rate look higher than the requests over the elapsed time.
func TestRateOverMeasuredWindow(t *testing.T) {
	tr := newTraffic(5, 10)
	key := seriesKey{reporter: "source", srcNS: "default", srcWL: "productpage-v1",
		dstService: "reviews.default.svc.cluster.local", dstSvcName: "reviews", dstSvcNS: "default",
		dstNS: "default", dstWL: "reviews-v1", code: "200", security: "unknown"}
	live := map[string]bool{"p": true}
	t0 := time.Unix(1e9, 0)
	for _, r := range []struct {
		after    time.Duration
		requests float64
		want     float64 // edge rate after this round
	}{
		{0, 0, 0},                                        // baseline
		{2 * time.Second, 20, 10},                        // 20 over 2 s
		{8 * time.Second, 80, 80.0 / 8},                  // the round after started 6 s late: 80 over 8 s
		{10 * time.Second, 100, 100.0 / 10},              // on time again
		{12 * time.Second, 100, 100.0 / 12},              // nothing new
		{14 * time.Second, 120, 120.0 / 14},              // window is full (5 rounds of increments)
		{16 * time.Second, 140, (140.0 - 20) / (16 - 2)}, // the first increment left the window
	} {
		tr.round(t0.Add(r.after), map[string]map[seriesKey]*series{"p": {key: {requests: r.requests}}}, live)
		g := tr.graph(t0.Add(r.after), nil)
		got := 0.0
		for _, e := range g.Edges {
			if e.Source == workloadID("default", "productpage-v1") {
				got = e.Rate
			}
		}
		if math.Abs(got-r.want) > 1e-9 {
			t.Fatalf("after %v: rate %.4f, want %.4f (window %.1f s)", r.after, got, r.want, g.WindowSeconds)
		}
	}
}
