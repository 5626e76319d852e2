package tlsconfig

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/agent"
	"github.com/mast-mesh/mast/internal/proxy/revocation"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// Source provides the workload's secrets; *agent.Agent implements it.
type Source interface {
	// Secrets returns the current secrets, nil before the first certificate.
	Secrets() *agent.Secrets
}

// ErrNoCertificate is returned when a context needs the workload
// certificate and the proxy has none (no agent, or none issued yet).
var ErrNoCertificate = errors.New("no workload certificate: run the proxy with its agent (--ca-addr) or wait for the first certificate")

// ALPN protocols.
const (
	ALPNH2     = "h2"
	ALPNHTTP11 = "http/1.1"
)

// Builder builds TLS configurations for one proxy. It is safe for
// concurrent use. Configurations are cheap to build and meant to be built
// per connection: the workload certificate and the trust bundle are read
// at each handshake, session tickets and the client session cache are
// shared by the whole proxy so that resumption works across them.
type Builder struct {
	// Log, when set, receives a WARN line for every peer certificate
	// refused as revoked. Set it before first use.
	Log *slog.Logger
	// Credentials serves the credentials that contexts name by SDS
	// (credentialName); nil: none, such contexts fail their handshakes.
	// Set it before first use.
	Credentials Credentials

	src      Source
	now      func() time.Time
	sessions tls.ClientSessionCache
	tickets  [][32]byte
}

// NewBuilder returns a builder over src (nil: no workload certificate).
// clock may be nil (time.Now).
func NewBuilder(src Source, clock func() time.Time) *Builder {
	if clock == nil {
		clock = time.Now
	}
	b := &Builder{src: src, now: clock, sessions: tls.NewLRUClientSessionCache(1024), tickets: make([][32]byte, 1)}
	if _, err := rand.Read(b.tickets[0][:]); err != nil {
		panic(fmt.Sprintf("tlsconfig: session ticket key: %v", err)) // crypto/rand never fails on supported platforms
	}
	return b
}

func (b *Builder) secrets() (*agent.Secrets, error) {
	if b.src == nil {
		return nil, ErrNoCertificate
	}
	s := b.src.Secrets()
	if s == nil {
		return nil, ErrNoCertificate
	}
	return s, nil
}

// Client returns the configuration for a connection to an upstream with
// context tc. proto is the application protocol the proxy will speak
// (ALPNH2, ALPNHTTP11, or "" for raw TCP); it is offered before the
// context's own ALPN values (Istio's "istio-peer-exchange", "istio").
func (b *Builder) Client(tc *xdsparse.TLSContext, proto string) (*tls.Config, error) {
	cert, err := b.certificate(tc)
	if err != nil {
		return nil, err
	}
	v, err := b.verifier(tc, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		ServerName:         tc.SNI,
		InsecureSkipVerify: true, // verified in VerifyConnection against the live bundle
		MinVersion:         minVersion(tc.MinVersion),
		MaxVersion:         tc.MaxVersion,
		CipherSuites:       tc.CipherSuites,
		ClientSessionCache: keyedSessions{b.sessions, sessionPrefix(tc)},
		Time:               b.now,
		VerifyConnection:   v,
		// One record per message (see Server).
		DynamicRecordSizingDisabled: true,
	}
	if proto != "" {
		cfg.NextProtos = append(cfg.NextProtos, proto)
	}
	for _, p := range tc.ALPN {
		if !slices.Contains(cfg.NextProtos, p) {
			cfg.NextProtos = append(cfg.NextProtos, p)
		}
	}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert() }
	}
	return cfg, nil
}

