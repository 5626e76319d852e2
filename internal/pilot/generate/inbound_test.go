package generate

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// A gRPC application behind its sidecar is spoken to in HTTP/2; an HTTP one in HTTP/1.1.
func TestInboundClusterProtocol(t *testing.T) {
	echo := &model.Proxy{
		ID: "sidecar~10.1.0.9~echo-1.default~default.svc.cluster.local", Type: model.SidecarProxy,
		IPAddresses: []string{"10.1.0.9"}, Name: "echo-1", Namespace: "default",
		Labels: map[string]string{"app": "echo"}, Metadata: map[string]string{},
	}
	clusters := gen1(t, bookinfoPush(), echo, ClusterType)
	c, ok := clusters[InboundClusterName(7070)].(*clusterv3.Cluster)
	if !ok {
		t.Fatalf("no inbound cluster for the gRPC port: %v", keys(clusters))
	}
	var opts upstreamhttpv3.HttpProtocolOptions
	if err := c.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey].UnmarshalTo(&opts); err != nil {
		t.Fatalf("inbound gRPC cluster has no HTTP protocol options: %v", err)
	}
	if opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Fatalf("inbound gRPC cluster does not use HTTP/2: %v", &opts)
	}
	pp := gen1(t, bookinfoPush(), productpageProxy(), ClusterType)
	if c := pp[InboundClusterName(9080)].(*clusterv3.Cluster); c.GetTypedExtensionProtocolOptions() != nil {
		t.Fatalf("inbound HTTP cluster has protocol options: %v", c.GetTypedExtensionProtocolOptions())
	}
}
