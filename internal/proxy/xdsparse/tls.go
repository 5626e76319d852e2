package xdsparse

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"github.com/mast-mesh/mast/internal/proxy/match"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	proxyprotocolv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/proxy_protocol/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/revocation"
)

// Transport socket names.
const (
	TLSTransportSocket       = "envoy.transport_sockets.tls"
	RawBufferTransportSocket = "envoy.transport_sockets.raw_buffer"
	// TransportSocketMatchKey is the endpoint metadata namespace that
	// transport_socket_matches select on (Istio puts tlsMode there).
	TransportSocketMatchKey = "envoy.transport_socket_match"
)

// The SDS secrets the proxy's own agent provides, under Istio's names.
const (
	SDSWorkloadCert = "default"
	SDSRootCA       = "ROOTCA"
	// SDSCredentialPrefix starts the SDS name of a credential (a Gateway's
	// or DestinationRule's credentialName), Istio's form: the proxy's
	// credential store serves "kubernetes://NAME".
	SDSCredentialPrefix = "kubernetes://"
)

// Credential returns the credential name an SDS secret name refers to,
// and false for the agent's own secrets.
func Credential(sds string) (string, bool) {
	return strings.CutPrefix(sds, SDSCredentialPrefix)
}

// TLS protocol versions (the crypto/tls constants).
const (
	VersionTLS12 uint16 = 0x0303
	VersionTLS13 uint16 = 0x0304
)

// SANType is the kind of subject alternative name a matcher looks at.
type SANType uint8

// SAN types; SANAny matches any DNS, URI, email or IP SAN.
const (
	SANAny SANType = iota
	SANDNS
	SANURI
	SANEmail
	SANIP
)

// SANMatcher matches one subject alternative name of the peer.
type SANMatcher struct {
	Type SANType
	Str  StringMatcher
}

// DataSource is a file or inline bytes (PEM).
type DataSource struct {
	File   string
	Inline []byte
}

// IsZero reports whether nothing was configured.
func (d DataSource) IsZero() bool { return d.File == "" && d.Inline == nil }

// CertRef is one certificate of a context: an SDS secret or a pair of files.
type CertRef struct {
	SDS        string
	Chain, Key DataSource
}

// TLSContext is a parsed UpstreamTlsContext or DownstreamTlsContext: the
// certificate to present, how to validate the peer and the handshake
// parameters.
type TLSContext struct {
	// Upstream is true for a cluster's (client) context.
	Upstream bool
	// SNI is the server name an upstream context sends.
	SNI  string
	ALPN []string
	// MinVersion and MaxVersion are 0 (default) or VersionTLS12/13.
	MinVersion, MaxVersion uint16

	// The certificate: the agent's workload certificate (CertSDS ==
	// SDSWorkloadCert), a credential (CertSDS is SDSCredentialPrefix +
	// its name) or files; none for a client without one.
	CertSDS            string
	CertChain, PrivKey DataSource
	// ExtraCerts are a server's further certificates (Envoy's several
	// tls_certificates or SDS secrets, Istio's credentialNames and
	// tlsCertificates, e.g. one RSA and one ECDSA): the handshake presents
	// the first the client supports (by SNI, then signature algorithms).
	ExtraCerts []CertRef

	// Validation: Verify is false when no validation context is configured
	// (Envoy then accepts any peer certificate). RootsSDS == SDSRootCA
	// verifies against the agent's trust bundle as SPIFFE X.509-SVIDs;
	// RootsSDS naming a credential verifies against its CA certificates;
	// TrustedCA verifies against the given roots.
	Verify    bool
	RootsSDS  string
	TrustedCA DataSource
	// SystemRoots verifies against the operating system's roots
	// (system_root_certs), as Istio does for SIMPLE and MUTUAL TLS without
	// caCertificates.
	SystemRoots bool
	SANs        []SANMatcher
	// CRL, when set, refuses peer certificates its issuers' CRLs list
	// (validation_context.crl, parsed here: an unparsable CRL is a NACK);
	// OnlyLeafCRL checks the leaf only (only_verify_leaf_cert_crl).
	CRL         *revocation.List
	OnlyLeafCRL bool
	// SPKIPins and CertHashes pin the peer's leaf certificate (Envoy's
	// verify_certificate_spki and verify_certificate_hash): SHA-256 of its
	// SubjectPublicKeyInfo or of the whole certificate. When any is set,
	// the leaf must match one of either list, besides the chain checks.
	SPKIPins, CertHashes [][]byte
	// AcceptUntrusted (downstream only: Envoy's trust_chain_verification
	// ACCEPT_UNTRUSTED, Istio's Gateway tls.insecureSkipVerify) checks a
	// client certificate but lets the client in when the checks fail; a
	// required certificate must still be presented.
	AcceptUntrusted bool
	// CipherSuites are the TLS 1.2 cipher suites offered or accepted, in
	// order (crypto/tls IDs); nil is the default list. TLS 1.3 suites are
	// not configurable, as in Envoy.
	CipherSuites []uint16

	// RequireClientCert (downstream) refuses clients without a certificate.
	RequireClientCert bool

	// Key identifies the configuration: equal keys mean equal contexts.
	Key string
}

