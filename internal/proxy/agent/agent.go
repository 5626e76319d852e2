// Package agent is mast-proxy's node agent, the part of Istio's pilot-agent
// that manages the workload's identity: it generates a private key in
// memory, asks the CA (Istio's IstioCertificateService on mastd's 15012) to
// sign a CSR for the workload's SPIFFE ID, renews the certificate when half
// its lifetime is left (with jitter, so a fleet started together does not
// renew together), retries with backoff while the CA is unreachable and the
// current certificate is still valid, and takes the trust bundle from every
// answer, so roots added by a rotation are trusted as soon as the CA
// publishes them.
//
// The proxy reads the secrets in-process (Secrets); a real Envoy reads them
// through the SDS server (ServeSDS) under Istio's names "default" and
// "ROOTCA".
package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

// Istio's SDS resource names.
const (
	// WorkloadSecret is the SDS name of the workload's certificate and key.
	WorkloadSecret = "default"
	// RootSecret is the SDS name of the trust bundle.
	RootSecret = "ROOTCA"
)

// Defaults for Config.
const (
	DefaultJitter     = 0.1
	DefaultBackoffMin = 500 * time.Millisecond
	DefaultBackoffMax = 30 * time.Second
	// DefaultCAServerName is a DNS name mastd's serving certificate carries.
	DefaultCAServerName = "istiod.istio-system.svc"
)

// Config configures an agent. Main fills it from flags.
type Config struct {
	// CAAddr is the CA's address (mastd's --secure-xds-addr), host:port.
	CAAddr string
	// CAServerName is the name checked in the CA's serving certificate
	// (default istiod.istio-system.svc).
	CAServerName string
	// RootCertFile holds the PEM roots that the CA's serving certificate
	// chains to (the CA directory's root-cert.pem). They are trusted for the
	// CA connection only; the mesh's trust bundle comes from the CA. The file
	// is read again at every connection to the CA (as Istio's agent watches
	// its mounted root), so roots a rotation adds to it are trusted without
	// a restart; when it cannot be read the last good roots stay in use.
	RootCertFile string
	// RootCerts, when set, are used instead of RootCertFile.
	RootCerts []*x509.Certificate
	// TokenFile holds the bootstrap token proving the workload's identity.
	// It is read on every use, so it may be replaced. The agent renews with
	// its current certificate and falls back to the token when that fails.
	TokenFile string
	// ID is the workload's SPIFFE ID, spiffe://TD/ns/NS/sa/SA.
	ID spiffeid.ID
	// CertTTL is the lifetime to request; 0 leaves it to the CA.
	CertTTL time.Duration
	// Jitter is the fraction of a certificate's lifetime by which renewal
	// may come early, chosen at random per renewal (default 0.1).
	Jitter float64
	// BackoffMin and BackoffMax bound the delay between failed attempts.
	BackoffMin, BackoffMax time.Duration
	Logger                 *slog.Logger
	// Clock returns the current time (time.Now by default).
	Clock func() time.Time
}

// Secrets is one issued identity: the workload certificate with its key and
// the trust bundle. It is immutable once published.
type Secrets struct {
	// Cert is the certificate chain (leaf first, no root) with its key, for
	// crypto/tls; Cert.Leaf is set.
	Cert *tls.Certificate
	// ID is the leaf's SPIFFE ID.
	ID spiffeid.ID
	// Roots are the trusted roots of the mesh's trust domain (two during a
	// root rotation's overlap).
	Roots []*x509.Certificate
	// Bundle is Roots as a go-spiffe bundle of ID's trust domain.
	Bundle *x509bundle.Bundle
	// Pool is Roots as a certificate pool.
	Pool *x509.CertPool
	// CertPEM, KeyPEM and RootsPEM are the same in PEM, for SDS.
	CertPEM, KeyPEM, RootsPEM []byte
	// Version increases with every change.
	Version uint64
	// Issued is when the agent received the certificate.
	Issued time.Time
}

// Agent fetches and renews the workload's certificate.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	caRoots  atomic.Pointer[[]*x509.Certificate] // from RootCerts or RootCertFile
	cur      atomic.Pointer[Secrets]
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change
	ready    chan struct{}
	readyOne sync.Once
	tlsConf  *tls.Config
	rnd      func(n int64) int64
	// bootKey signs every CSR sent with the bootstrap token: the CA binds
	// a token to the first key it is used with, so the agent keeps one key
	// for token requests (renewals with the certificate use fresh keys).
	bootKey *ecdsa.PrivateKey
	// Renewals counts certificates received; Failures failed attempts.
	Renewals, Failures atomic.Uint64
}

