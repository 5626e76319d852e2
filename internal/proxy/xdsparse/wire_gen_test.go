package xdsparse

import (
	"flag"
	"testing"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	httpinspv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	prevprio "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	proxyprotocolv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/proxy_protocol/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

var updateWireTable = flag.Bool("update", false, "rewrite wire_gen.go from go-control-plane's descriptors")

// wireRoots are the messages the proxy decodes with the wire decoder, with
// the Go names of their descriptor indexes. Everything reachable from them
// is in the table, so that the decoder checks wire format and UTF-8 as
// proto.Unmarshal would, and can name any field it refuses.
var wireRoots = []struct {
	goName string
	m      proto.Message
}{
	{"descCluster", &clusterv3.Cluster{}},
	{"descHTTPProtocolOptions", &httpv3.HttpProtocolOptions{}},
	// Rendered in /config_dump: EDS resources and the TLS contexts inside
	// clusters' transport sockets.
	{"descClusterLoadAssignment", &endpointv3.ClusterLoadAssignment{}},
	{"descUpstreamTLSContext", &tlsv3.UpstreamTlsContext{}},
	// RDS and VHDS; previous_priorities is a retry policy's typed config.
	{"descRouteConfiguration", &routev3.RouteConfiguration{}},
	{"descVirtualHost", &routev3.VirtualHost{}},
	{"descPreviousPriorities", &prevprio.PreviousPrioritiesConfig{}},
	// LDS: the listener itself (its filters' typed configs are parsed apart).
	{"descListener", &listenerv3.Listener{}},
	// The connection manager (with the tracers and access loggers it
	// takes), tcp_proxy, and the typed configs only rendered in
	// /config_dump: the router, the listener filters, the transport
	// sockets the proxy does not link.
	{"descHTTPConnectionManager", &hcmv3.HttpConnectionManager{}},
	{"descOpenTelemetryConfig", &tracev3.OpenTelemetryConfig{}},
	{"descZipkinConfig", &tracev3.ZipkinConfig{}},
	{"descFileAccessLog", &filev3.FileAccessLog{}},
	{"descStdoutAccessLog", &streamv3.StdoutAccessLog{}},
	{"descStderrAccessLog", &streamv3.StderrAccessLog{}},
	{"descTCPProxy", &tcpv3.TcpProxy{}},
	{"descDownstreamTLSContext", &tlsv3.DownstreamTlsContext{}},
	{"descProxyProtocolUpstream", &proxyprotocolv3.ProxyProtocolUpstreamTransport{}},
	{"", &rawbufferv3.RawBuffer{}}, {"", &routerv3.Router{}},
	{"", &origdstv3.OriginalDst{}}, {"", &tlsinspv3.TlsInspector{}}, {"", &httpinspv3.HttpInspector{}},
	// SDS secrets, for the admin's /config_dump to render without linking
	// the TLS types.
	{"", &tlsv3.Secret{}},
	// The stats filter's configuration, a TypedStruct of stats.PluginConfig.
	{"descTypedStruct", &xdstypev3.TypedStruct{}},
	// Well-known types an Any may carry (metadata's typed_filter_metadata).
	{"", &wrapperspb.StringValue{}}, {"", &wrapperspb.BytesValue{}}, {"", &wrapperspb.BoolValue{}},
	{"", &wrapperspb.Int32Value{}}, {"", &wrapperspb.Int64Value{}}, {"", &wrapperspb.UInt32Value{}},
	{"", &wrapperspb.UInt64Value{}}, {"", &wrapperspb.FloatValue{}}, {"", &wrapperspb.DoubleValue{}},
	{"descStruct", &structpb.Struct{}}, {"descValue", &structpb.Value{}}, {"", &structpb.ListValue{}}, {"", &durationpb.Duration{}}, {"", &emptypb.Empty{}},
}

// TestWireTable: the table the wire decoder names fields from is
// go-control-plane's descriptors, as linked by the tests (a full table:
// /config_dump renders from it).
func TestWireTable(t *testing.T) {
	var consts []string
	var roots []protoreflect.MessageDescriptor
	for _, r := range wireRoots {
		consts = append(consts, r.goName)
		roots = append(roots, r.m.ProtoReflect().Descriptor())
	}
	src, err := pbwiregen.FullSource("xdsparse", "wireTable", consts, roots...)
	if err != nil {
		t.Fatal(err)
	}
	// Every field renders with protobuf's default json_name, and every
	// map has string keys.
	tab, _ := pbwiregen.FullTable(roots...)
	for _, d := range tab {
		if d.Enum {
			continue
		}
		md, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(d.Name))
		if err != nil {
			t.Fatal(err)
		}
		fs := md.(protoreflect.MessageDescriptor).Fields()
		for i := 0; i < fs.Len(); i++ {
			fd := fs.Get(i)
			if fd.JSONName() != jsonCamelCase(string(fd.Name())) {
				t.Errorf("%s: json_name %q is not the default", fd.FullName(), fd.JSONName())
			}
			if fd.IsMap() && fd.MapKey().Kind() != protoreflect.StringKind {
				t.Errorf("%s: a map without string keys", fd.FullName())
			}
		}
	}
	pbwiregen.CheckFile(t, "wire_gen.go", src, *updateWireTable, "./internal/proxy/xdsparse")
}
