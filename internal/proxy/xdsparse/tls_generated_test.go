package xdsparse

// The generated path the transport sockets' wire decoder (tlswire.go,
// proxyprotocol.go) replaced: go-control-plane's types, as mast-proxy
// parsed them before. It is the oracle of the differential tests
// (TestDecodeTransportSocketMatchesGenerated, the cluster and listener
// tests).

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	proxyprotocolv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/proxy_protocol/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/match/matchgen"
	"github.com/mast-mesh/mast/internal/proxy/revocation"
)

// generatedTransportSocket parses a transport socket: nil for plaintext.
func generatedTransportSocket(ts *corev3.TransportSocket, upstream bool) (*TLSContext, error) {
	if ts == nil {
		return nil, nil
	}
	a := ts.GetTypedConfig()
	if a == nil {
		if ts.GetName() == RawBufferTransportSocket || ts.GetName() == "raw_buffer" {
			return nil, nil
		}
		return nil, fmt.Errorf("transport_socket %q: typed_config missing", ts.GetName())
	}
	if a.MessageIs((*rawbufferv3.RawBuffer)(nil)) {
		return nil, nil
	}
	if ts.GetName() == UpstreamProxyProtocolSocket || a.MessageIs((*proxyprotocolv3.ProxyProtocolUpstreamTransport)(nil)) {
		if !upstream {
			return nil, fmt.Errorf("transport_socket %q: only for upstream connections", ts.GetName())
		}
		// the version is the cluster's (generatedClusterProxyProtocol)
		inner, _, err := generatedUnwrapProxyProtocol(ts)
		if err != nil {
			return nil, err
		}
		return generatedTransportSocket(inner, true)
	}
	if upstream {
		if !a.MessageIs((*tlsv3.UpstreamTlsContext)(nil)) {
			return nil, fmt.Errorf("transport_socket %q: type %s not supported (want UpstreamTlsContext or RawBuffer)", ts.GetName(), a.GetTypeUrl())
		}
		var u tlsv3.UpstreamTlsContext
		if err := a.UnmarshalTo(&u); err != nil {
			return nil, fmt.Errorf("transport_socket %q: %w", ts.GetName(), err)
		}
		if err := checkFields(&u, tlsRules); err != nil {
			return nil, fmt.Errorf("transport_socket %q: %w", ts.GetName(), err)
		}
		t, err := generatedCommonTLS(u.GetCommonTlsContext(), true)
		if err != nil {
			return nil, fmt.Errorf("transport_socket %q: %w", ts.GetName(), err)
		}
		t.SNI = u.GetSni()
		if t.SNI != "" && !validSNI(t.SNI) {
			return nil, fmt.Errorf("transport_socket %q: sni %q is not a valid server name", ts.GetName(), t.SNI)
		}
		t.Key = generatedContextKey(a)
		return t, nil
	}
	if !a.MessageIs((*tlsv3.DownstreamTlsContext)(nil)) {
		return nil, fmt.Errorf("transport_socket %q: type %s not supported (want DownstreamTlsContext or RawBuffer)", ts.GetName(), a.GetTypeUrl())
	}
	var d tlsv3.DownstreamTlsContext
	if err := a.UnmarshalTo(&d); err != nil {
		return nil, fmt.Errorf("transport_socket %q: %w", ts.GetName(), err)
	}
	if err := checkFields(&d, tlsRules); err != nil {
		return nil, fmt.Errorf("transport_socket %q: %w", ts.GetName(), err)
	}
	t, err := generatedCommonTLS(d.GetCommonTlsContext(), false)
	if err != nil {
		return nil, fmt.Errorf("transport_socket %q: %w", ts.GetName(), err)
	}
	t.RequireClientCert = d.GetRequireClientCertificate().GetValue()
	if t.RequireClientCert && !t.Verify {
		return nil, fmt.Errorf("transport_socket %q: require_client_certificate without a validation context", ts.GetName())
	}
	if t.CertSDS == "" && t.CertChain.IsZero() {
		return nil, fmt.Errorf("transport_socket %q: a server needs a certificate", ts.GetName())
	}
	t.Key = generatedContextKey(a)
	return t, nil
}

func generatedContextKey(a *anypb.Any) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(a)
	return string(b)
}