// Server returns the configuration that terminates TLS for a filter chain
// with context tc.
func (b *Builder) Server(tc *xdsparse.TLSContext) (*tls.Config, error) {
	cert, err := b.certificate(tc)
	if err != nil {
		return nil, err
	}
	if cert == nil {
		return nil, errors.New("tls: server context without a certificate")
	}
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert() }
	if len(tc.ExtraCerts) > 0 {
		all := []func() (*tls.Certificate, error){cert}
		for _, r := range tc.ExtraCerts {
			c, err := b.certFor(r)
			if err != nil {
				return nil, err
			}
			all = append(all, c)
		}
		getCert = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) { return pickCertificate(hello, all) }
	}
	cfg := &tls.Config{
		MinVersion:     minVersion(tc.MinVersion),
		MaxVersion:     tc.MaxVersion,
		CipherSuites:   tc.CipherSuites,
		NextProtos:     tc.ALPN,
		Time:           b.now,
		GetCertificate: getCert,
		// A message the proxy writes at once (an HTTP/1.1 head and body,
		// a batch of HTTP/2 frames) leaves in one record and one write.
		// crypto/tls's dynamic sizing would cut a connection's first
		// records to about 1.2 KB, growing over the first 128 KB: a
		// browser's first byte over a lossy network, not a mesh hop
		// (Envoy's BoringSSL does not do it either).
		DynamicRecordSizingDisabled: true,
	}
	cfg.SetSessionTicketKeys(b.tickets)
	if tc.Verify {
		v, err := b.verifier(tc, x509.ExtKeyUsageClientAuth)
		if err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.RequestClientCert
		if tc.RequireClientCert {
			cfg.ClientAuth = tls.RequireAnyClientCert
		}
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil // RequireAnyClientCert already refused a missing one
			}
			err := v(cs)
			if err != nil && tc.AcceptUntrusted {
				// ACCEPT_UNTRUSTED (Istio's insecureSkipVerify): the
				// client is let in, as Envoy does; the failure is logged.
				if b.Log != nil {
					b.Log.Debug("client certificate accepted unverified (trust_chain_verification ACCEPT_UNTRUSTED)",
						"subject", cs.PeerCertificates[0].Subject.String(), "error", err)
				}
				return nil
			}
			return err
		}
	}
	return cfg, nil
}

func minVersion(v uint16) uint16 {
	if v == 0 {
		return tls.VersionTLS12
	}
	return v
}

// certificate returns a function giving the certificate to present, or nil
// when the context presents none.
func (b *Builder) certificate(tc *xdsparse.TLSContext) (func() (*tls.Certificate, error), error) {
	return b.certFor(xdsparse.CertRef{SDS: tc.CertSDS, Chain: tc.CertChain, Key: tc.PrivKey})
}

// certFor returns a function giving the certificate r names, or nil when r
// names none.
func (b *Builder) certFor(r xdsparse.CertRef) (func() (*tls.Certificate, error), error) {
	switch {
	case r.SDS == xdsparse.SDSWorkloadCert:
		return func() (*tls.Certificate, error) {
			s, err := b.secrets()
			if err != nil {
				return nil, err
			}
			return s.Cert, nil
		}, nil
	case r.SDS != "":
		name, _ := xdsparse.Credential(r.SDS)
		cred, err := b.credential(name)
		if err != nil {
			return nil, err
		}
		if cred.Cert == nil {
			return nil, fmt.Errorf("credential %q holds no certificate and key (tls.crt, tls.key)", name)
		}
		return func() (*tls.Certificate, error) { return cred.Cert, nil }, nil
	case !r.Chain.IsZero():
		chain, err := readSource(r.Chain)
		if err != nil {
			return nil, fmt.Errorf("tls: certificate chain: %w", err)
		}
		key, err := readSource(r.Key)
		if err != nil {
			return nil, fmt.Errorf("tls: private key: %w", err)
		}
		c, err := tls.X509KeyPair(chain, key)
		if err != nil {
			return nil, fmt.Errorf("tls: certificate %s: %w", describe(r.Chain), err)
		}
		return func() (*tls.Certificate, error) { return &c, nil }, nil
	}
	return nil, nil
}

