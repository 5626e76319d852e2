package xdsparse

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/mast-mesh/mast/internal/proxy/match"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
	"github.com/mast-mesh/mast/internal/proxy/revocation"
)

// Transport sockets and their TLS contexts are decoded from the wire
// (wire.go, pbwire), so that transport_sockets/tls/v3, proxy_protocol/v3 and
// raw_buffer/v3 are not linked into mast-proxy. The generated path they
// replaced is the tests' oracle (tls_generated_test.go,
// TestDecodeTransportSocketMatchesGenerated, FuzzDecodeTransportSocket).

// Field numbers of envoy.config.core.v3.TransportSocket, the TLS contexts
// and the messages inside them.
const (
	tsName, tsTypedConfig = 1, 3

	tlsCommon, utcSNI, dtcRequireClientCert = 1, 2, 2

	ctcParams, ctcCertificates, ctcValidation, ctcALPN         = 1, 2, 3, 4
	ctcCertSDS, ctcValidationSDS, ctcCombined, ctcCertInstance = 6, 7, 8, 14

	tlspMin, tlspMax, tlspCiphers = 1, 2, 3
	tcChain, tcKey                = 1, 2
	sdsName                       = 1
	cppInstance, cppCertificate   = 1, 2

	cvcDefault, cvcSDS, cvcInstance = 1, 2, 4

	vcTrustedCA, vcHash, vcSPKI, vcCRL, vcSubjectAltNames = 1, 2, 3, 7, 9
	vcTrustChain, vcCAInstance, vcOnlyLeafCRL             = 10, 13, 14
	vcTypedSubjectAltNames, vcSystemRoots                 = 15, 17

	sanTypeField, sanMatcher = 1, 2

	ppConfig, ppTransportSocket, ppcVersion = 1, 2, 1
)

// Enum values of the TLS messages' fields.
const (
	tlsAuto, tlsV12, tlsV13                                 = 0, 3, 4
	sanEmail, sanDNS, sanURI, sanIPAddress                  = 1, 2, 3, 4
	trustAcceptUntrusted                                    = 1
	proxyProtocolV1, proxyProtocolV2                        = 0, 1
	envEnvironmentVariable                 protowire.Number = 4 // DataSource.environment_variable
)

// Typed configs of the transport sockets the proxy knows.
const (
	upstreamTLSName   = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	downstreamTLSName = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
	rawBufferName     = "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
	proxyProtocolName = "envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport"
)

// transportSocket returns message field num (a TransportSocket), nil when
// absent.
func transportSocket(m *pbwire.Msg, num protowire.Number) *pbwire.Msg {
	if !m.Has(num) {
		return nil
	}
	return m.Sub(num)
}

// parseTransportSocketWire parses a transport socket: nil for plaintext.
func parseTransportSocketWire(ts *pbwire.Msg, upstream bool) (*TLSContext, error) {
	if ts == nil {
		return nil, nil
	}
	name := ts.Str(tsName)
	a := typedConfig(ts, tsTypedConfig)
	if a == nil {
		if name == RawBufferTransportSocket || name == "raw_buffer" {
			return nil, nil
		}
		return nil, fmt.Errorf("transport_socket %q: typed_config missing", name)
	}
	url, value := a.GetTypeUrl(), a.GetValue()
	if anyIs(url, rawBufferName) {
		return nil, nil
	}
	if name == UpstreamProxyProtocolSocket || anyIs(url, proxyProtocolName) {
		if !upstream {
			return nil, fmt.Errorf("transport_socket %q: only for upstream connections", name)
		}
		// the version is the cluster's (clusterProxyProtocolWire)
		inner, _, err := unwrapProxyProtocolWire(ts)
		if err != nil {
			return nil, err
		}
		return parseTransportSocketWire(inner, true)
	}
	if upstream {
		if !anyIs(url, upstreamTLSName) {
			return nil, fmt.Errorf("transport_socket %q: type %s not supported (want UpstreamTlsContext or RawBuffer)", name, url)
		}
		u, err := unpackTyped(descUpstreamTLSContext, value)
		if err != nil {
			return nil, fmt.Errorf("transport_socket %q: %w", name, err)
		}
		if err := checkWire(u, tlsRules); err != nil {
			return nil, fmt.Errorf("transport_socket %q: %w", name, err)
		}
		t, err := parseCommonTLSWire(u.Sub(tlsCommon), true)
		if err != nil {
			return nil, fmt.Errorf("transport_socket %q: %w", name, err)
		}
		t.SNI = u.Str(utcSNI)
		if t.SNI != "" && !validSNI(t.SNI) {
			return nil, fmt.Errorf("transport_socket %q: sni %q is not a valid server name", name, t.SNI)
		}
		t.Key = anyKey(url, value)
		return t, nil
	}
	if !anyIs(url, downstreamTLSName) {
		return nil, fmt.Errorf("transport_socket %q: type %s not supported (want DownstreamTlsContext or RawBuffer)", name, url)
	}
	d, err := unpackTyped(descDownstreamTLSContext, value)
	if err != nil {
		return nil, fmt.Errorf("transport_socket %q: %w", name, err)
	}
	if err := checkWire(d, tlsRules); err != nil {
		return nil, fmt.Errorf("transport_socket %q: %w", name, err)
	}
	t, err := parseCommonTLSWire(d.Sub(tlsCommon), false)
	if err != nil {
		return nil, fmt.Errorf("transport_socket %q: %w", name, err)
	}
	t.RequireClientCert = wireBool(d, dtcRequireClientCert, false)
	if t.RequireClientCert && !t.Verify {
		return nil, fmt.Errorf("transport_socket %q: require_client_certificate without a validation context", name)
	}
	if t.CertSDS == "" && t.CertChain.IsZero() {
		return nil, fmt.Errorf("transport_socket %q: a server needs a certificate", name)
	}
	t.Key = anyKey(url, value)
	return t, nil
}