// generatedCommonTLS parses the parts of a CommonTlsContext the proxy honours
// and refuses what it cannot honour (it never silently weakens validation).
func generatedCommonTLS(c *tlsv3.CommonTlsContext, upstream bool) (*TLSContext, error) {
	t := &TLSContext{Upstream: upstream}
	if c == nil {
		return t, nil
	}
	if p := c.GetTlsParams(); p != nil {
		var err error
		if t.MinVersion, err = generatedTLSVersion(p.GetTlsMinimumProtocolVersion(), "tls_params.tls_minimum_protocol_version"); err != nil {
			return nil, err
		}
		if t.MaxVersion, err = generatedTLSVersion(p.GetTlsMaximumProtocolVersion(), "tls_params.tls_maximum_protocol_version"); err != nil {
			return nil, err
		}
		if t.MinVersion != 0 && t.MaxVersion != 0 && t.MinVersion > t.MaxVersion {
			return nil, fmt.Errorf("tls_params: minimum version above maximum")
		}
		if t.CipherSuites, err = cipherSuites(p.GetCipherSuites()); err != nil {
			return nil, err
		}
	}
	for _, p := range c.GetAlpnProtocols() {
		if p == "" || len(p) > 255 {
			return nil, fmt.Errorf("alpn_protocols: %q is not a valid protocol name", p)
		}
	}
	t.ALPN = slices.Clone(c.GetAlpnProtocols())

	var certs []CertRef
	for i, tc := range c.GetTlsCertificates() {
		var r CertRef
		var err error
		if r.Chain, err = generatedDataSource(tc.GetCertificateChain(), fmt.Sprintf("tls_certificates[%d].certificate_chain", i)); err != nil {
			return nil, err
		}
		if r.Key, err = generatedDataSource(tc.GetPrivateKey(), fmt.Sprintf("tls_certificates[%d].private_key", i)); err != nil {
			return nil, err
		}
		if r.Chain.IsZero() || r.Key.IsZero() {
			return nil, fmt.Errorf("tls_certificates[%d]: certificate_chain and private_key are both required", i)
		}
		certs = append(certs, r)
	}
	kinds := 0
	for _, n := range []int{len(c.GetTlsCertificates()), len(c.GetTlsCertificateSdsSecretConfigs())} {
		if n > 0 {
			kinds++
		}
	}
	for i, sds := range c.GetTlsCertificateSdsSecretConfigs() {
		if err := agentSecret(sds.GetName(), SDSWorkloadCert, fmt.Sprintf("tls_certificate_sds_secret_configs[%d]", i)); err != nil {
			return nil, err
		}
		certs = append(certs, CertRef{SDS: sds.GetName()})
	}
	if pi := c.GetTlsCertificateProviderInstance(); pi != nil {
		kinds++
		if pi.GetInstanceName() != SDSWorkloadCert && pi.GetInstanceName() != "" {
			return nil, fmt.Errorf("tls_certificate_provider_instance %q: only the agent's %q is available", pi.GetInstanceName(), SDSWorkloadCert)
		}
		certs = append(certs, CertRef{SDS: SDSWorkloadCert})
	}
	if kinds > 1 {
		return nil, fmt.Errorf("only one of tls_certificates, tls_certificate_sds_secret_configs and tls_certificate_provider_instance may be set")
	}
	if len(certs) > 1 && upstream {
		return nil, fmt.Errorf("%d certificates configured; a client presents one", len(certs))
	}
	if len(certs) > 0 {
		t.CertSDS, t.CertChain, t.PrivKey = certs[0].SDS, certs[0].Chain, certs[0].Key
		t.ExtraCerts = certs[1:]
	}

	var vc *tlsv3.CertificateValidationContext
	switch v := c.GetValidationContextType().(type) {
	case nil:
	case *tlsv3.CommonTlsContext_ValidationContext:
		vc = v.ValidationContext
		t.Verify = true
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		vc = v.CombinedValidationContext.GetDefaultValidationContext()
		t.Verify = true
		if s := v.CombinedValidationContext.GetValidationContextSdsSecretConfig(); s != nil {
			if err := agentSecret(s.GetName(), SDSRootCA, "combined_validation_context.validation_context_sds_secret_config"); err != nil {
				return nil, err
			}
			t.RootsSDS = s.GetName()
		}
		if pi := v.CombinedValidationContext.GetValidationContextCertificateProviderInstance(); pi != nil {
			t.RootsSDS = SDSRootCA
		}
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		if err := agentSecret(v.ValidationContextSdsSecretConfig.GetName(), SDSRootCA, "validation_context_sds_secret_config"); err != nil {
			return nil, err
		}
		t.Verify, t.RootsSDS = true, v.ValidationContextSdsSecretConfig.GetName()
	default:
		return nil, fmt.Errorf("validation context %T not supported", v)
	}
	if vc != nil {
		if err := generatedValidation(vc, t); err != nil {
			return nil, err
		}
	}
	if t.SystemRoots && (t.RootsSDS != "" || !t.TrustedCA.IsZero()) {
		return nil, fmt.Errorf("validation context has system_root_certs and other roots")
	}
	if t.Verify && t.RootsSDS == "" && t.TrustedCA.IsZero() && !t.SystemRoots {
		// A validation context with only SAN matchers and no roots: Envoy
		// refuses such a config, so does this proxy.
		return nil, fmt.Errorf("validation context has no trusted_ca and no SDS root secret")
	}
	if t.RootsSDS != "" && !t.TrustedCA.IsZero() {
		return nil, fmt.Errorf("validation context has both trusted_ca and the SDS root secret %q", t.RootsSDS)
	}
	return t, nil
}

