package admin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/proxy/xdswire"
)

func testCert(t *testing.T, cn string, ca bool) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(4242), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Unix(1_700_000_000, 0), NotAfter: time.Unix(1_800_000_000, 0), IsCA: ca, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// TestConfigDumpSecretsAndBootstrap: the dump carries Envoy's bootstrap
// and secrets sections: active secrets with their chain and a redacted key,
// CA bundles, and named-but-missing credentials as warming.
func TestConfigDumpSecretsAndBootstrap(t *testing.T) {
	leaf, root := testCert(t, "leaf", false), testCert(t, "root", true)
	when := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	secrets := []Secret{
		{Name: "default", Version: "3", LastUpdated: when, Chain: []*x509.Certificate{leaf}},
		{Name: "ROOTCA", Version: "3", LastUpdated: when, CA: []*x509.Certificate{root}},
		{Name: "kubernetes://missing"},
	}
	boot := Bootstrap{Node: &xdswire.Node{ID: "router~10.0.0.1~gw.istio-system~istio-system.svc.cluster.local", Cluster: "istio-ingressgateway.istio-system"},
		XDSAddress: "127.0.0.1:15012", XDSTLS: true, AdminAddress: "127.0.0.1:15000", Started: when}
	out := ConfigDump(xdsparse.EmptySnapshot(), boot, secrets)
	if strings.Contains(string(out), "PRIVATE KEY") {
		t.Fatal("dump shows a private key")
	}
	var d struct {
		Configs []map[string]json.RawMessage `json:"configs"`
	}
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	first, last := d.Configs[0], d.Configs[len(d.Configs)-1]
	if string(first["@type"]) != `"`+BootstrapDumpType+`"` || string(last["@type"]) != `"`+SecretsDumpType+`"` {
		t.Fatalf("sections: first %s, last %s", first["@type"], last["@type"])
	}
	var bs struct {
		Node  struct{ ID, Cluster string }
		Admin struct {
			Address struct {
				SocketAddress struct {
					Address   string
					PortValue int
				}
			}
		}
		StaticResources struct {
			Clusters []struct {
				Name            string
				TransportSocket *struct{ Name string }
			}
		}
		DynamicResources struct{ AdsConfig struct{ APIType string } }
	}
	json.Unmarshal(first["bootstrap"], &bs)
	if bs.Node.ID != boot.Node.ID || bs.Node.Cluster != boot.Node.Cluster || bs.Admin.Address.SocketAddress.PortValue != 15000 ||
		len(bs.StaticResources.Clusters) != 1 || bs.StaticResources.Clusters[0].TransportSocket == nil || bs.DynamicResources.AdsConfig.APIType != "GRPC" {
		t.Errorf("bootstrap: %+v\n%s", bs, first["bootstrap"])
	}
	var active, warming []struct {
		Name        string
		VersionInfo string `json:"version_info"`
		Secret      struct {
			Name           string
			TLSCertificate *struct {
				CertificateChain struct{ InlineBytes []byte }
				PrivateKey       struct{ InlineString string }
			}
			ValidationContext *struct{ TrustedCa struct{ InlineBytes []byte } }
		}
	}
	json.Unmarshal(last["dynamic_active_secrets"], &active)
	json.Unmarshal(last["dynamic_warming_secrets"], &warming)
	if len(active) != 2 || active[0].VersionInfo != "3" || len(warming) != 1 || warming[0].Name != "kubernetes://missing" {
		t.Fatalf("active %d, warming %+v:\n%s", len(active), warming, out)
	}
	tc := active[0].Secret.TLSCertificate
	if tc == nil || tc.PrivateKey.InlineString != Redacted || !strings.Contains(string(tc.CertificateChain.InlineBytes), "BEGIN CERTIFICATE") {
		t.Errorf("default: %+v", active[0])
	}
	if vc := active[1].Secret.ValidationContext; vc == nil || !strings.Contains(string(vc.TrustedCa.InlineBytes), "BEGIN CERTIFICATE") {
		t.Errorf("ROOTCA: %+v", active[1])
	}
}

// TestBootstrapClusterIsEnvoys: the bootstrap's static cluster, written as
// JSON without go-control-plane's Cluster type, is what protojson makes of
// the Cluster Istio's bootstrap has.
func TestBootstrapClusterIsEnvoys(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		b := Bootstrap{XDSAddress: "istiod.istio-system.svc:15012", XDSTLS: tlsOn}
		js, err := json.Marshal(bootstrapCluster("xds-grpc", b))
		if err != nil {
			t.Fatal(err)
		}
		var got clusterv3.Cluster
		if err := protojson.Unmarshal(js, &got); err != nil {
			t.Fatalf("%v\n%s", err, js)
		}
		want := &clusterv3.Cluster{Name: "xds-grpc",
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
			LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "xds-grpc", Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: genSocketAddress(b.XDSAddress)}}}}}}}}
		if tlsOn {
			a, _ := anypb.New(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
				ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA"}}}})
			want.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
		}
		if !proto.Equal(&got, want) {
			t.Errorf("tls %v:\ngot  %v\nwant %v", tlsOn, &got, want)
		}
	}
}

