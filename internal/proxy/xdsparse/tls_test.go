package xdsparse

import (
	"slices"
	"strings"
	"testing"
	"unsafe"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

func sdsRef(name string) *tlsv3.SdsSecretConfig { return &tlsv3.SdsSecretConfig{Name: name} }

func socket(m proto.Message) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: TLSTransportSocket, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: xdstest.Any(m)}}
}

// istioCommon is the CommonTlsContext Mast's control plane (and Istio's)
// sends for ISTIO_MUTUAL.
func istioCommon(sans ...string) *tlsv3.CommonTlsContext {
	var ms []*tlsv3.SubjectAltNameMatcher
	for _, s := range sans {
		ms = append(ms, &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}})
	}
	return &tlsv3.CommonTlsContext{
		TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3},
		AlpnProtocols:                  []string{"istio-peer-exchange", "istio"},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("default")},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: ms},
			ValidationContextSdsSecretConfig: sdsRef("ROOTCA"),
		}},
	}
}

func TestParseTransportSocket(t *testing.T) {
	file := func(p string) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: p}}
	}
	cases := []struct {
		name     string
		ts       *corev3.TransportSocket
		upstream bool
		want     string // error substring; "" accepts
		check    func(*TLSContext) bool
	}{
		{"nil is plaintext", nil, true, "", func(c *TLSContext) bool { return c == nil }},
		{"raw buffer by name", &corev3.TransportSocket{Name: RawBufferTransportSocket}, true, "", func(c *TLSContext) bool { return c == nil }},
		{"istio mutual client", socket(&tlsv3.UpstreamTlsContext{Sni: "outbound_.9080_._.reviews.default.svc.cluster.local", CommonTlsContext: istioCommon("spiffe://cluster.local/ns/default/sa/reviews")}), true, "",
			func(c *TLSContext) bool {
				return c.SPIFFE() && c.CertSDS == SDSWorkloadCert && c.MinVersion == VersionTLS13 && len(c.SANs) == 1 && c.SANs[0].Type == SANURI && c.Key != ""
			}},
		{"istio mutual server", socket(&tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: istioCommon()}), false, "",
			func(c *TLSContext) bool { return c.RequireClientCert && c.SPIFFE() && !c.Upstream }},
		{"simple with a CA file", socket(&tlsv3.UpstreamTlsContext{Sni: "api.example.com", CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: file("/etc/ca.pem")}}}}), true, "",
			func(c *TLSContext) bool {
				return c.Verify && !c.SPIFFE() && c.TrustedCA.File == "/etc/ca.pem" && c.SNI == "api.example.com"
			}},
		{"kubernetes credential", socket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("kubernetes://bookinfo-cert")}}}), true, "",
			func(c *TLSContext) bool { n, ok := Credential(c.CertSDS); return ok && n == "bookinfo-cert" }},
		{"credential name with a path", socket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("kubernetes://../etc")}}}), true, `"../etc" is not a valid credential name`, nil},
		{"other SDS secret", socket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("file-cert:/a~/b")}}}), true, `SDS secret "file-cert:/a~/b" is not available`, nil},
		{"credential mutual server with pins and ciphers", socket(&tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams:                      &tlsv3.TlsParameters{CipherSuites: []string{"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-PSK-AES128-CBC-SHA", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256"}},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("kubernetes://gw")},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{VerifyCertificateSpki: []string{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
					VerifyCertificateHash: []string{strings.Repeat("ab:", 31) + "ab"}},
				ValidationContextSdsSecretConfig: sdsRef("kubernetes://gw-cacert")}}}}), false, "",
			func(c *TLSContext) bool {
				return c.Verify && !c.SPIFFE() && c.RootsSDS == "kubernetes://gw-cacert" && len(c.SPKIPins) == 1 && len(c.CertHashes) == 1 &&
					c.CertHashes[0][0] == 0xab && slices.Equal(c.CipherSuites, []uint16{0xc02b, 0xc030})
			}},
		{"unknown cipher suite", socket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams: &tlsv3.TlsParameters{CipherSuites: []string{"NOT-A-SUITE"}}}}), true, `cipher_suites[0] "NOT-A-SUITE"`, nil},
		{"bad spki pin", socket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: file("/ca"),
				VerifyCertificateSpki: []string{"c2hvcnQ="}}}}}), true, "verify_certificate_spki[0]", nil},
		{"crl file missing", socket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: file("/ca"), Crl: file("/nonexistent/crl")}}}}), true, "validation_context.crl", nil},
		{"crl unparsable", socket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: file("/ca"),
				Crl: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n"}}}}}}), true, "validation_context.crl (inline): PEM block 0", nil},
		{"crl leaf-only without crl", socket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: file("/ca"), OnlyVerifyLeafCertCrl: true}}}}), true, "only_verify_leaf_cert_crl without a crl", nil},
		{"validation without roots", socket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{}}}}), true, "no trusted_ca", nil},
		{"accept untrusted refused upstream", socket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{TrustedCa: file("/ca"),
				TrustChainVerification: tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED}}}}), true, "ACCEPT_UNTRUSTED is supported for downstream (server) contexts only", nil},
		{"server without certificate", socket(&tlsv3.DownstreamTlsContext{}), false, "needs a certificate", nil},
		{"client cert required without validation", socket(&tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true),
			CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("default")}}}), false, "without a validation context", nil},
		{"TLS 1.0", socket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsParams: &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_0}}}), true, "only TLSv1_2 and TLSv1_3", nil},
		{"bad sni", socket(&tlsv3.UpstreamTlsContext{Sni: "a b"}), true, "not a valid server name", nil},
		{"downstream context on a cluster", socket(&tlsv3.DownstreamTlsContext{}), true, "want UpstreamTlsContext", nil},
		{"two certificates", socket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("default"), sdsRef("default")}}}), true, "2 certificates", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseTS(t, tc.ts, tc.upstream)
			checkErr(t, err, tc.want)
			if err == nil && tc.check != nil && !tc.check(c) {
				t.Fatalf("unexpected context %+v", c)
			}
		})
	}
}