func readSource(d xdsparse.DataSource) ([]byte, error) {
	if d.File != "" {
		return os.ReadFile(d.File)
	}
	return d.Inline, nil
}

func describe(d xdsparse.DataSource) string {
	if d.File != "" {
		return d.File
	}
	return "(inline)"
}

// verifier returns the peer check of tc for a peer of the given usage.
func (b *Builder) verifier(tc *xdsparse.TLSContext, usage x509.ExtKeyUsage) (func(tls.ConnectionState) error, error) {
	sans := tc.SANs
	sni := tc.SNI
	switch {
	case !tc.Verify:
		return func(tls.ConnectionState) error { return nil }, nil
	case tc.RootsSDS == xdsparse.SDSRootCA:
		return func(cs tls.ConnectionState) error {
			s, err := b.secrets()
			if err != nil {
				return err
			}
			now := b.now()
			id, chains, err := verifySVIDChains(cs.PeerCertificates, s.ID.TrustDomain(), s.Bundle, now, usage)
			if err != nil {
				return err
			}
			if err := b.checkCRL(tc, chains, now, usage, id.String()); err != nil {
				return err
			}
			if err := matchPins(tc, cs.PeerCertificates[0]); err != nil {
				return err
			}
			return matchSANs(sans, cs.PeerCertificates[0])
		}, nil
	}
	var pool *x509.CertPool // nil: the system's roots
	crlTC := tc
	switch {
	case tc.RootsSDS != "":
		name, _ := xdsparse.Credential(tc.RootsSDS)
		cred, err := b.credential(name)
		if err != nil {
			return nil, err
		}
		if cred.Roots == nil {
			return nil, fmt.Errorf("credential %q holds no CA certificates (ca.crt) to verify peers with", name)
		}
		pool = cred.Roots
		if tc.CRL == nil && cred.CRL != nil {
			// The credential's ca.crl, Istio's CRL for credentialName.
			c := *tc
			c.CRL = cred.CRL
			crlTC = &c
		}
	case !tc.SystemRoots:
		data, err := readSource(tc.TrustedCA)
		if err != nil {
			return nil, fmt.Errorf("tls: trusted_ca: %w", err)
		}
		roots, err := agent.ParseCertsPEM(data)
		if err != nil {
			return nil, fmt.Errorf("tls: trusted_ca %s: %w", describe(tc.TrustedCA), err)
		}
		pool = x509.NewCertPool()
		for _, r := range roots {
			pool.AddCert(r)
		}
	}
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("peer presented no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		leaf := cs.PeerCertificates[0]
		now := b.now()
		chains, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{usage}})
		if err != nil {
			return fmt.Errorf("peer certificate: %w", err)
		}
		if err := b.checkCRL(crlTC, chains, now, usage, leaf.Subject.String()); err != nil {
			return err
		}
		if err := matchPins(tc, leaf); err != nil {
			return err
		}
		if len(sans) == 0 && sni != "" && usage == x509.ExtKeyUsageServerAuth {
			// No SAN matchers: check the name we asked for, as Envoy's
			// auto SAN validation does.
			return leaf.VerifyHostname(sni)
		}
		return matchSANs(sans, leaf)
	}, nil
}

// matchPins accepts the leaf when tc pins nothing, or when the SHA-256 of
// its SubjectPublicKeyInfo or of the certificate is one tc pins (Envoy's
// verify_certificate_spki / verify_certificate_hash: either list may match).
func matchPins(tc *xdsparse.TLSContext, leaf *x509.Certificate) error {
	if len(tc.SPKIPins) == 0 && len(tc.CertHashes) == 0 {
		return nil
	}
	spki, hash := sha256.Sum256(leaf.RawSubjectPublicKeyInfo), sha256.Sum256(leaf.Raw)
	for _, p := range tc.SPKIPins {
		if bytes.Equal(p, spki[:]) {
			return nil
		}
	}
	for _, h := range tc.CertHashes {
		if bytes.Equal(h, hash[:]) {
			return nil
		}
	}
	return fmt.Errorf("peer certificate %q matches no pinned SPKI or certificate hash", leaf.Subject.String())
}

