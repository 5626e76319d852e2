package xdsparse

import (
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"os"
	"sort"
	"strings"
	"testing"

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
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

var updateWireDesc = flag.Bool("update-wiredesc", false, "rewrite wiredesc_gen.go from go-control-plane's descriptors")

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
	// Well-known types an Any may carry (metadata's typed_filter_metadata).
	{"", &wrapperspb.StringValue{}}, {"", &wrapperspb.BytesValue{}}, {"", &wrapperspb.BoolValue{}},
	{"", &wrapperspb.Int32Value{}}, {"", &wrapperspb.Int64Value{}}, {"", &wrapperspb.UInt32Value{}},
	{"", &wrapperspb.UInt64Value{}}, {"", &wrapperspb.FloatValue{}}, {"", &wrapperspb.DoubleValue{}},
	{"descStruct", &structpb.Struct{}}, {"descValue", &structpb.Value{}}, {"", &structpb.ListValue{}}, {"", &durationpb.Duration{}}, {"", &emptypb.Empty{}},
}

// genWireDesc renders wiredesc_gen.go from the generated types' descriptors.
func genWireDesc() []byte {
	var order []protoreflect.MessageDescriptor
	index := map[protoreflect.FullName]int{}
	var enums []protoreflect.EnumDescriptor
	enumIndex := map[protoreflect.FullName]int{}
	var add func(md protoreflect.MessageDescriptor)
	add = func(md protoreflect.MessageDescriptor) {
		if _, ok := index[md.FullName()]; ok {
			return
		}
		index[md.FullName()] = len(order)
		order = append(order, md)
		fs := md.Fields()
		for i := 0; i < fs.Len(); i++ {
			if m := fs.Get(i).Message(); m != nil {
				add(m)
			}
			if e := fs.Get(i).Enum(); e != nil {
				if _, ok := enumIndex[e.FullName()]; !ok {
					enumIndex[e.FullName()] = len(enums)
					enums = append(enums, e)
				}
			}
		}
	}
	for _, r := range wireRoots {
		add(r.m.ProtoReflect().Descriptor())
	}
	var b bytes.Buffer
	b.WriteString("// Code generated by TestWireDescriptors -update-wiredesc; DO NOT EDIT.\n\npackage xdsparse\n\n")
	b.WriteString("// Indexes of the root messages in wireDescs.\nconst (\n")
	for _, r := range wireRoots {
		if r.goName == "" {
			continue
		}
		fmt.Fprintf(&b, "\t%s = %d // %s\n", r.goName, index[r.m.ProtoReflect().Descriptor().FullName()], r.m.ProtoReflect().Descriptor().FullName())
	}
	b.WriteString(")\n\n")
	b.WriteString("// wireDescs describes every message reachable from the roots: each field's\n// number, name, wire kind, cardinality, oneof and message type (an index).\n")
	b.WriteString("var wireDescs = [...]msgDesc{\n")
	for _, md := range order {
		fmt.Fprintf(&b, "\t{%q, []fieldDesc{\n", md.FullName())
		fs := md.Fields()
		var sorted []protoreflect.FieldDescriptor
		for i := 0; i < fs.Len(); i++ {
			sorted = append(sorted, fs.Get(i))
		}
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].Number() < sorted[j].Number() })
		for _, fd := range sorted {
			var flags []string
			if fd.IsList() || fd.IsMap() {
				flags = append(flags, "fList")
			}
			if fd.IsMap() {
				flags = append(flags, "fMap")
			}
			if fd.HasPresence() {
				flags = append(flags, "fPresence")
			}
			fl := "0"
			if len(flags) > 0 {
				fl = strings.Join(flags, "|")
			}
			oneof := 0
			if o := fd.ContainingOneof(); o != nil && !o.IsSynthetic() {
				oneof = o.Index() + 1
			}
			msg := -1
			if m := fd.Message(); m != nil {
				msg = index[m.FullName()]
			}
			if e := fd.Enum(); e != nil {
				msg = enumIndex[e.FullName()]
			}
			if fd.JSONName() != jsonCamelCase(string(fd.Name())) {
				panic(fmt.Sprintf("%s: json_name %q is not the default", fd.FullName(), fd.JSONName()))
			}
			if fd.IsMap() && fd.MapKey().Kind() != protoreflect.StringKind {
				panic(fmt.Sprintf("%s: a map without string keys", fd.FullName()))
			}
			fmt.Fprintf(&b, "\t\t{%d, %q, %s, %s, %d, %d},\n", fd.Number(), fd.Name(), wireKindName(fd), fl, oneof, msg)
		}
		b.WriteString("\t}},\n")
	}
	b.WriteString("}\n\n")
	b.WriteString("// wireEnums names the values of the enums of wireDescs' fields.\n")
	b.WriteString("var wireEnums = [...]enumDesc{\n")
	for _, e := range enums {
		fmt.Fprintf(&b, "\t{%q, []enumValue{", e.FullName())
		vs := e.Values()
		for i := 0; i < vs.Len(); i++ {
			fmt.Fprintf(&b, "{%d, %q}, ", vs.Get(i).Number(), vs.Get(i).Name())
		}
		b.WriteString("}},\n")
	}
	b.WriteString("}\n")
	out, err := format.Source(b.Bytes())
	if err != nil {
		panic(err)
	}
	return out
}

func wireKindName(fd protoreflect.FieldDescriptor) string {
	k := fd.Kind().String() // "uint32", "sfixed64", ...
	return "k" + strings.ToUpper(k[:1]) + k[1:]
}

// TestWireDescriptors: the table the wire decoder names fields from is
// go-control-plane's descriptors, as linked by the tests.
func TestWireDescriptors(t *testing.T) {
	want := genWireDesc()
	if *updateWireDesc {
		if err := os.WriteFile("wiredesc_gen.go", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("wiredesc_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("wiredesc_gen.go is stale: go test ./internal/proxy/xdsparse -run TestWireDescriptors -update-wiredesc")
	}
}