// anyKey is the deterministic encoding of an Any (type URL, then value):
// equal keys mean equal contexts.
func anyKey(url string, value []byte) string {
	var b []byte
	if url != "" {
		b = protowire.AppendString(protowire.AppendTag(b, anyTypeURL, protowire.BytesType), url)
	}
	if len(value) > 0 {
		b = protowire.AppendBytes(protowire.AppendTag(b, anyValue, protowire.BytesType), value)
	}
	return string(b)
}

// parseCommonTLSWire parses the parts of a CommonTlsContext the proxy
// honours and refuses what it cannot honour (it never silently weakens
// validation).
func parseCommonTLSWire(c *pbwire.Msg, upstream bool) (*TLSContext, error) {
	t := &TLSContext{Upstream: upstream}
	if c.Has(ctcParams) {
		p := c.Sub(ctcParams)
		var err error
		if t.MinVersion, err = tlsVersionWire(p, tlspMin, "tls_params.tls_minimum_protocol_version"); err != nil {
			return nil, err
		}
		if t.MaxVersion, err = tlsVersionWire(p, tlspMax, "tls_params.tls_maximum_protocol_version"); err != nil {
			return nil, err
		}
		if t.MinVersion != 0 && t.MaxVersion != 0 && t.MinVersion > t.MaxVersion {
			return nil, fmt.Errorf("tls_params: minimum version above maximum")
		}
		if t.CipherSuites, err = cipherSuites(wireStrings(p, tlspCiphers)); err != nil {
			return nil, err
		}
	}
	alpn := wireStrings(c, ctcALPN)
	for _, p := range alpn {
		if p == "" || len(p) > 255 {
			return nil, fmt.Errorf("alpn_protocols: %q is not a valid protocol name", p)
		}
	}
	t.ALPN = alpn

	var certs []CertRef
	files, sds := c.Subs(ctcCertificates), c.Subs(ctcCertSDS)
	for i, tc := range files {
		var r CertRef
		var err error
		if r.Chain, err = dataSourceWire(tc, tcChain, fmt.Sprintf("tls_certificates[%d].certificate_chain", i)); err != nil {
			return nil, err
		}
		if r.Key, err = dataSourceWire(tc, tcKey, fmt.Sprintf("tls_certificates[%d].private_key", i)); err != nil {
			return nil, err
		}
		if r.Chain.IsZero() || r.Key.IsZero() {
			return nil, fmt.Errorf("tls_certificates[%d]: certificate_chain and private_key are both required", i)
		}
		certs = append(certs, r)
	}
	kinds := 0
	for _, n := range []int{len(files), len(sds)} {
		if n > 0 {
			kinds++
		}
	}
	for i, s := range sds {
		if err := agentSecret(s.Str(sdsName), SDSWorkloadCert, fmt.Sprintf("tls_certificate_sds_secret_configs[%d]", i)); err != nil {
			return nil, err
		}
		certs = append(certs, CertRef{SDS: s.Str(sdsName)})
	}
	if c.Has(ctcCertInstance) {
		kinds++
		if n := c.Sub(ctcCertInstance).Str(cppInstance); n != SDSWorkloadCert && n != "" {
			return nil, fmt.Errorf("tls_certificate_provider_instance %q: only the agent's %q is available", n, SDSWorkloadCert)
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

	var vc *pbwire.Msg
	switch {
	case c.Has(ctcValidation):
		vc = c.Sub(ctcValidation)
		t.Verify = true
	case c.Has(ctcCombined):
		cv := c.Sub(ctcCombined)
		if cv.Has(cvcDefault) {
			vc = cv.Sub(cvcDefault)
		}
		t.Verify = true
		if cv.Has(cvcSDS) {
			s := cv.Sub(cvcSDS).Str(sdsName)
			if err := agentSecret(s, SDSRootCA, "combined_validation_context.validation_context_sds_secret_config"); err != nil {
				return nil, err
			}
			t.RootsSDS = s
		}
		if cv.Has(cvcInstance) {
			t.RootsSDS = SDSRootCA
		}
	case c.Has(ctcValidationSDS):
		s := c.Sub(ctcValidationSDS).Str(sdsName)
		if err := agentSecret(s, SDSRootCA, "validation_context_sds_secret_config"); err != nil {
			return nil, err
		}
		t.Verify, t.RootsSDS = true, s
	}
	if vc != nil {
		if err := parseValidationWire(vc, t); err != nil {
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

func parseValidationWire(vc *pbwire.Msg, t *TLSContext) error {
	var err error
	if t.TrustedCA, err = dataSourceWire(vc, vcTrustedCA, "validation_context.trusted_ca"); err != nil {
		return err
	}
	if vc.Has(vcCAInstance) {
		if n := vc.Sub(vcCAInstance).Str(cppCertificate); n != SDSRootCA && n != "" {
			return fmt.Errorf("validation_context.ca_certificate_provider_instance certificate %q: only the agent's %q is available", n, SDSRootCA)
		}
		t.RootsSDS = SDSRootCA
	}
	t.SystemRoots = vc.Has(vcSystemRoots)
	if vc.Has(vcCRL) {
		src, err := dataSourceWire(vc, vcCRL, "validation_context.crl")
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
		t.OnlyLeafCRL = vc.U64(vcOnlyLeafCRL) != 0
	} else if vc.U64(vcOnlyLeafCRL) != 0 {
		return fmt.Errorf("validation_context.only_verify_leaf_cert_crl without a crl")
	}
	for i, p := range wireStrings(vc, vcSPKI) {
		b, err := base64.StdEncoding.DecodeString(p)
		if err != nil || len(b) != sha256.Size {
			return fmt.Errorf("validation_context.verify_certificate_spki[%d] %q: not a base64 SHA-256 digest", i, p)
		}
		t.SPKIPins = append(t.SPKIPins, b)
	}
	for i, h := range wireStrings(vc, vcHash) {
		b, err := hex.DecodeString(strings.ReplaceAll(h, ":", ""))
		if err != nil || len(b) != sha256.Size {
			return fmt.Errorf("validation_context.verify_certificate_hash[%d] %q: not a hex SHA-256 digest", i, h)
		}
		t.CertHashes = append(t.CertHashes, b)
	}
	if vc.U64(vcTrustChain) == trustAcceptUntrusted {
		if t.Upstream {
			return fmt.Errorf("validation_context.trust_chain_verification ACCEPT_UNTRUSTED is supported for downstream (server) contexts only")
		}
		t.AcceptUntrusted = true
	}
	for i, m := range vc.Subs(vcTypedSubjectAltNames) {
		sm, err := match.DecodeString(m.Bytes(sanMatcher))
		if err != nil {
			return fmt.Errorf("validation_context.match_typed_subject_alt_names[%d]: %w", i, err)
		}
		var typ SANType
		switch v := int32(m.U64(sanTypeField)); v {
		case sanDNS:
			typ = SANDNS
		case sanURI:
			typ = SANURI
		case sanEmail:
			typ = SANEmail
		case sanIPAddress:
			typ = SANIP
		default:
			return fmt.Errorf("validation_context.match_typed_subject_alt_names[%d]: san_type %s not supported", i, enumName(m, sanTypeField, v))
		}
		t.SANs = append(t.SANs, SANMatcher{Type: typ, Str: sm})
	}
	for i, m := range vc.Vals(vcSubjectAltNames) {
		sm, err := match.DecodeString(m.B)
		if err != nil {
			return fmt.Errorf("validation_context.match_subject_alt_names[%d]: %w", i, err)
		}
		t.SANs = append(t.SANs, SANMatcher{Type: SANAny, Str: sm})
	}
	return nil
}

// dataSourceWire reads DataSource field num of m (zero when absent).
func dataSourceWire(m *pbwire.Msg, num protowire.Number, field string) (DataSource, error) {
	if !m.Has(num) {
		return DataSource{}, nil
	}
	d := m.Sub(num)
	switch {
	case d.Has(dsFilename):
		if d.Str(dsFilename) == "" {
			return DataSource{}, fmt.Errorf("%s.filename: empty", field)
		}
		return DataSource{File: d.Str(dsFilename)}, nil
	case d.Has(dsInlineBytes):
		return DataSource{Inline: bytes.Clone(d.Bytes(dsInlineBytes))}, nil
	case d.Has(dsInlineString):
		return DataSource{Inline: []byte(d.Str(dsInlineString))}, nil
	case d.Has(envEnvironmentVariable):
		return DataSource{}, fmt.Errorf("%s.environment_variable: not supported", field)
	}
	return DataSource{}, nil
}

func tlsVersionWire(p *pbwire.Msg, num protowire.Number, field string) (uint16, error) {
	switch v := int32(p.U64(num)); v {
	case tlsAuto:
		return 0, nil
	case tlsV12:
		return VersionTLS12, nil
	case tlsV13:
		return VersionTLS13, nil
	default:
		return 0, fmt.Errorf("%s %s: only TLSv1_2 and TLSv1_3 are supported", field, enumName(p, num, v))
	}
}