func generatedValidation(vc *tlsv3.CertificateValidationContext, t *TLSContext) error {
	var err error
	if t.TrustedCA, err = generatedDataSource(vc.GetTrustedCa(), "validation_context.trusted_ca"); err != nil {
		return err
	}
	if pi := vc.GetCaCertificateProviderInstance(); pi != nil {
		if pi.GetCertificateName() != SDSRootCA && pi.GetCertificateName() != "" {
			return fmt.Errorf("validation_context.ca_certificate_provider_instance certificate %q: only the agent's %q is available", pi.GetCertificateName(), SDSRootCA)
		}
		t.RootsSDS = SDSRootCA
	}
	t.SystemRoots = vc.GetSystemRootCerts() != nil
	if vc.GetCrl() != nil {
		src, err := generatedDataSource(vc.GetCrl(), "validation_context.crl")
		if err != nil {
			return err
		}
		data := src.Inline
		if src.File != "" {
			if data, err = os.ReadFile(src.File); err != nil {
				return fmt.Errorf("validation_context.crl: %w", err)
			}
		}
		if t.CRL, err = revocation.Parse(data); err != nil {
			return fmt.Errorf("validation_context.crl %s: %w", describeSource(src), err)
		}
		t.OnlyLeafCRL = vc.GetOnlyVerifyLeafCertCrl()
	} else if vc.GetOnlyVerifyLeafCertCrl() {
		return fmt.Errorf("validation_context.only_verify_leaf_cert_crl without a crl")
	}
	for i, p := range vc.GetVerifyCertificateSpki() {
		b, err := base64.StdEncoding.DecodeString(p)
		if err != nil || len(b) != sha256.Size {
			return fmt.Errorf("validation_context.verify_certificate_spki[%d] %q: not a base64 SHA-256 digest", i, p)
		}
		t.SPKIPins = append(t.SPKIPins, b)
	}
	for i, h := range vc.GetVerifyCertificateHash() {
		b, err := hex.DecodeString(strings.ReplaceAll(h, ":", ""))
		if err != nil || len(b) != sha256.Size {
			return fmt.Errorf("validation_context.verify_certificate_hash[%d] %q: not a hex SHA-256 digest", i, h)
		}
		t.CertHashes = append(t.CertHashes, b)
	}
	if vc.GetTrustChainVerification() == tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED {
		if t.Upstream {
			return fmt.Errorf("validation_context.trust_chain_verification ACCEPT_UNTRUSTED is supported for downstream (server) contexts only")
		}
		t.AcceptUntrusted = true
	}
	for i, m := range vc.GetMatchTypedSubjectAltNames() {
		sm, err := matchgen.ParseString(m.GetMatcher())
		if err != nil {
			return fmt.Errorf("validation_context.match_typed_subject_alt_names[%d]: %w", i, err)
		}
		var typ SANType
		switch m.GetSanType() {
		case tlsv3.SubjectAltNameMatcher_DNS:
			typ = SANDNS
		case tlsv3.SubjectAltNameMatcher_URI:
			typ = SANURI
		case tlsv3.SubjectAltNameMatcher_EMAIL:
			typ = SANEmail
		case tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
			typ = SANIP
		default:
			return fmt.Errorf("validation_context.match_typed_subject_alt_names[%d]: san_type %v not supported", i, m.GetSanType())
		}
		t.SANs = append(t.SANs, SANMatcher{Type: typ, Str: sm})
	}
	for i, m := range vc.GetMatchSubjectAltNames() { //nolint:staticcheck // deprecated, still sent by some control planes
		sm, err := matchgen.ParseString(m)
		if err != nil {
			return fmt.Errorf("validation_context.match_subject_alt_names[%d]: %w", i, err)
		}
		t.SANs = append(t.SANs, SANMatcher{Type: SANAny, Str: sm})
	}
	return nil
}

