package xdsclient_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"golang.org/x/net/dns/dnsmessage"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/dnsstub"
	"github.com/mast-mesh/mast/internal/proxy/xdsclient"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

// store is a Handler over xdsparse snapshots that signals every change.
type store struct {
	mu      sync.Mutex
	snap    *xdsparse.Snapshot
	changed chan struct{}
}

func newStore() *store {
	return &store{snap: xdsparse.EmptySnapshot(), changed: make(chan struct{}, 100)}
}

func (s *store) Apply(typeURL, version string, res []*anypb.Any) error {
	s.mu.Lock()
	next, err := xdsparse.Apply(s.snap, typeURL, version, res)
	s.snap = next
	s.mu.Unlock()
	s.changed <- struct{}{}
	return err
}

func (s *store) Names(typeURL string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if typeURL == xdsparse.RouteType {
		return s.snap.RouteNames()
	}
	return s.snap.EndpointNames()
}

// waitFor blocks until cond holds on the snapshot.
func (s *store) waitFor(t *testing.T, ctx context.Context, what string, cond func(*xdsparse.Snapshot) bool) {
	t.Helper()
	for {
		s.mu.Lock()
		ok := cond(s.snap)
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.changed:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

const nodeID = "sidecar~127.0.1.7~productpage-v1.default~default.svc.cluster.local"

func start(t *testing.T, srv *xdstest.Server) (*store, context.Context) {
	return startWith(t, srv, false)
}

func startWith(t *testing.T, srv *xdstest.Server, delta bool) (*store, context.Context) {
	t.Helper()
	return startAt(t, srv.Addr, delta)
}

func startAt(t *testing.T, addr string, delta bool) (*store, context.Context) {
	t.Helper()
	node, err := xdsclient.BuildNode(xdsclient.NodeConfig{ID: nodeID, Meta: map[string]string{"INTERCEPTION_MODE": "NONE"}})
	if err != nil {
		t.Fatal(err)
	}
	st := newStore()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c := xdsclient.New(xdsclient.Config{Address: addr, Node: node, BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Delta: delta}, st)
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return st, ctx
}

func v1() map[string][]types.Resource {
	return xdstest.Resources(
		xdstest.HTTPListener("127.0.1.7_15001", "127.0.1.7:15001", "http_proxy"),
		xdstest.RouteConfig("http_proxy", []string{"reviews:9080"}, xdstest.RouteTo("/", "outbound|9080||reviews")),
		xdstest.EDSCluster("outbound|9080||reviews"),
		xdstest.CLA("outbound|9080||reviews", "127.0.2.1:9080", "127.0.2.2:9080"),
	)
}

func TestSubscribesInOrderAndACKs(t *testing.T) {
	srv := xdstest.Start(t, "127.0.0.1:0", nil)
	srv.Set(t, nodeID, "1", v1())
	st, ctx := start(t, srv)
	st.waitFor(t, ctx, "all four types", func(s *xdsparse.Snapshot) bool {
		e := s.Endpoints["outbound|9080||reviews"] // EDS may arrive after CDS
		return len(s.Listeners) == 1 && s.Routes["http_proxy"] != nil && s.Clusters["outbound|9080||reviews"] != nil &&
			e != nil && len(e.Localities) > 0 && len(e.Localities[0].Endpoints) == 2
	})
	for _, tc := range []struct {
		typ   string
		names []string
	}{
		{xdsparse.ListenerType, nil},
		{xdsparse.ClusterType, nil},
		{xdsparse.RouteType, []string{"http_proxy"}},
		{xdsparse.EndpointType, []string{"outbound|9080||reviews"}},
	} {
		r := srv.WaitRequest(ctx, func(r *discoveryv3.DiscoveryRequest) bool {
			return r.GetTypeUrl() == tc.typ && r.GetVersionInfo() == "1" && r.GetResponseNonce() != ""
		})
		if r == nil {
			t.Fatalf("%s: no ACK of version 1", tc.typ)
		}
		if r.GetErrorDetail() != nil {
			t.Errorf("%s: ACK carries error %v", tc.typ, r.GetErrorDetail())
		}
		if strings.Join(r.GetResourceNames(), ",") != strings.Join(tc.names, ",") {
			t.Errorf("%s: names %v, want %v", tc.typ, r.GetResourceNames(), tc.names)
		}
	}
	first := srv.Requests()[0]
	if first.GetNode().GetId() != nodeID || first.GetNode().GetMetadata().GetFields()["INTERCEPTION_MODE"].GetStringValue() != "NONE" {
		t.Errorf("first request node = %v, want id and INTERCEPTION_MODE NONE", first.GetNode())
	}
	if first.GetTypeUrl() != xdsparse.ClusterType {
		t.Errorf("first request type %s, want clusters first", first.GetTypeUrl())
	}
}

func TestNACKNamesResourceAndKeepsLastGood(t *testing.T) {
	srv := xdstest.Start(t, "127.0.0.1:0", nil)
	srv.Set(t, nodeID, "1", v1())
	st, ctx := start(t, srv)
	st.waitFor(t, ctx, "v1", func(s *xdsparse.Snapshot) bool { return s.Versions[xdsparse.ClusterType] == "1" })

	res := v1()
	bad := xdstest.EDSCluster("outbound|9080||reviews")
	bad.LbPolicy = clusterv3.Cluster_MAGLEV
	bad.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(1000)}}
	good := xdstest.StaticCluster("inbound|9080||", "127.0.0.1:9080")
	res["type.googleapis.com/envoy.config.cluster.v3.Cluster"] = []types.Resource{bad, good}
	srv.Set(t, nodeID, "2", res)

	nack := srv.WaitRequest(ctx, func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == xdsparse.ClusterType && r.GetErrorDetail() != nil
	})
	if nack == nil {
		t.Fatal("no NACK")
	}
	msg := nack.GetErrorDetail().GetMessage()
	for _, want := range []string{`cluster "outbound|9080||reviews"`, "maglev_lb_config.table_size 1000"} {
		if !strings.Contains(msg, want) {
			t.Errorf("NACK message %q lacks %q", msg, want)
		}
	}
	if nack.GetVersionInfo() != "1" {
		t.Errorf("NACK version_info %q, want last accepted 1", nack.GetVersionInfo())
	}
	st.waitFor(t, ctx, "good cluster of v2 taken, bad one kept at v1", func(s *xdsparse.Snapshot) bool {
		c := s.Clusters["outbound|9080||reviews"]
		return s.Clusters["inbound|9080||"] != nil && c != nil && c.LB == xdsparse.RoundRobin &&
			s.Endpoints["outbound|9080||reviews"] != nil
	})
}

