package xdsclient_test

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

func TestDeltaSubscribesUpdatesAndRemoves(t *testing.T) {
	srv := xdstest.Start(t, "127.0.0.1:0", nil)
	srv.Set(t, nodeID, "1", v1())
	st, ctx := startWith(t, srv, true)
	st.waitFor(t, ctx, "all four types over delta", func(s *xdsparse.Snapshot) bool {
		e := s.Endpoints["outbound|9080||reviews"]
		return len(s.Listeners) == 1 && s.Routes["http_proxy"] != nil && e != nil && len(e.Localities) > 0 && len(e.Localities[0].Endpoints) == 2
	})
	// v2 drops the listener and changes endpoints: the server sends only
	// what changed and names what was removed.
	res := v1()
	delete(res, "type.googleapis.com/envoy.config.listener.v3.Listener")
	res["type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"] = []types.Resource{xdstest.CLA("outbound|9080||reviews", "127.0.2.9:9080")}
	srv.Set(t, nodeID, "2", res)
	st.waitFor(t, ctx, "listener removed and endpoints replaced", func(s *xdsparse.Snapshot) bool {
		e := s.Endpoints["outbound|9080||reviews"]
		return len(s.Listeners) == 0 && e != nil && len(e.Localities) > 0 && len(e.Localities[0].Endpoints) > 0 && e.Localities[0].Endpoints[0].Address == "127.0.2.9:9080"
	})
}

func TestDeltaNACKNamesResource(t *testing.T) {
	srv := xdstest.Start(t, "127.0.0.1:0", nil)
	srv.Set(t, nodeID, "1", v1())
	st, ctx := startWith(t, srv, true)
	st.waitFor(t, ctx, "v1", func(s *xdsparse.Snapshot) bool { return s.Clusters["outbound|9080||reviews"] != nil })
	res := v1()
	bad := xdstest.EDSCluster("outbound|9080||reviews")
	bad.LbPolicy = clusterv3.Cluster_RING_HASH
	bad.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(0)}}
	res["type.googleapis.com/envoy.config.cluster.v3.Cluster"] = []types.Resource{bad}
	srv.Set(t, nodeID, "2", res)
	ok := srv.WaitDelta(ctx, func(r *discoveryv3.DeltaDiscoveryRequest) bool {
		return r.GetTypeUrl() == xdsparse.ClusterType && r.GetErrorDetail() != nil &&
			strings.Contains(r.GetErrorDetail().GetMessage(), `cluster "outbound|9080||reviews": ring_hash_lb_config.minimum_ring_size 0`)
	})
	if !ok {
		t.Fatal("no delta NACK naming the cluster and field")
	}
	st.mu.Lock()
	lb := st.snap.Clusters["outbound|9080||reviews"].LB
	st.mu.Unlock()
	if lb != xdsparse.RoundRobin {
		t.Errorf("bad cluster replaced the last good one (lb %v)", lb)
	}
}

func TestDeltaReconnectSendsKnownVersions(t *testing.T) {
	srv := xdstest.Start(t, "127.0.0.1:0", nil)
	srv.Set(t, nodeID, "1", v1())
	st, ctx := startWith(t, srv, true)
	st.waitFor(t, ctx, "v1", func(s *xdsparse.Snapshot) bool { return s.Endpoints["outbound|9080||reviews"] != nil })
	srv.Stop()
	srv2 := xdstest.Start(t, srv.Addr, srv.Cache)
	ok := srv2.WaitDelta(ctx, func(r *discoveryv3.DeltaDiscoveryRequest) bool {
		return r.GetTypeUrl() == xdsparse.ClusterType && r.GetInitialResourceVersions()["outbound|9080||reviews"] != ""
	})
	if !ok {
		t.Fatal("reconnected delta stream did not report the versions it holds")
	}
}