func TestClusterTransportSocketMatches(t *testing.T) {
	c := xdstest.EDSCluster("outbound|9080||reviews")
	c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{
		{Name: "tlsMode-istio", Match: &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
			TransportSocket: socket(&tlsv3.UpstreamTlsContext{CommonTlsContext: istioCommon()})},
		{Name: "tlsMode-disabled", Match: &structpb.Struct{}, TransportSocket: &corev3.TransportSocket{Name: RawBufferTransportSocket}},
	}
	pc, err := ParseCluster(c)
	if err != nil {
		t.Fatal(err)
	}
	if tc := pc.TLSFor(MakeMetadata(map[string]string{"tlsMode": "istio"})); tc == nil || !tc.SPIFFE() {
		t.Fatalf("tlsMode istio endpoint gets %+v, want ISTIO_MUTUAL", tc)
	}
	for _, md := range []map[string]string{nil, {"tlsMode": "disabled"}} {
		if tc := pc.TLSFor(MakeMetadata(md)); tc != nil {
			t.Fatalf("endpoint %v gets TLS, want plaintext", md)
		}
	}
	c.TransportSocketMatches[0].Match.Fields["tlsMode"] = structpb.NewNumberValue(1)
	if _, err := ParseCluster(c); err == nil || !strings.Contains(err.Error(), "only string values") {
		t.Fatalf("numeric match value: %v", err)
	}
}

func tlsChain(name string, port uint32, transport string, alpn []string, ts *corev3.TransportSocket, sni ...string) *listenerv3.FilterChain {
	fc := xdstest.HTTPListener("x", "127.0.0.1:1", "r").FilterChains[0]
	fc.Name = name
	fc.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: transport, ApplicationProtocols: alpn, ServerNames: sni}
	if port != 0 {
		fc.FilterChainMatch.DestinationPort = wrapperspb.UInt32(port)
	}
	fc.TransportSocket = ts
	return fc
}