// New checks cfg and returns an agent; call Run to fetch certificates.
func New(cfg Config) (*Agent, error) {
	if cfg.CAAddr == "" {
		return nil, errors.New("agent: CA address is empty")
	}
	if cfg.ID.IsZero() {
		return nil, errors.New("agent: workload SPIFFE ID is empty")
	}
	if cfg.CAServerName == "" {
		cfg.CAServerName = DefaultCAServerName
	}
	if cfg.Jitter == 0 {
		cfg.Jitter = DefaultJitter
	}
	if cfg.Jitter < 0 || cfg.Jitter > 0.5 {
		return nil, fmt.Errorf("agent: jitter %v: want 0 to 0.5", cfg.Jitter)
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(DefaultBackoffMax, cfg.BackoffMin)
	}
	if cfg.CertTTL < 0 {
		return nil, fmt.Errorf("agent: negative certificate lifetime %s", cfg.CertTTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	roots := cfg.RootCerts
	var err error
	if len(roots) == 0 {
		if cfg.RootCertFile == "" {
			return nil, errors.New("agent: no roots to verify the CA with: set the root certificate file")
		}
		data, err := os.ReadFile(cfg.RootCertFile)
		if err != nil {
			return nil, fmt.Errorf("agent: root certificate file: %w", err)
		}
		if roots, err = ParseCertsPEM(data); err != nil {
			return nil, fmt.Errorf("agent: root certificate file %s: %w", cfg.RootCertFile, err)
		}
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, now: cfg.Clock,
		changed: make(chan struct{}), ready: make(chan struct{}),
		rnd: func(n int64) int64 {
			if n <= 0 {
				return 0
			}
			v, err := rand.Int(rand.Reader, big.NewInt(n))
			if err != nil {
				return 0
			}
			return v.Int64()
		}}
	a.caRoots.Store(&roots)
	if a.bootKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, fmt.Errorf("agent: generate key: %w", err)
	}
	tlsCfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: cfg.CAServerName,
		// The pool changes as the CA publishes roots: verify by hand.
		InsecureSkipVerify: true,
		VerifyConnection:   a.verifyCA,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if s := a.cur.Load(); s != nil && a.now().Before(s.Cert.Leaf.NotAfter) {
				return s.Cert, nil
			}
			return &tls.Certificate{}, nil
		},
	}
	a.tlsConf = tlsCfg
	return a, nil
}

// verifyCA checks the CA's serving certificate against the configured roots
// and the current trust bundle.
func (a *Agent) verifyCA(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("CA presented no certificate")
	}
	pool := x509.NewCertPool()
	for _, r := range a.rootsForCA() {
		pool.AddCert(r)
	}
	if s := a.cur.Load(); s != nil {
		for _, r := range s.Roots {
			pool.AddCert(r)
		}
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: a.cfg.CAServerName, Roots: pool,
		Intermediates: inter, CurrentTime: a.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return fmt.Errorf("CA serving certificate: %w", err)
	}
	return nil
}

// rootsForCA returns the configured roots, re-reading RootCertFile.
func (a *Agent) rootsForCA() []*x509.Certificate {
	if a.cfg.RootCertFile != "" && len(a.cfg.RootCerts) == 0 {
		data, err := os.ReadFile(a.cfg.RootCertFile)
		if err == nil {
			var roots []*x509.Certificate
			if roots, err = ParseCertsPEM(data); err == nil {
				a.caRoots.Store(&roots)
				return roots
			}
		}
		a.log.Warn("root certificate file unreadable; keeping the roots read before", "file", a.cfg.RootCertFile, "error", err)
	}
	return *a.caRoots.Load()
}

// TLSConfig is the agent's TLS configuration towards mastd: it verifies mastd's serving certificate for CAServerName against the root file
// and the current trust bundle, and present the workload certificate while
// it is valid. The proxy's xDS connection to 15012 uses them, so mastd can
// bind the proxy's node to its SPIFFE identity.
func (a *Agent) TLSConfig() *tls.Config { return a.tlsConf.Clone() }

// Secrets returns the current identity, or nil before the first certificate.
func (a *Agent) Secrets() *Secrets { return a.cur.Load() }

// Ready is closed once the first certificate arrived.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Changed returns a channel closed at the next change of Secrets. Take it
// before reading Secrets so that no change is missed.
func (a *Agent) Changed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changed
}

// Close releases the agent's resources.
func (a *Agent) Close() error { return nil }