// checkCRL refuses a peer whose verified chains tc's CRLs do not clear;
// a revoked certificate is logged at WARN with its serial and identity.
func (b *Builder) checkCRL(tc *xdsparse.TLSContext, chains [][]*x509.Certificate, now time.Time, usage x509.ExtKeyUsage, who string) error {
	if tc.CRL == nil {
		return nil
	}
	for _, chain := range chains {
		err := tc.CRL.Check(chain, now, tc.OnlyLeafCRL)
		if err == nil {
			continue
		}
		var rev *revocation.RevokedError
		if errors.As(err, &rev) && b.Log != nil {
			peer := "client"
			if usage == x509.ExtKeyUsageServerAuth {
				peer = "server"
			}
			b.Log.Warn("TLS peer refused: certificate revoked", "peer", peer, "identity", who,
				"serial", rev.Serial.Text(16), "issuer", rev.Issuer)
		}
		return fmt.Errorf("peer certificate %s: %w", who, err)
	}
	return nil
}

// matchSANs accepts the leaf when no matchers are configured or any
// matcher matches one of its names.
func matchSANs(sans []xdsparse.SANMatcher, leaf *x509.Certificate) error {
	if len(sans) == 0 {
		return nil
	}
	uris := make([]string, len(leaf.URIs))
	for i, u := range leaf.URIs {
		uris[i] = u.String()
	}
	ips := make([]string, len(leaf.IPAddresses))
	for i, ip := range leaf.IPAddresses {
		ips[i] = ip.String()
	}
	for i := range sans {
		if sans[i].MatchSAN(leaf.DNSNames, uris, leaf.EmailAddresses, ips) {
			return nil
		}
	}
	names := append(append(append([]string{}, uris...), leaf.DNSNames...), ips...)
	return fmt.Errorf("peer certificate names %q match none of the %d expected subject alternative names", names, len(sans))
}

// pickCertificate chooses among a server's certificates as Envoy does with
// several: the first whose names cover the client's SNI and that the client
// supports (signature algorithms, curves: crypto/tls's SupportsCertificate),
// else the first the client supports, else the first.
func pickCertificate(hello *tls.ClientHelloInfo, certs []func() (*tls.Certificate, error)) (*tls.Certificate, error) {
	var supported, first *tls.Certificate
	for _, get := range certs {
		c, err := get()
		if err != nil {
			return nil, err
		}
		if first == nil {
			first = c
		}
		if hello.SupportsCertificate(c) != nil {
			continue
		}
		if hello.ServerName == "" || c.Leaf == nil || c.Leaf.VerifyHostname(hello.ServerName) == nil {
			return c, nil
		}
		if supported == nil {
			supported = c
		}
	}
	if supported != nil {
		return supported, nil
	}
	return first, nil
}

// keyedSessions keeps one TLS context's sessions apart from another's in
// the shared cache: crypto/tls keys sessions by server name only, so two
// clusters reaching the same name with different client certificates or
// CAs (DestinationRule credentialName, SIMPLE beside MUTUAL) would resume
// each other's sessions, and the server would see the other's identity.
type keyedSessions struct {
	c      tls.ClientSessionCache
	prefix string
}

func (k keyedSessions) Get(key string) (*tls.ClientSessionState, bool) {
	return k.c.Get(k.prefix + key)
}
func (k keyedSessions) Put(key string, cs *tls.ClientSessionState) { k.c.Put(k.prefix+key, cs) }

func sessionPrefix(tc *xdsparse.TLSContext) string {
	h := sha256.Sum256([]byte(tc.Key))
	return fmt.Sprintf("%x|", h[:8])
}