// SPIFFE reports whether peers are verified as SPIFFE identities against
// the agent's trust bundle.
func (t *TLSContext) SPIFFE() bool { return t.Verify && t.RootsSDS == SDSRootCA }

// TransportSocketMatch is one entry of a cluster's transport_socket_matches.
type TransportSocketMatch struct {
	Name string
	// Match holds the metadata values an endpoint must carry under
	// TransportSocketMatchKey; empty matches every endpoint.
	Match map[string]string
	// TLS is nil for a plaintext (raw_buffer) socket.
	TLS *TLSContext
}

// ConnInfo is what the proxy learned about a new downstream connection
// before choosing its filter chain.
type ConnInfo struct {
	// TLS is true when the connection starts with a TLS ClientHello.
	TLS  bool
	SNI  string
	ALPN []string
	// Dst and Src are the connection's original destination and source
	// addresses, set when a chain matches on them.
	Dst, Src netip.Addr
}

// parseTransportSocket parses a transport socket: nil for plaintext.
func parseTransportSocket(ts *corev3.TransportSocket, upstream bool) (*TLSContext, error) {
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
		// the version is the cluster's (clusterProxyProtocol)
		inner, _, err := unwrapProxyProtocol(ts)
		if err != nil {
			return nil, err
		}
		return parseTransportSocket(inner, true)
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
		t, err := parseCommonTLS(u.GetCommonTlsContext(), true)
		if err != nil {
			return nil, fmt.Errorf("transport_socket %q: %w", ts.GetName(), err)
		}
		t.SNI = u.GetSni()
		if t.SNI != "" && !validSNI(t.SNI) {
			return nil, fmt.Errorf("transport_socket %q: sni %q is not a valid server name", ts.GetName(), t.SNI)
		}
		t.Key = contextKey(a)
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
	t, err := parseCommonTLS(d.GetCommonTlsContext(), false)
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
	t.Key = contextKey(a)
	return t, nil
}

func contextKey(a *anypb.Any) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(a)
	return string(b)
}

func validSNI(s string) bool {
	if len(s) > 255 || net.ParseIP(s) != nil {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '*') {
			return false
		}
	}
	return s != ""
}

