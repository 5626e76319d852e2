package xdsparse

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	proxyprotocolv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/proxy_protocol/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// descTransportSocket is envoy.config.core.v3.TransportSocket's index.
var descTransportSocket = findDesc("envoy.config.core.v3.TransportSocket")

// decodeTransportSocket is the wire path of an encoded TransportSocket.
func decodeTransportSocket(b []byte, upstream bool) (*TLSContext, uint8, error) {
	if err := validateWire(descTransportSocket, b); err != nil {
		return nil, 0, fmt.Errorf("decode: %w", err)
	}
	ts := decodeWire(descTransportSocket, b)
	var v uint8
	if upstream {
		var err error
		if v, err = clusterProxyProtocolWire(ts, nil); err != nil {
			return nil, 0, err
		}
	}
	c, err := parseTransportSocketWire(ts, upstream)
	return c, v, err
}

func generatedTransportSocketBytes(b []byte, upstream bool) (*TLSContext, uint8, error) {
	var ts corev3.TransportSocket
	if err := proto.Unmarshal(b, &ts); err != nil {
		return nil, 0, fmt.Errorf("decode: %w", err)
	}
	var v uint8
	if upstream {
		var err error
		if v, err = generatedClusterProxyProtocol(&ts, nil); err != nil {
			return nil, 0, err
		}
	}
	c, err := generatedTransportSocket(&ts, upstream)
	return c, v, err
}

// parseTS parses a generated transport socket through the wire decoder.
func parseTS(t testing.TB, ts *corev3.TransportSocket, upstream bool) (*TLSContext, error) {
	t.Helper()
	if ts == nil {
		return parseTransportSocketWire(nil, upstream)
	}
	b, err := proto.Marshal(ts)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := decodeTransportSocket(b, upstream)
	return c, err
}

// compareTransportSockets decodes b both ways, as a cluster's (with its
// PROXY protocol version) and as a listener's, and reports a difference.
func compareTransportSockets(t *testing.T, b []byte) {
	t.Helper()
	for _, upstream := range []bool{true, false} {
		g, gv, gErr := generatedTransportSocketBytes(b, upstream)
		w, wv, wErr := decodeTransportSocket(b, upstream)
		if !sameError(gErr, wErr) || gv != wv {
			t.Fatalf("upstream %v\ngenerated: %v %v\nwire:      %v %v\nbytes %x", upstream, gv, gErr, wv, wErr, b)
		}
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("upstream %v\ngenerated: %+v\nwire:      %+v\nbytes %x", upstream, g, w, b)
		}
	}
}

func (g *gen) stringMatcher() *matcherv3.StringMatcher {
	m := &matcherv3.StringMatcher{IgnoreCase: g.p(20)}
	switch g.r.IntN(6) {
	case 0:
		m.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: g.pick("spiffe://cluster.local/ns/default/sa/reviews", "*.example.com")}
	case 1:
		m.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://cluster.local/"}
	case 2:
		m.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: g.pick("spiffe://.*", "a+", "(")}}
	case 3:
		m.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: ".local"}
	case 4:
		if g.clean {
			m.MatchPattern = &matcherv3.StringMatcher_Contains{Contains: "reviews"}
		}
	}
	return m
}

func (g *gen) dataSource(pem string) *corev3.DataSource {
	d := &corev3.DataSource{}
	switch g.r.IntN(5 + 2*b2i(!g.clean)) {
	case 0, 1:
		d.Specifier = &corev3.DataSource_Filename{Filename: g.pick("/etc/certs/cert-chain.pem", "/etc/certs/key.pem", "")}
	case 2:
		d.Specifier = &corev3.DataSource_InlineBytes{InlineBytes: []byte(pem)[:g.r.IntN(len(pem)+1)]}
	case 3:
		d.Specifier = &corev3.DataSource_InlineString{InlineString: pem}
	case 4:
		return nil
	case 5:
		d.Specifier = &corev3.DataSource_EnvironmentVariable{EnvironmentVariable: "CERT"}
	}
	return d
}