// Run fetches the first certificate and renews it until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	failures := 0
	for {
		var wait time.Duration
		s, err := a.fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.Failures.Add(1)
			wait = a.backoff(failures, a.cur.Load())
			failures++
			lvl := slog.LevelWarn
			if cur := a.cur.Load(); cur == nil || !a.now().Before(cur.Cert.Leaf.NotAfter) {
				lvl = slog.LevelError
			}
			a.log.Log(ctx, lvl, "certificate request failed; retrying", "id", a.cfg.ID.String(), "attempt", failures, "retry_in", wait.Round(time.Millisecond), "error", err)
		} else {
			failures = 0
			a.publish(s)
			wait = a.renewAt(s).Sub(a.now())
			a.log.Info("certificate issued", "id", s.ID.String(), "serial", s.Cert.Leaf.SerialNumber.Text(16),
				"not_after", s.Cert.Leaf.NotAfter.UTC().Format(time.RFC3339), "roots", len(s.Roots), "renew_in", wait.Round(time.Millisecond))
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// renewAt is when s must be renewed: when half of its lifetime (counted from
// when it was received, not its backdated NotBefore) is left, brought
// forward by a random jitter of up to cfg.Jitter of the lifetime.
func (a *Agent) renewAt(s *Secrets) time.Time {
	return RenewAt(s.Issued, s.Cert.Leaf, a.cfg.Jitter, a.rnd)
}

// RenewAt is the renewal instant of leaf received at issued: half its
// remaining lifetime, minus a random jitter in [0, jitter*lifetime) drawn
// with rnd (which returns a value in [0, n)).
func RenewAt(issued time.Time, leaf *x509.Certificate, jitter float64, rnd func(n int64) int64) time.Time {
	start := leaf.NotBefore
	if issued.After(start) {
		start = issued
	}
	life := leaf.NotAfter.Sub(start)
	if life <= 0 {
		return issued
	}
	at := leaf.NotAfter.Add(-life / 2)
	if j := int64(float64(life) * jitter); j > 0 {
		at = at.Add(-time.Duration(rnd(j)))
	}
	return at
}

// backoff is the wait after the n-th consecutive failure: exponential with
// full jitter in its upper half, bounded by BackoffMax and, while a
// certificate is valid, by a quarter of its remaining life so that renewal
// still happens in time when the CA comes back.
func (a *Agent) backoff(n int, cur *Secrets) time.Duration {
	d := a.cfg.BackoffMin << min(n, 20)
	if d <= 0 || d > a.cfg.BackoffMax {
		d = a.cfg.BackoffMax
	}
	if cur != nil {
		if left := cur.Cert.Leaf.NotAfter.Sub(a.now()) / 4; left > 0 && left < d {
			d = max(left, a.cfg.BackoffMin)
		}
	}
	return d/2 + time.Duration(a.rnd(int64(d/2)+1))
}

func (a *Agent) publish(s *Secrets) {
	a.mu.Lock()
	if prev := a.cur.Load(); prev != nil {
		s.Version = prev.Version + 1
	} else {
		s.Version = 1
	}
	a.cur.Store(s)
	// Counted before the change is announced, so whoever wakes on it
	// sees the count that includes it.
	a.Renewals.Add(1)
	close(a.changed)
	a.changed = make(chan struct{})
	a.mu.Unlock()
	a.readyOne.Do(func() { close(a.ready) })
}

// fetch generates a key, sends a CSR and checks the answer. It
// authenticates with the current certificate while it is valid, and with
// the bootstrap token otherwise or when the CA refuses the certificate.
func (a *Agent) fetch(ctx context.Context) (*Secrets, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	request := func(key *ecdsa.PrivateKey) (*certRequest, error) {
		csrPEM, err := NewCSR(key, a.cfg.ID)
		if err != nil {
			return nil, err
		}
		return &certRequest{CSR: string(csrPEM), ValiditySeconds: int64(a.cfg.CertTTL / time.Second)}, nil
	}
	req, err := request(key)
	if err != nil {
		return nil, err
	}
	// A connection per attempt: the client certificate is presented at the
	// handshake, so a connection made before a renewal would prove nothing.
	// mast-proxy's gRPC client asks DNS for addresses only (no service
	// config TXT record a nameserver could leave unanswered).
	conn, err := rpc.Dial(a.cfg.CAAddr, rpc.Options{TLS: a.tlsConf})
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", a.cfg.CAAddr, err)
	}
	defer conn.Close()
	create := func(ctx context.Context, req *certRequest, md ...rpc.Header) (*certResponse, error) {
		raw, err := conn.Invoke(ctx, createCertificate, req.marshal(), md...)
		if err != nil {
			return nil, err
		}
		resp := &certResponse{}
		if err := resp.unmarshal(raw); err != nil {
			return nil, rpc.Errorf(rpc.Internal, "grpc: failed to unmarshal the received message: %v", err)
		}
		return resp, nil
	}
	cur := a.cur.Load()
	useCert := cur != nil && a.now().Before(cur.Cert.Leaf.NotAfter)
	var resp *certResponse
	if useCert {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err = create(rctx, req)
		cancel()
		if rpc.CodeOf(err) == rpc.Unauthenticated && a.cfg.TokenFile != "" {
			a.log.Info("CA refused the current certificate; renewing with the bootstrap token", "error", err)
			useCert = false
		} else if err != nil {
			return nil, fmt.Errorf("CA %s: %w", a.cfg.CAAddr, err)
		}
	}
	if !useCert {
		tok, err := a.token()
		if err != nil {
			return nil, err
		}
		key = a.bootKey
		if req, err = request(key); err != nil {
			return nil, err
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err = create(rctx, req, rpc.Header{Name: "authorization", Value: "Bearer " + tok})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("CA %s: %w", a.cfg.CAAddr, err)
		}
	}
	return a.secretsFrom(resp.CertChain, key)
}

