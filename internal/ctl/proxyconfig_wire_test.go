package ctl

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/admin"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

// TestProxyConfigReadsWireRenderedDump: clusters and endpoints, which
// mast-proxy renders from the wire without go-control-plane's types, come
// out of its /config_dump in the shape `mast proxy-config` reads.
func TestProxyConfigReadsWireRenderedDump(t *testing.T) {
	pack := func(m proto.Message) *anypb.Any { a, _ := anypb.New(m); return a }
	eds := xdstest.EDSCluster("outbound|9080||reviews.default.svc.cluster.local")
	eds.EdsClusterConfig.ServiceName = "outbound|9080|v2|reviews.default.svc.cluster.local"
	static := xdstest.StaticCluster("BlackHoleCluster")
	s, err := xdsparse.Apply(xdsparse.EmptySnapshot(), xdsparse.ClusterType, "1", []*anypb.Any{pack(eds), pack(static)})
	if err != nil {
		t.Fatal(err)
	}
	cla := xdstest.CLA(eds.EdsClusterConfig.ServiceName, "10.0.0.7:9080")
	if s, err = xdsparse.Apply(s, xdsparse.EndpointType, "1", []*anypb.Any{pack(cla)}); err != nil {
		t.Fatal(err)
	}
	d, err := parseConfigDump(admin.ConfigDump(s, admin.Bootstrap{XDSAddress: "127.0.0.1:15010"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Clusters) != 2 || d.Clusters[1].Name != eds.Name || d.Clusters[1].Type != "EDS" || d.Clusters[1].EDS == nil ||
		d.Clusters[1].EDS.ServiceName != eds.EdsClusterConfig.ServiceName || d.Clusters[0].Type != "STATIC" {
		t.Fatalf("clusters %+v", d.Clusters)
	}
	if len(d.Endpoints) != 1 || d.Endpoints[0].ClusterName != cla.ClusterName || len(d.Endpoints[0].Endpoints) != 1 ||
		d.Endpoints[0].Endpoints[0].LBEndpoints[0].Endpoint.Address.SocketAddress.PortValue != 9080 {
		t.Fatalf("endpoints %+v", d.Endpoints)
	}
}
