package xdsclient_test

import (
	"context"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/mast-mesh/mast/internal/proxy/xdsclient"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

// TestReportsHealth: a report made before the stream exists goes out once
// the stream's first requests have; a change goes out at once; the latest
// report is sent again on a new stream; both protocols.
func TestReportsHealth(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(map[bool]string{false: "sotw", true: "delta"}[delta], func(t *testing.T) {
			srv := xdstest.Start(t, "127.0.0.1:0", nil)
			srv.Set(t, nodeID, "1", v1())
			node, err := xdsclient.BuildNode(xdsclient.NodeConfig{ID: nodeID, Meta: map[string]string{"INTERCEPTION_MODE": "NONE"}})
			if err != nil {
				t.Fatal(err)
			}
			st := newStore()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c := xdsclient.New(xdsclient.Config{Address: srv.Addr, Node: node, BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Delta: delta}, st)
			c.ReportHealth(false, "httpGet: status 503")
			done := make(chan struct{})
			go func() { c.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()

			// health waits for the n-th health request and returns whether it
			// reported healthy and its message.
			health := func(srv *xdstest.Server, n int) (bool, string) {
				t.Helper()
				seen := 0
				var got struct {
					ok  bool
					msg string
				}
				if delta {
					if !srv.WaitDelta(ctx, func(r *discoveryv3.DeltaDiscoveryRequest) bool {
						if r.GetTypeUrl() != xdsclient.HealthInfoType {
							return false
						}
						seen++
						got.ok, got.msg = r.GetErrorDetail() == nil, r.GetErrorDetail().GetMessage()
						return seen == n
					}) {
						t.Fatalf("no health request %d", n)
					}
					return got.ok, got.msg
				}
				r := srv.WaitRequest(ctx, func(r *discoveryv3.DiscoveryRequest) bool {
					if r.GetTypeUrl() != xdsclient.HealthInfoType {
						return false
					}
					seen++
					return seen == n
				})
				if r == nil {
					t.Fatalf("no health request %d", n)
				}
				return r.GetErrorDetail() == nil, r.GetErrorDetail().GetMessage()
			}
			if ok, msg := health(srv, 1); ok || msg != "httpGet: status 503" {
				t.Fatalf("first report: healthy %v %q, want unhealthy with the probe's message", ok, msg)
			}
			c.ReportHealth(true, "")
			if ok, _ := health(srv, 2); !ok {
				t.Fatal("second report: unhealthy, want healthy")
			}
			st.waitFor(t, ctx, "v1", func(s *xdsparse.Snapshot) bool { return s.Versions[xdsparse.ClusterType] == "1" })
			srv.Stop()
			srv2 := xdstest.Start(t, srv.Addr, srv.Cache)
			if ok, _ := health(srv2, 1); !ok {
				t.Fatal("after reconnecting: unhealthy, want the latest report (healthy)")
			}
		})
	}
}
