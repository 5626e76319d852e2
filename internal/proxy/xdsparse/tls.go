package xdsparse

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

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

// agentSecret accepts an SDS secret reference when it names the agent's
// secret want or a credential (SDSCredentialPrefix + a DNS-1123 name) that
// the proxy's credential store serves; other secrets cannot be fetched by
// this proxy.
func agentSecret(secret, want, field string) error {
	if secret == want {
		return nil
	}
	if name, ok := Credential(secret); ok {
		if !validCredentialName(name) {
			return fmt.Errorf("%s: SDS secret %q: %q is not a valid credential name (lowercase DNS-1123)", field, secret, name)
		}
		return nil
	}
	return fmt.Errorf("%s: SDS secret %q is not available; the proxy's agent serves %q and %q, its credential store %q names", field, secret, SDSWorkloadCert, SDSRootCA, SDSCredentialPrefix+"NAME")
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