func (g *gen) commonTLS() *tlsv3.CommonTlsContext {
	c := &tlsv3.CommonTlsContext{}
	if g.p(30) {
		c.TlsParams = &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TlsProtocol(g.r.IntN(5)),
			TlsMaximumProtocolVersion: tlsv3.TlsParameters_TlsProtocol(g.r.IntN(5))}
		if g.clean {
			c.TlsParams.TlsMinimumProtocolVersion, c.TlsParams.TlsMaximumProtocolVersion = tlsv3.TlsParameters_TLSv1_2, tlsv3.TlsParameters_TLSv1_3
		}
		for range g.r.IntN(3) {
			c.TlsParams.CipherSuites = append(c.TlsParams.CipherSuites, g.pick("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "PSK-AES128-CBC-SHA", "NOPE"))
		}
		if g.bad(10) {
			c.TlsParams.EcdhCurves = []string{"X25519"}
		}
	}
	for range g.r.IntN(3) {
		c.AlpnProtocols = append(c.AlpnProtocols, g.pick("istio-peer-exchange", "istio", "h2", ""))
	}
	switch g.r.IntN(5) {
	case 0:
		for range 1 + g.r.IntN(2) {
			c.TlsCertificateSdsSecretConfigs = append(c.TlsCertificateSdsSecretConfigs, sdsRef(g.pick("default", "kubernetes://bookinfo-cert", "kubernetes://Bad", "other")))
		}
	case 1:
		for range 1 + g.r.IntN(2) {
			c.TlsCertificates = append(c.TlsCertificates, &tlsv3.TlsCertificate{CertificateChain: g.dataSource("chain"), PrivateKey: g.dataSource("key")})
		}
	case 2:
		c.TlsCertificateProviderInstance = &tlsv3.CertificateProviderPluginInstance{InstanceName: g.pick("default", "", "other")}
	}
	if g.bad(10) {
		c.TlsCertificateSdsSecretConfigs = append(c.TlsCertificateSdsSecretConfigs, sdsRef("default"))
	}
	vc := func() *tlsv3.CertificateValidationContext {
		v := &tlsv3.CertificateValidationContext{}
		if g.p(40) {
			v.TrustedCa = g.dataSource("roots")
		}
		if g.p(15) {
			v.SystemRootCerts = &tlsv3.CertificateValidationContext_SystemRootCerts{}
		}
		if g.p(15) {
			v.CaCertificateProviderInstance = &tlsv3.CertificateProviderPluginInstance{CertificateName: g.pick("ROOTCA", "", "x")}
		}
		for range g.r.IntN(3) {
			v.MatchTypedSubjectAltNames = append(v.MatchTypedSubjectAltNames, &tlsv3.SubjectAltNameMatcher{
				SanType: tlsv3.SubjectAltNameMatcher_SanType(g.r.IntN(5 + b2i(!g.clean))), Matcher: g.stringMatcher()})
		}
		if g.p(20) {
			v.MatchSubjectAltNames = []*matcherv3.StringMatcher{g.stringMatcher()}
		}
		if g.p(15) {
			v.VerifyCertificateSpki = []string{g.pick("NvqYIYSbgK2vCJpQhObf77vv+bQWtc5ek5RIOwPiC9A=", "short")}
		}
		if g.p(15) {
			v.VerifyCertificateHash = []string{g.pick("df6ff72fe9116521268f6f2dd4966f51df479883fe7037b39f75916ac3049d1a", "DF:6F:F7:2F:E9:11:65:21:26:8F:6F:2D:D4:96:6F:51:DF:47:98:83:FE:70:37:B3:9F:75:91:6A:C3:04:9D:1A", "zz")}
		}
		if g.p(10) {
			v.TrustChainVerification = tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED
		}
		if g.p(10) {
			v.OnlyVerifyLeafCertCrl = true
		}
		if g.p(10) {
			v.Crl = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "not a crl"}}
		}
		if g.bad(10) {
			v.AllowExpiredCertificate = true
		}
		return v
	}
	switch g.r.IntN(5) {
	case 0:
		c.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc()}
	case 1:
		cv := &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{}
		if g.p(80) {
			cv.DefaultValidationContext = vc()
		}
		if g.p(70) {
			cv.ValidationContextSdsSecretConfig = sdsRef(g.pick("ROOTCA", "kubernetes://bookinfo-cacert", "nope"))
		}
		if g.p(20) {
			cv.ValidationContextCertificateProviderInstance = &tlsv3.CommonTlsContext_CertificateProviderInstance{InstanceName: "default"}
		}
		c.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: cv}
	case 2:
		c.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sdsRef(g.pick("ROOTCA", "kubernetes://x-cacert", "nope"))}
	}
	return c
}