func TestReconnectsAfterServerRestart(t *testing.T) {
	srv := xdstest.Start(t, "127.0.0.1:0", nil)
	srv.Set(t, nodeID, "1", v1())
	st, ctx := start(t, srv)
	// Both: the LDS request after reconnect must carry version 1.
	st.waitFor(t, ctx, "v1", func(s *xdsparse.Snapshot) bool {
		return s.Versions[xdsparse.EndpointType] == "1" && s.Versions[xdsparse.ListenerType] == "1"
	})
	srv.Stop()

	res := v1()
	res["type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"] = []types.Resource{
		xdstest.CLA("outbound|9080||reviews", "127.0.2.3:9080")}
	srv2 := xdstest.Start(t, srv.Addr, srv.Cache)
	srv2.Set(t, nodeID, "2", res)
	st.waitFor(t, ctx, "v2 endpoints after reconnect", func(s *xdsparse.Snapshot) bool {
		e := s.Endpoints["outbound|9080||reviews"]
		return e != nil && len(e.Localities) > 0 && len(e.Localities[0].Endpoints) == 1 && e.Localities[0].Endpoints[0].Address == "127.0.2.3:9080"
	})
	// The re-opened stream tells the server what it already has.
	r := srv2.WaitRequest(ctx, func(r *discoveryv3.DiscoveryRequest) bool { return r.GetTypeUrl() == xdsparse.ListenerType })
	if r.GetVersionInfo() != "1" {
		t.Errorf("first LDS request after reconnect has version %q, want 1", r.GetVersionInfo())
	}
}

// TestReceivesResponsesAboveGRPCDefault: gRPC's default 4 MiB receive limit
// made a mesh of 12,000 services (a 5.3 MB CDS response) never sync; the
// proxy looped on the refused response. The default is now 64 MiB.
func TestReceivesResponsesAboveGRPCDefault(t *testing.T) {
	srv := xdstest.Start(t, "127.0.0.1:0", nil)
	var res []types.Resource
	pad := strings.Repeat("x", 200)
	for i := range 25000 {
		res = append(res, xdstest.EDSCluster(fmt.Sprintf("outbound|9080||svc-%05d.%s.svc.cluster.local", i, pad)))
	}
	srv.Set(t, nodeID, "1", xdstest.Resources(res...))
	st, ctx := start(t, srv)
	st.waitFor(t, ctx, "25,000 clusters (more than 4 MiB)", func(s *xdsparse.Snapshot) bool { return len(s.Clusters) == 25000 })
}

// TestNoServiceConfigLookupInDNS: gRPC's DNS resolver also asks for a TXT
// record (a service config) besides the address; a nameserver that leaves
// it unanswered would hold the connection until the resolver's timeout. The
// client turns that lookup off: only the address is asked for.
func TestNoServiceConfigLookupInDNS(t *testing.T) {
	srv := xdstest.Start(t, "127.0.0.1:0", nil)
	srv.Set(t, nodeID, "1", v1())
	_, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	dns := dnsstub.Start(t, map[string]netip.Addr{"istiod.istio-system.svc": netip.MustParseAddr("127.0.0.1")}, dnsmessage.TypeTXT)
	st, ctx := startAt(t, "dns://"+dns.Addr+"/istiod.istio-system.svc:"+port, false)
	st.waitFor(t, ctx, "the listener, or a TXT query", func(s *xdsparse.Snapshot) bool {
		return len(s.Listeners) == 1 || dns.Asked(dnsmessage.TypeTXT) > 0
	})
	if n := dns.Asked(dnsmessage.TypeTXT); n != 0 {
		t.Fatalf("%d TXT (service config) queries, want none: %v", n, dns.Queries())
	}
	if dns.Asked(dnsmessage.TypeA) == 0 {
		t.Fatalf("the name was never resolved through the stub: %v", dns.Queries())
	}
}