func (a *Agent) token() (string, error) {
	if a.cfg.TokenFile == "" {
		return "", errors.New("no valid certificate and no bootstrap token file to prove the identity with")
	}
	b, err := os.ReadFile(a.cfg.TokenFile)
	if err != nil {
		return "", fmt.Errorf("bootstrap token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("bootstrap token file %s is empty", a.cfg.TokenFile)
	}
	return tok, nil
}

// secretsFrom checks a CA answer [leaf, intermediates..., bundle] against
// the key and the requested identity.
func (a *Agent) secretsFrom(chain []string, key *ecdsa.PrivateKey) (*Secrets, error) {
	if len(chain) < 2 {
		return nil, fmt.Errorf("CA answer has %d PEM elements, want the leaf, intermediates and the trust bundle", len(chain))
	}
	var certs []*x509.Certificate
	for i, p := range chain[:len(chain)-1] {
		cs, err := ParseCertsPEM([]byte(p))
		if err != nil {
			return nil, fmt.Errorf("CA answer: cert_chain[%d]: %w", i, err)
		}
		certs = append(certs, cs...)
	}
	roots, err := ParseCertsPEM([]byte(chain[len(chain)-1]))
	if err != nil {
		return nil, fmt.Errorf("CA answer: trust bundle: %w", err)
	}
	s, err := NewSecrets(certs, key, roots, a.now())
	if err != nil {
		return nil, fmt.Errorf("CA answer: %w", err)
	}
	if s.ID != a.cfg.ID {
		return nil, fmt.Errorf("CA answer: certificate is for %s, want %s", s.ID, a.cfg.ID)
	}
	return s, nil
}

// NewSecrets assembles Secrets from a verified-looking chain: it checks that
// key belongs to the leaf, that the leaf carries one SPIFFE ID and that the
// chain verifies against roots at now.
func NewSecrets(certs []*x509.Certificate, key *ecdsa.PrivateKey, roots []*x509.Certificate, now time.Time) (*Secrets, error) {
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	leaf := certs[0]
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("certificate does not match the private key")
	}
	if len(leaf.URIs) != 1 {
		return nil, fmt.Errorf("certificate has %d URI SANs, want one SPIFFE ID", len(leaf.URIs))
	}
	id, err := spiffeid.FromURI(leaf.URIs[0])
	if err != nil {
		return nil, fmt.Errorf("certificate URI SAN: %w", err)
	}
	pool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("certificate does not chain to the trust bundle: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	var certPEM, rootsPEM []byte
	for _, c := range certs {
		tc.Certificate = append(tc.Certificate, c.Raw)
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	for _, r := range roots {
		rootsPEM = append(rootsPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.Raw})...)
	}
	return &Secrets{
		Cert: tc, ID: id, Roots: roots, Pool: pool,
		Bundle:  x509bundle.FromX509Authorities(id.TrustDomain(), roots),
		CertPEM: certPEM, RootsPEM: rootsPEM,
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		Issued: now,
	}, nil
}

// NewCSR returns a PEM CSR for id signed by key: one URI SAN, nothing else,
// as the CA requires.
func NewCSR(key *ecdsa.PrivateKey, id spiffeid.ID) ([]byte, error) {
	u, err := url.Parse(id.String())
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// ParseCertsPEM decodes every CERTIFICATE block of data; it fails on other
// block types and when there is none.
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for i := 0; ; i++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d has type %q, want CERTIFICATE", i, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", i, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return out, nil
}

// WorkloadID builds spiffe://TD/ns/NS/sa/SA; sa may already be a SPIFFE ID.
func WorkloadID(trustDomain, ns, sa string) (spiffeid.ID, error) {
	if strings.HasPrefix(sa, "spiffe://") {
		return spiffeid.FromString(sa)
	}
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("trust domain %q: %w", trustDomain, err)
	}
	if ns == "" || sa == "" {
		return spiffeid.ID{}, fmt.Errorf("identity needs a namespace and a service account (got %q, %q)", ns, sa)
	}
	return spiffeid.FromSegments(td, "ns", ns, "sa", sa)
}