func generatedDataSource(d *corev3.DataSource, field string) (DataSource, error) {
	switch s := d.GetSpecifier().(type) {
	case nil:
		return DataSource{}, nil
	case *corev3.DataSource_Filename:
		if s.Filename == "" {
			return DataSource{}, fmt.Errorf("%s.filename: empty", field)
		}
		return DataSource{File: s.Filename}, nil
	case *corev3.DataSource_InlineBytes:
		return DataSource{Inline: s.InlineBytes}, nil
	case *corev3.DataSource_InlineString:
		return DataSource{Inline: []byte(s.InlineString)}, nil
	default:
		return DataSource{}, fmt.Errorf("%s.environment_variable: not supported", field)
	}
}

func generatedTLSVersion(v tlsv3.TlsParameters_TlsProtocol, field string) (uint16, error) {
	switch v {
	case tlsv3.TlsParameters_TLS_AUTO:
		return 0, nil
	case tlsv3.TlsParameters_TLSv1_2:
		return VersionTLS12, nil
	case tlsv3.TlsParameters_TLSv1_3:
		return VersionTLS13, nil
	default:
		return 0, fmt.Errorf("%s %v: only TLSv1_2 and TLSv1_3 are supported", field, v)
	}
}

// generatedUnwrapProxyProtocol returns the socket inside an upstream_proxy_protocol
// transport socket and the PROXY protocol version it asks for (1 or 2);
// any other socket comes back as it is, with version 0.
func generatedUnwrapProxyProtocol(ts *corev3.TransportSocket) (*corev3.TransportSocket, uint8, error) {
	a := ts.GetTypedConfig()
	if a == nil || !a.MessageIs((*proxyprotocolv3.ProxyProtocolUpstreamTransport)(nil)) {
		if ts.GetName() == UpstreamProxyProtocolSocket {
			return nil, 0, fmt.Errorf("transport_socket %q: typed_config is not a ProxyProtocolUpstreamTransport", ts.GetName())
		}
		return ts, 0, nil
	}
	var p proxyprotocolv3.ProxyProtocolUpstreamTransport
	if err := a.UnmarshalTo(&p); err != nil {
		return nil, 0, fmt.Errorf("transport_socket %q: %w", ts.GetName(), err)
	}
	if err := checkFields(&p, proxyProtocolRules); err != nil {
		return nil, 0, fmt.Errorf("transport_socket %q: %w", ts.GetName(), err)
	}
	var v uint8
	switch p.GetConfig().GetVersion() {
	case corev3.ProxyProtocolConfig_V1:
		v = 1
	case corev3.ProxyProtocolConfig_V2:
		v = 2
	default:
		return nil, 0, fmt.Errorf("transport_socket %q: config.version %v not supported", ts.GetName(), p.GetConfig().GetVersion())
	}
	if p.GetTransportSocket() == nil {
		return nil, 0, fmt.Errorf("transport_socket %q: transport_socket missing", ts.GetName())
	}
	if _, nested, _ := generatedUnwrapProxyProtocol(p.GetTransportSocket()); nested != 0 {
		return nil, 0, fmt.Errorf("transport_socket %q: nested PROXY protocol sockets", ts.GetName())
	}
	return p.GetTransportSocket(), v, nil
}

// generatedClusterProxyProtocol is the PROXY protocol version of a cluster whose
// transport_socket and transport_socket_matches are wrapped in
// upstream_proxy_protocol sockets (istiod wraps each of them); 0 for none.
// Every socket must ask for the same version: a cluster sending the header
// to some endpoints only is refused. The wrapped sockets themselves are
// parsed by generatedTransportSocket, which unwraps them.
func generatedClusterProxyProtocol(socket *corev3.TransportSocket, matches []*corev3.TransportSocket) (uint8, error) {
	var (
		version uint8
		seen    bool
	)
	check := func(ts *corev3.TransportSocket, what string) error {
		if ts == nil {
			return nil
		}
		_, v, err := generatedUnwrapProxyProtocol(ts)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if seen && v != version {
			return fmt.Errorf("%s: PROXY protocol version %d differs from another transport socket's %d", what, v, version)
		}
		version, seen = v, true
		return nil
	}
	if err := check(socket, "transport_socket"); err != nil {
		return 0, err
	}
	for i, m := range matches {
		if err := check(m, fmt.Sprintf("transport_socket_matches[%d]", i)); err != nil {
			return 0, err
		}
	}
	return version, nil
}