// parseCommonTLS parses the parts of a CommonTlsContext the proxy honours
// and refuses what it cannot honour (it never silently weakens validation).
func parseCommonTLS(c *tlsv3.CommonTlsContext, upstream bool) (*TLSContext, error) {
	t := &TLSContext{Upstream: upstream}
	if c == nil {
		return t, nil
	}
	if p := c.GetTlsParams(); p != nil {
		var err error
		if t.MinVersion, err = tlsVersion(p.GetTlsMinimumProtocolVersion(), "tls_params.tls_minimum_protocol_version"); err != nil {
			return nil, err
		}
		if t.MaxVersion, err = tlsVersion(p.GetTlsMaximumProtocolVersion(), "tls_params.tls_maximum_protocol_version"); err != nil {
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
		if r.Chain, err = dataSource(tc.GetCertificateChain(), fmt.Sprintf("tls_certificates[%d].certificate_chain", i)); err != nil {
			return nil, err
		}
		if r.Key, err = dataSource(tc.GetPrivateKey(), fmt.Sprintf("tls_certificates[%d].private_key", i)); err != nil {
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
		if err := agentSecret(sds, SDSWorkloadCert, fmt.Sprintf("tls_certificate_sds_secret_configs[%d]", i)); err != nil {
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
			if err := agentSecret(s, SDSRootCA, "combined_validation_context.validation_context_sds_secret_config"); err != nil {
				return nil, err
			}
			t.RootsSDS = s.GetName()
		}
		if pi := v.CombinedValidationContext.GetValidationContextCertificateProviderInstance(); pi != nil {
			t.RootsSDS = SDSRootCA
		}
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		if err := agentSecret(v.ValidationContextSdsSecretConfig, SDSRootCA, "validation_context_sds_secret_config"); err != nil {
			return nil, err
		}
		t.Verify, t.RootsSDS = true, v.ValidationContextSdsSecretConfig.GetName()
	default:
		return nil, fmt.Errorf("validation context %T not supported", v)
	}
	if vc != nil {
		if err := parseValidation(vc, t); err != nil {
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

func parseValidation(vc *tlsv3.CertificateValidationContext, t *TLSContext) error {
	var err error
	if t.TrustedCA, err = dataSource(vc.GetTrustedCa(), "validation_context.trusted_ca"); err != nil {
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
		src, err := dataSource(vc.GetCrl(), "validation_context.crl")
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
		sm, err := match.ParseString(m.GetMatcher())
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
		sm, err := match.ParseString(m)
		if err != nil {
			return fmt.Errorf("validation_context.match_subject_alt_names[%d]: %w", i, err)
		}
		t.SANs = append(t.SANs, SANMatcher{Type: SANAny, Str: sm})
	}
	return nil
}

// agentSecret accepts an SDS secret reference when it names the agent's
// secret want or a credential (SDSCredentialPrefix + a DNS-1123 name) that
// the proxy's credential store serves; other secrets cannot be fetched by
// this proxy.
func agentSecret(s *tlsv3.SdsSecretConfig, want, field string) error {
	if s.GetName() == want {
		return nil
	}
	if name, ok := Credential(s.GetName()); ok {
		if !validCredentialName(name) {
			return fmt.Errorf("%s: SDS secret %q: %q is not a valid credential name (lowercase DNS-1123)", field, s.GetName(), name)
		}
		return nil
	}
	return fmt.Errorf("%s: SDS secret %q is not available; the proxy's agent serves %q and %q, its credential store %q names", field, s.GetName(), SDSWorkloadCert, SDSRootCA, SDSCredentialPrefix+"NAME")
}

// validCredentialName: a Kubernetes Secret's name (DNS-1123 subdomain),
// which is also safe as one file name.
func validCredentialName(s string) bool {
	if s == "" || len(s) > 253 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return !strings.Contains(s, "..")
}

// cipherSuites maps Envoy's (OpenSSL-style) and crypto/tls cipher suite
// names to crypto/tls IDs. PSK suites are accepted and left out: nothing
// here configures a pre-shared key, so BoringSSL never negotiates them
// either. Any other name is refused.
func cipherSuites(names []string) ([]uint16, error) {
	var out []uint16
	for i, n := range names {
		if strings.Contains(n, "PSK") {
			continue
		}
		id, ok := openSSLSuites[n]
		if !ok {
			for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
				if cs.Name == n {
					id, ok = cs.ID, true
				}
			}
		}
		if !ok {
			return nil, fmt.Errorf("tls_params.cipher_suites[%d] %q: not a cipher suite this proxy implements", i, n)
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

var openSSLSuites = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	"DES-CBC3-SHA":                  tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
}

func dataSource(d *corev3.DataSource, field string) (DataSource, error) {
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
		return DataSource{}, fmt.Errorf("%s: %T not supported", field, s)
	}
}

func tlsVersion(v tlsv3.TlsParameters_TlsProtocol, field string) (uint16, error) {
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

// TLSFor returns the TLS context for an endpoint with transport socket
// match metadata md: the first matching transport_socket_matches entry,
// else the cluster's transport_socket. nil means plaintext.
func (c *Cluster) TLSFor(md Metadata) *TLSContext {
	for i := range c.TLSMatches {
		m := &c.TLSMatches[i]
		ok := true
		for k, v := range m.Match {
			if got, _ := md.Get(k); got != v {
				ok = false
				break
			}
		}
		if ok {
			return m.TLS
		}
	}
	return c.TLS
}

// MatchSAN reports whether any of the peer's names satisfies m.
func (m *SANMatcher) MatchSAN(dns, uris, emails, ips []string) bool {
	try := func(names []string) bool {
		for _, n := range names {
			if m.Str.Match(n) {
				return true
			}
		}
		return false
	}
	switch m.Type {
	case SANDNS:
		return try(dns) || m.matchWildcardDNS(dns)
	case SANURI:
		return try(uris)
	case SANEmail:
		return try(emails)
	case SANIP:
		return try(ips)
	}
	return try(dns) || try(uris) || try(emails) || try(ips)
}

// matchWildcardDNS lets an exact DNS matcher accept a certificate's
// wildcard name (*.example.com matches a.example.com), as Envoy does.
func (m *SANMatcher) matchWildcardDNS(dns []string) bool {
	if m.Str.Kind != StrExact {
		return false
	}
	for _, n := range dns {
		rest, ok := strings.CutPrefix(n, "*.")
		if !ok {
			continue
		}
		_, suffix, found := strings.Cut(m.Str.Value, ".")
		if found && strings.EqualFold(suffix, rest) {
			return true
		}
	}
	return false
}

// ForwardClientCert is an HTTP connection manager's
// forward_client_cert_details: what becomes of x-forwarded-client-cert.
type ForwardClientCert uint8

// Modes, as Envoy names them; FCCSanitize (the default) removes the header.
const (
	FCCSanitize ForwardClientCert = iota
	FCCForwardOnly
	FCCAppendForward
	FCCSanitizeSet
	FCCAlwaysForwardOnly
)

// ClientCertDetails are the fields of the client certificate written into
// x-forwarded-client-cert (the hash is always written).
type ClientCertDetails struct {
	Subject, URI, DNS bool
}

func describeSource(d DataSource) string {
	if d.File != "" {
		return d.File
	}
	return "(inline)"
}
