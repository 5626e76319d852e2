package admin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
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

	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
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
	boot := Bootstrap{Node: &corev3.Node{Id: "router~10.0.0.1~gw.istio-system~istio-system.svc.cluster.local", Cluster: "istio-ingressgateway.istio-system"},
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
	if bs.Node.ID != boot.Node.Id || bs.Node.Cluster != boot.Node.Cluster || bs.Admin.Address.SocketAddress.PortValue != 15000 ||
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
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(b.XDSAddress)}}}}}}}}
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