// randomTransportSocket builds a transport socket of the kinds the proxy
// reads: TLS contexts both ways, raw_buffer, the PROXY protocol wrapper.
func randomTransportSocket(r *rand.Rand) *corev3.TransportSocket {
	g := &gen{r: r, clean: r.IntN(100) < 50}
	ts := &corev3.TransportSocket{Name: g.pick(TLSTransportSocket, RawBufferTransportSocket, "raw_buffer", UpstreamProxyProtocolSocket, "x")}
	var cfg proto.Message
	switch r.IntN(8) {
	case 0, 1, 2:
		u := &tlsv3.UpstreamTlsContext{Sni: g.pick("outbound_.9080_._.reviews.default.svc.cluster.local", "", "bad sni")}
		if g.p(90) {
			u.CommonTlsContext = g.commonTLS()
		}
		if g.bad(10) {
			u.AllowRenegotiation = true
		}
		cfg = u
	case 3, 4, 5:
		d := &tlsv3.DownstreamTlsContext{}
		if g.p(90) {
			d.CommonTlsContext = g.commonTLS()
		}
		if g.p(50) {
			d.RequireClientCertificate = wrapperspb.Bool(g.p(70))
		}
		if g.bad(10) {
			d.RequireSni = wrapperspb.Bool(true)
		}
		cfg = d
	case 6:
		cfg = &rawbufferv3.RawBuffer{}
	case 7:
		p := &proxyprotocolv3.ProxyProtocolUpstreamTransport{}
		if g.p(80) {
			p.Config = &corev3.ProxyProtocolConfig{Version: corev3.ProxyProtocolConfig_Version(r.IntN(2 + b2i(!g.clean)))}
		}
		if g.p(80) {
			p.TransportSocket = randomTransportSocket(r)
		}
		if g.bad(10) {
			p.AllowUnspecifiedAddress = true
		}
		cfg = p
	}
	if cfg != nil && g.p(95) {
		ts.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(cfg)}
	}
	if g.bad(5) {
		ts.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.transport_sockets.alts.v3.Alts"}}
	}
	return ts
}

func TestDecodeTransportSocketMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(29, 11))
	seen := map[string]int{}
	for range 2000 {
		b, err := proto.Marshal(randomTransportSocket(r))
		if err != nil {
			t.Fatal(err)
		}
		compareTransportSockets(t, b)
		for _, upstream := range []bool{true, false} {
			c, v, err := decodeTransportSocket(b, upstream)
			if err != nil {
				continue
			}
			for name, ok := range map[string]bool{"plaintext": c == nil, "upstream tls": c != nil && upstream, "downstream tls": c != nil && !upstream,
				"proxy protocol": v != 0, "sans": c != nil && len(c.SANs) > 0, "files": c != nil && !c.CertChain.IsZero(), "sds": c != nil && c.CertSDS != "",
				"verify": c != nil && c.Verify, "pins": c != nil && len(c.SPKIPins)+len(c.CertHashes) > 0, "ciphers": c != nil && len(c.CipherSuites) > 0,
				"extra certs": c != nil && len(c.ExtraCerts) > 0} {
				if ok {
					seen[name]++
				}
			}
		}
		b2, _ := proto.Marshal(randomTransportSocket(r))
		compareTransportSockets(t, append(b[:len(b):len(b)], b2...))
	}
	for _, name := range []string{"plaintext", "upstream tls", "downstream tls", "proxy protocol", "sans", "files", "sds", "verify", "pins", "ciphers", "extra certs"} {
		if seen[name] < 5 {
			t.Errorf("%s: in %d accepted transport sockets, want at least 5", name, seen[name])
		}
	}
	t.Logf("accepted: %v", seen)
}

// TestDecodeTransportSocketWire covers what go-control-plane never
// encodes.
func TestDecodeTransportSocketWire(t *testing.T) {
	base, _ := proto.Marshal(socket(&tlsv3.UpstreamTlsContext{Sni: "x", CommonTlsContext: istioCommon("spiffe://cluster.local/ns/a/sa/b")}))
	bytesField := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	varint := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	ctx := func(b []byte) []byte {
		return bytesField(tsTypedConfig, append(bytesField(anyTypeURL, []byte("type.googleapis.com/"+upstreamTLSName)), bytesField(anyValue, b)...))
	}
	cases := map[string][]byte{
		"plain":                base,
		"truncated":            base[:len(base)-1],
		"typed config merged":  append(base, bytesField(tsTypedConfig, bytesField(anyValue, varint(1000, 1)))...),
		"context truncated":    append(base, ctx([]byte{0x0a})...),
		"sni twice":            append(base, ctx(append(bytesField(utcSNI, []byte("a")), bytesField(utcSNI, []byte("b"))...))...),
		"invalid utf-8 in sni": append(base, ctx(bytesField(utcSNI, []byte{0xff}))...),
		"version 2^32+3":       append(base, ctx(bytesField(tlsCommon, bytesField(ctcParams, varint(tlspMin, 1<<32+3))))...),
		"inline bytes empty": append(base, ctx(bytesField(tlsCommon, bytesField(ctcCertificates,
			append(bytesField(tcChain, bytesField(dsInlineBytes, nil)), bytesField(tcKey, bytesField(dsInlineString, []byte("k")))...))))...),
	}
	for n, b := range cases {
		t.Run(n, func(t *testing.T) { compareTransportSockets(t, b) })
	}
}

// FuzzDecodeTransportSocket: any bytes decode as go-control-plane's types
// would (compareTransportSockets).
func FuzzDecodeTransportSocket(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 23))
	for range 16 {
		b, _ := proto.Marshal(randomTransportSocket(r))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { compareTransportSockets(t, b) })
}