// TestSelectChain covers Envoy's filter chain match order on listeners
// shaped as the control plane shapes PERMISSIVE, STRICT and gateway SNI.
func TestSelectChain(t *testing.T) {
	mtls := socket(&tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: istioCommon()})
	istio := []string{"istio-peer-exchange", "istio", "istio-http/1.1"}
	permissive := []*listenerv3.FilterChain{
		tlsChain("mtls", 9080, "tls", istio, mtls),
		tlsChain("plain", 9080, "raw_buffer", nil, nil),
		tlsChain("passthrough", 9080, "tls", nil, nil),
		tlsChain("catchall", 0, "", nil, nil),
	}
	strict := []*listenerv3.FilterChain{tlsChain("mtls", 9080, "tls", nil, mtls)}
	sni := []*listenerv3.FilterChain{
		tlsChain("exact", 0, "", nil, nil, "api.example.com"),
		tlsChain("wild", 0, "", nil, nil, "*.example.com"),
		tlsChain("wilder", 0, "", nil, nil, "*.b.example.com"),
		tlsChain("none", 0, "", nil, nil),
	}
	tlsIn := func(sni string, alpn ...string) ConnInfo { return ConnInfo{TLS: true, SNI: sni, ALPN: alpn} }
	cases := []struct {
		name   string
		chains []*listenerv3.FilterChain
		port   uint32
		in     ConnInfo
		want   string // "" for no chain
	}{
		{"permissive mTLS", permissive, 9080, tlsIn("outbound_.9080_._.reviews", "http/1.1", "istio-peer-exchange", "istio"), "mtls"},
		{"permissive plaintext", permissive, 9080, ConnInfo{}, "plain"},
		{"permissive other TLS", permissive, 9080, tlsIn("", "h2"), "passthrough"},
		{"other port", permissive, 7070, ConnInfo{}, "catchall"},
		{"strict mTLS", strict, 9080, tlsIn("", "istio"), "mtls"},
		{"strict plaintext has no chain", strict, 9080, ConnInfo{}, ""},
		{"exact SNI", sni, 443, tlsIn("api.example.com"), "exact"},
		{"longest wildcard", sni, 443, tlsIn("x.b.example.com"), "wilder"},
		{"wildcard", sni, 443, tlsIn("www.example.com"), "wild"},
		{"wildcard needs a label", sni, 443, tlsIn("example.com"), "none"},
		{"no SNI", sni, 443, tlsIn(""), "none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ParseListener(&listenerv3.Listener{Name: "l", Address: xdstest.SocketAddress("127.0.0.1:9080"), FilterChains: tc.chains})
			if err != nil {
				t.Fatal(err)
			}
			if !l.NeedsInspection() {
				t.Fatal("listener matching on TLS properties does not ask for inspection")
			}
			got := ""
			if c := l.SelectChain(tc.port, tc.in); c != nil {
				got = c.Name
			}
			if got != tc.want {
				t.Fatalf("chain %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUnservableTLSChainSkipped(t *testing.T) {
	kube := socket(&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("file-cert:/a~/b")}}})
	l, err := ParseListener(&listenerv3.Listener{Name: "gw", Address: xdstest.SocketAddress("0.0.0.0:443"), FilterChains: []*listenerv3.FilterChain{
		tlsChain("https", 0, "", nil, kube, "bookinfo.example.com"), tlsChain("plain", 0, "", nil, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Chains) != 1 || l.Chains[0].Name != "plain" || len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0], "file-cert:/a~/b") {
		t.Fatalf("chains %d, warnings %q", len(l.Chains), l.Warnings)
	}
	_, err = ParseListener(&listenerv3.Listener{Name: "gw", Address: xdstest.SocketAddress("0.0.0.0:443"), FilterChains: []*listenerv3.FilterChain{
		tlsChain("https", 0, "", nil, kube)}})
	checkErr(t, err, "no filter chain can be served")
}

// FuzzParseTransportSocket: arbitrary TLS contexts never crash the parser.
func FuzzParseTransportSocket(f *testing.F) {
	for _, m := range []proto.Message{
		&tlsv3.UpstreamTlsContext{Sni: "x", CommonTlsContext: istioCommon("spiffe://cluster.local/ns/a/sa/b")},
		&tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: istioCommon()},
	} {
		b, _ := proto.Marshal(m)
		f.Add(b, true)
		f.Add(b, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, upstream bool) {
		for _, typ := range []string{"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
			"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"} {
			ts := &corev3.TransportSocket{Name: TLSTransportSocket, ConfigType: &corev3.TransportSocket_TypedConfig{
				TypedConfig: &anypb.Any{TypeUrl: typ, Value: data}}}
			c, err := parseTS(t, ts, upstream)
			if err == nil && c != nil && c.Verify && c.RootsSDS == "" && c.TrustedCA.IsZero() {
				t.Fatal("accepted a validation context without roots")
			}
		}
	})
}

func TestMetadata(t *testing.T) {
	for _, m := range []map[string]string{nil, {"tlsMode": "istio"}, {"a": "", "b\x00=": "x\ny", "long": strings.Repeat("v", 300)}} {
		md := MakeMetadata(m)
		if got := md.Map(); len(got) != len(m) {
			t.Errorf("MakeMetadata(%q).Map() = %q", m, got)
		}
		for k, v := range m {
			if got, ok := md.Get(k); !ok || got != v {
				t.Errorf("MakeMetadata(%q).Get(%q) = %q, %v", m, k, got, ok)
			}
		}
		if _, ok := md.Get("missing"); ok {
			t.Errorf("MakeMetadata(%q).Get(missing) found", m)
		}
	}
	a, b := MakeMetadata(map[string]string{"tlsMode": "istio", "x": "y"}), MakeMetadata(map[string]string{"x": "y", "tlsMode": "istio"})
	if a != b || unsafe.StringData(string(a)) != unsafe.StringData(string(b)) {
		t.Error("equal metadata is not shared")
	}
}
