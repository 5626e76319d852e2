package main_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

func failing(name string, status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-backend", name)
		w.WriteHeader(status)
		fmt.Fprint(w, name)
	}
}

func withOutlier(c *clusterv3.Cluster, od *clusterv3.OutlierDetection) *clusterv3.Cluster {
	c.OutlierDetection = od
	return c
}

// TestOutlierDetection: hosts answering 5xx in a row are ejected from load
// balancing (consecutive_5xx, consecutive_gateway_failure), for
// base_ejection_time; max_ejection_percent bounds how many go at once.
func TestOutlierDetection(t *testing.T) {
	good := startBackend(t, "good", nil)
	bad := startBackend(t, "bad", failing("bad", 500))
	gw1 := startBackend(t, "gw1", failing("gw1", 503))
	gw2 := startBackend(t, "gw2", failing("gw2", 503))
	flaky := startBackend(t, "flaky", failing("flaky", 502))
	good2 := startBackend(t, "good2", nil)
	addr := freeAddr(t)
	xds := xdstest.Start(t, "127.0.0.1:0", nil)
	long := durationpb.New(time.Hour) // no host comes back during the test
	xds.Set(t, gwNode, "1", xdstest.Resources(
		xdstest.HTTPListener("l", addr, "r"),
		xdstest.RouteConfig("r", []string{"*"}, route("/5xx", "c5xx"), route("/gw", "gw"), route("/back", "back")),
		withOutlier(xdstest.StaticCluster("c5xx", good.addr, bad.addr), &clusterv3.OutlierDetection{
			Consecutive_5Xx: wrapperspb.UInt32(3), BaseEjectionTime: long, MaxEjectionPercent: wrapperspb.UInt32(50)}),
		// Both hosts fail with 503; at most 10% may be ejected, but one
		// host always can.
		withOutlier(xdstest.StaticCluster("gw", gw1.addr, gw2.addr), &clusterv3.OutlierDetection{
			Consecutive_5Xx: wrapperspb.UInt32(0), ConsecutiveGatewayFailure: wrapperspb.UInt32(2),
			EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100), BaseEjectionTime: long}),
		// A short ejection: the host returns to load balancing.
		withOutlier(xdstest.StaticCluster("back", good2.addr, flaky.addr), &clusterv3.OutlierDetection{
			Consecutive_5Xx: wrapperspb.UInt32(1), BaseEjectionTime: durationpb.New(200 * time.Millisecond), MaxEjectionPercent: wrapperspb.UInt32(50)}),
	))
	p := startProxy(t, xds.Addr, gwNode)
	p.waitReady(t)
	waitListening(t, addr)
	stat := func(name string) string {
		_, s := p.adminGet(t, "/stats")
		for _, l := range strings.Split(s, "\n") {
			if v, ok := strings.CutPrefix(l, name+": "); ok {
				return v
			}
		}
		return "missing"
	}

	t.Run("consecutive 5xx ejects the failing host", func(t *testing.T) {
		for range 10 {
			get(t, http.DefaultClient, "http://"+addr+"/5xx")
		}
		// Round robin: the bad host answered every other request until its
		// third 5xx in a row; after that only the good host answers.
		if n := bad.hits.Load(); n != 3 {
			t.Fatalf("bad host got %d requests, want 3 (ejected after 3 consecutive 5xx)", n)
		}
		for i := range 20 {
			if resp, body := get(t, http.DefaultClient, "http://"+addr+"/5xx"); resp.StatusCode != 200 {
				t.Fatalf("request %d after ejection: %d %q", i, resp.StatusCode, body)
			}
		}
		if v := stat("cluster.c5xx.outlier_detection_ejections_enforced_total"); v != "1" {
			t.Errorf("ejections_enforced_total = %s, want 1", v)
		}
		if v := stat("cluster.c5xx.outlier_detection_ejections_active"); v != "1" {
			t.Errorf("ejections_active = %s, want 1", v)
		}
	})
	t.Run("max ejection percent keeps one of two failing hosts", func(t *testing.T) {
		for range 12 {
			if resp, _ := get(t, http.DefaultClient, "http://"+addr+"/gw"); resp.StatusCode != 503 || resp.Header.Get("x-backend") == "" {
				t.Fatalf("want the backends' own 503 (a host stays in balancing), got %d %v", resp.StatusCode, resp.Header)
			}
		}
		if v := stat("cluster.gw.outlier_detection_ejections_enforced_total"); v != "1" {
			t.Errorf("gateway-error ejections = %s, want exactly 1 of 2 hosts", v)
		}
		// The one left takes everything now.
		before1, before2 := gw1.hits.Load(), gw2.hits.Load()
		for range 4 {
			get(t, http.DefaultClient, "http://"+addr+"/gw")
		}
		if d1, d2 := gw1.hits.Load()-before1, gw2.hits.Load()-before2; d1*d2 != 0 || d1+d2 != 4 {
			t.Errorf("after one ejection: gw1 +%d, gw2 +%d; want all 4 on one host", d1, d2)
		}
	})
	t.Run("ejected host comes back after base_ejection_time", func(t *testing.T) {
		eventually(t, "flaky host ejected and back again", func() bool {
			get(t, http.DefaultClient, "http://"+addr+"/back")
			// A second ejection needs the host back in balancing first.
			n, _ := strconv.Atoi(stat("cluster.back.outlier_detection_ejections_enforced_total"))
			return n >= 2
		})
	})
}