// genSocketAddress is the generated Address socketAddress writes as JSON.
func genSocketAddress(hostPort string) *corev3.Address {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		host = hostPort
	}
	p, _ := strconv.ParseUint(port, 10, 32)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}}
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%v: %s", err, a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return reflect.DeepEqual(x, y)
}

// TestSectionsAreProtojsons: the Secret, Node, ConfigSource and Address
// JSON written without go-control-plane's types is what protojson makes of
// the generated messages (the oracle: the code before they left mast-proxy).
func TestSectionsAreProtojsons(t *testing.T) {
	leaf, root := testCert(t, "leaf", false), testCert(t, "root", true)
	inline := func(b []byte) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
	}
	anyJSON := func(m proto.Message) []byte {
		a, _ := anypb.New(m)
		b, err := protojson.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, c := range []struct {
		s    Secret
		want *tlsv3.Secret
	}{
		{Secret{Name: "default", Chain: []*x509.Certificate{leaf}}, &tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(pemOf([]*x509.Certificate{leaf})),
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: Redacted}}}}}},
		{Secret{Name: "ROOTCA", CA: []*x509.Certificate{root}}, &tlsv3.Secret{Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{
			ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: inline(pemOf([]*x509.Certificate{root}))}}}},
		{Secret{Name: "kubernetes://missing"}, &tlsv3.Secret{Name: "kubernetes://missing"}},
	} {
		if got, want := secretJSON(c.s), anyJSON(c.want); !sameJSON(t, got, want) {
			t.Errorf("secret %s:\ngot  %s\nwant %s", c.s.Name, got, want)
		}
	}
	md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": "ns", "LABELS": map[string]any{"app": "a"}})
	for _, n := range []*xdswire.Node{
		{},
		{ID: "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local", Cluster: "a.ns", Metadata: md, UserAgentName: "mast-proxy"},
		{ID: "x", Locality: xdswire.Locality{Region: "r", SubZone: "s"}, UserAgentVersion: "1.2", ClientFeatures: []string{"f1", "f2"}},
	} {
		g := &corev3.Node{Id: n.ID, Cluster: n.Cluster, Metadata: n.Metadata, UserAgentName: n.UserAgentName, ClientFeatures: n.ClientFeatures}
		if n.Locality != (xdswire.Locality{}) {
			g.Locality = &corev3.Locality{Region: n.Locality.Region, Zone: n.Locality.Zone, SubZone: n.Locality.SubZone}
		}
		if n.UserAgentVersion != "" {
			g.UserAgentVersionType = &corev3.Node_UserAgentVersion{UserAgentVersion: n.UserAgentVersion}
		}
		if got, want := nodeJSON(n), protoJSON(g); !sameJSON(t, got, want) {
			t.Errorf("node:\ngot  %s\nwant %s", got, want)
		}
	}
	for _, delta := range []bool{false, true} {
		b := Bootstrap{XDSAddress: "127.0.0.1:15010", AdminAddress: "127.0.0.1:15000", XDSDelta: delta}
		var sec struct {
			Bootstrap struct {
				Admin            struct{ Address json.RawMessage }
				DynamicResources struct{ AdsConfig, CdsConfig, LdsConfig json.RawMessage }
			}
		}
		if err := json.Unmarshal(bootstrapSection(b), &sec); err != nil {
			t.Fatal(err)
		}
		apiType := corev3.ApiConfigSource_GRPC
		if delta {
			apiType = corev3.ApiConfigSource_DELTA_GRPC
		}
		ads := protoJSON(&corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3,
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}})
		adsCfg := protoJSON(&corev3.ApiConfigSource{ApiType: apiType, TransportApiVersion: corev3.ApiVersion_V3,
			GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "xds-grpc"}}}}})
		dr := sec.Bootstrap.DynamicResources
		if !sameJSON(t, dr.AdsConfig, adsCfg) || !sameJSON(t, dr.CdsConfig, ads) || !sameJSON(t, dr.LdsConfig, ads) ||
			!sameJSON(t, sec.Bootstrap.Admin.Address, protoJSON(genSocketAddress(b.AdminAddress))) {
			t.Errorf("delta %v: bootstrap %s", delta, bootstrapSection(b))
		}
	}
	for _, a := range []string{"127.0.0.1:15000", "[::1]:0", "host-only", ""} {
		js, _ := json.Marshal(socketAddress(a))
		if !sameJSON(t, js, protoJSON(genSocketAddress(a))) {
			t.Errorf("address %q: %s, want %s", a, js, protoJSON(genSocketAddress(a)))
		}
	}
}
