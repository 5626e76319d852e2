// Package ca is Mast's certificate authority. It keeps a self-signed root
// (generated on first start and persisted) or uses a plug-in CA supplied by
// the user, and signs X.509 SPIFFE workload certificates through Istio's
// IstioCertificateService, only for identities the caller has proved: a
// bootstrap token issued by this CA, a client certificate it issued earlier,
// or (through Config.Authenticators) a Kubernetes service-account token.
//
// Root rotation keeps two roots trusted for an overlap; see RotateRoot.
package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/mast-mesh/mast/internal/ca/token"
)

// Defaults for Config.
const (
	DefaultLeafTTL = 24 * time.Hour
	// DefaultMaxTTL caps every leaf at Istio's default workload lifetime: a
	// stolen certificate or bootstrap token buys at most a day.
	DefaultMaxTTL  = 24 * time.Hour
	DefaultRootTTL = 10 * 365 * 24 * time.Hour
)

// clockSkew backdates NotBefore of leaves so that peers whose clocks run a
// little behind accept them at once.
const clockSkew = time.Minute

// Config configures a CA. Zero durations take the defaults above.
type Config struct {
	// Dir persists the self-signed roots and the bootstrap token key
	// (ca-state.json, mode 0600) and exports the trust bundle (root-cert.pem).
	// Required unless Store is set.
	Dir string
	// Store overrides Dir, e.g. with a Kubernetes Secret store.
	Store Store
	// TrustDomain is the SPIFFE trust domain, e.g. "cluster.local".
	TrustDomain string
	// PluginCert and PluginKey, when set, name a user CA (root or
	// intermediate) that signs instead of a self-signed root; PluginChain
	// holds the intermediates up to the root (Istio's cert-chain.pem) and
	// PluginRoot the trusted root(s) (Istio's root-cert.pem).
	PluginCert, PluginKey, PluginChain, PluginRoot string
	// DefaultTTL is the lifetime of a leaf whose request names none (24h).
	DefaultTTL time.Duration
	// MaxTTL caps requested leaf lifetimes (24h, mastd --max-cert-ttl).
	MaxTTL time.Duration
	// RootTTL is the lifetime of a generated root (10 years).
	RootTTL time.Duration
	// Authenticators are tried, in order, for a bearer token that is not a
	// valid bootstrap token (e.g. Kubernetes TokenReview).
	Authenticators []Authenticator
	Logger         *slog.Logger
	// Clock returns the current time; time.Now by default.
	Clock func() time.Time
}

// CA is a certificate authority. Its methods are safe for concurrent use.
type CA struct {
	cfg   Config
	td    spiffeid.TrustDomain
	store Store
	log   *slog.Logger
	now   func() time.Time

	mu   sync.Mutex // serialises changes of the persisted state
	st   State      // guarded by mu
	auth atomic.Pointer[authority]
	// metrics, once RegisterMetrics ran.
	metrics atomic.Pointer[metrics]
	// issued is the latest certificate per identity, for the dashboard,
	// and every unexpired one, for the CRL.
	issued issuedLog
	crls   crlCache
}

// New loads the CA's state from its store, generating and persisting a root
// (unless a plug-in CA is configured) and a token key on first start.
func New(cfg Config) (*CA, error) {
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("ca: TrustDomain %q: %w", cfg.TrustDomain, err)
	}
	if cfg.DefaultTTL == 0 {
		cfg.DefaultTTL = DefaultLeafTTL
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	if cfg.RootTTL == 0 {
		cfg.RootTTL = DefaultRootTTL
	}
	switch {
	case cfg.DefaultTTL < 0 || cfg.MaxTTL < 0 || cfg.RootTTL < 0:
		return nil, errors.New("ca: DefaultTTL, MaxTTL and RootTTL must not be negative")
	case cfg.DefaultTTL > cfg.MaxTTL:
		return nil, fmt.Errorf("ca: DefaultTTL %s exceeds MaxTTL %s", cfg.DefaultTTL, cfg.MaxTTL)
	case cfg.MaxTTL >= cfg.RootTTL:
		return nil, fmt.Errorf("ca: MaxTTL %s must be shorter than RootTTL %s", cfg.MaxTTL, cfg.RootTTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	store := cfg.Store
	if store == nil {
		if cfg.Dir == "" {
			return nil, errors.New("ca: Dir is required")
		}
		store = FileStore{Dir: cfg.Dir}
	}
	ca := &CA{cfg: cfg, td: td, store: store, log: cfg.Logger, now: cfg.Clock}
	if err := ca.load(); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if cfg.Dir != "" {
		if err := ca.issued.load(cfg.Dir, ca.now()); err != nil {
			return nil, err
		}
	}
	return ca, nil
}

func (ca *CA) load() error {
	now := ca.now()
	st, found, err := ca.store.Load()
	if err != nil {
		return err
	}
	dirty := !found
	plugin := ca.cfg.PluginCert != "" || ca.cfg.PluginKey != "" || ca.cfg.PluginChain != "" || ca.cfg.PluginRoot != ""
	if n := len(st.Roots); n > 0 {
		st = pruneRetired(st, now)
		dirty = dirty || len(st.Roots) != n
	}
	if !plugin && len(st.Roots) == 0 {
		root, err := newRoot(ca.td, now, ca.cfg.RootTTL)
		if err != nil {
			return err
		}
		st.Roots = []RootState{root}
		dirty = true
		ca.log.Info("generated self-signed root", "trust_domain", ca.td.Name())
	}
	if st.TokenKey == nil {
		k, err := token.GenerateKey()
		if err != nil {
			return err
		}
		if st.TokenKey, err = k.MarshalPEM(); err != nil {
			return err
		}
		dirty = true
	}
	a, err := ca.build(st, plugin, now)
	if err != nil {
		if name, ok := ca.store.(fmt.Stringer); ok && !plugin {
			return fmt.Errorf("%s: %w", name, err)
		}
		return err
	}
	if dirty {
		if err := ca.store.Save(st); err != nil {
			if !found && errors.Is(err, ErrCreatedElsewhere) {
				// Another replica stored its root first: use that one.
				ca.log.Info("CA state created by another replica; loading it", "error", err)
				return ca.load()
			}
			return err
		}
	}
	ca.st = st
	ca.auth.Store(a)
	return nil
}

// build turns persisted state (and plug-in files) into an authority.
func (ca *CA) build(st State, plugin bool, now time.Time) (*authority, error) {
	var a *authority
	var err error
	if plugin {
		a, err = loadPlugin(pluginFiles{
			cert: ca.cfg.PluginCert, key: ca.cfg.PluginKey,
			chain: ca.cfg.PluginChain, root: ca.cfg.PluginRoot,
		}, now)
	} else {
		a, err = fromState(st)
	}
	if err != nil {
		return nil, err
	}
	if a.tokenKey, err = token.ParseKeyPEM(st.TokenKey); err != nil {
		return nil, err
	}
	return a, nil
}

// TrustDomain returns the CA's trust domain.
func (ca *CA) TrustDomain() spiffeid.TrustDomain { return ca.td }

// TrustBundle returns the roots trusted now: one, or two during a rotation's
// overlap.
func (ca *CA) TrustBundle() []*x509.Certificate {
	return ca.auth.Load().rootsAt(ca.now())
}

// TrustBundlePEM returns TrustBundle as concatenated PEM blocks.
func (ca *CA) TrustBundlePEM() []byte {
	return []byte(bundlePEM(ca.auth.Load().anchorsAt(ca.now())))
}

// WorkloadID returns spiffe://<trust-domain>/ns/<ns>/sa/<sa>.
func (ca *CA) WorkloadID(ns, sa string) (spiffeid.ID, error) {
	id, err := spiffeid.FromSegments(ca.td, "ns", ns, "sa", sa)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("ca: identity ns %q sa %q: %w", ns, sa, err)
	}
	return id, nil
}

// checkWorkloadID accepts only spiffe://<our trust domain>/ns/<ns>/sa/<sa>.
func (ca *CA) checkWorkloadID(id spiffeid.ID) error {
	if !id.MemberOf(ca.td) {
		return fmt.Errorf("identity %s is outside trust domain %s", id, ca.td.Name())
	}
	seg := strings.Split(id.Path(), "/") // "", "ns", ns, "sa", sa
	if len(seg) != 5 || seg[1] != "ns" || seg[3] != "sa" {
		return fmt.Errorf("identity %s: path must be /ns/<namespace>/sa/<service-account>", id)
	}
	return nil
}

// IssueToken returns a bootstrap token proving id for ttl (DefaultTTL when
// zero). Rotating the token key (RotateTokenKey) revokes it.
func (ca *CA) IssueToken(id spiffeid.ID, ttl time.Duration) (string, error) {
	if err := ca.checkWorkloadID(id); err != nil {
		return "", fmt.Errorf("ca: token: %w", err)
	}
	if ttl < 0 {
		return "", fmt.Errorf("ca: token: negative lifetime %s", ttl)
	}
	if ttl == 0 {
		ttl = ca.cfg.DefaultTTL
	}
	now := ca.now()
	return token.Issue(ca.auth.Load().tokenKey, id, ca.td.Name(), now, now.Add(ttl))
}

// WriteTokenFile issues a bootstrap token for the workload ns/sa and writes
// it to path (mode 0600, replaced atomically), for a proxy's --token-file.
func (ca *CA) WriteTokenFile(path, ns, sa string, ttl time.Duration) error {
	id, err := ca.WorkloadID(ns, sa)
	if err != nil {
		return err
	}
	tok, err := ca.IssueToken(id, ttl)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		return fmt.Errorf("ca: token file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("ca: token file: %w", err)
	}
	return nil
}

// RotateTokenKey replaces the bootstrap token key, revoking every token
// issued so far.
func (ca *CA) RotateTokenKey() error {
	k, err := token.GenerateKey()
	if err != nil {
		return err
	}
	keyPEM, err := k.MarshalPEM()
	if err != nil {
		return err
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if _, err := ca.commitLocked(func(cur State) (State, bool, error) {
		cur.TokenKey = keyPEM
		return cur, true, nil
	}); err != nil {
		return fmt.Errorf("ca: rotate token key: %w", err)
	}
	next := *ca.auth.Load()
	next.tokenKey = k
	ca.auth.Store(&next)
	ca.log.Info("rotated bootstrap token key; earlier tokens are revoked", "kid", k.ID)
	return nil
}

// leafTemplate describes a certificate to sign.
type leafTemplate struct {
	id    spiffeid.ID // workload identity; zero for serving certificates
	dns   []string
	ips   []string
	ttl   time.Duration
	extKU []x509.ExtKeyUsage
}

// sign issues a leaf for pub with the signer in charge at now and returns
// its DER and the signer used.
func (a *authority) sign(t leafTemplate, pub crypto.PublicKey, now time.Time) ([]byte, *signer, error) {
	s, err := a.signerAt(now)
	if err != nil {
		return nil, nil, err
	}
	return a.signWith(s, t, pub, now)
}

// signWith issues a leaf for pub signed by s.
func (a *authority) signWith(s *signer, t leafTemplate, pub crypto.PublicKey, now time.Time) ([]byte, *signer, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	notBefore := now.Add(-clockSkew)
	if notBefore.Before(s.cert.NotBefore) {
		notBefore = s.cert.NotBefore
	}
	notAfter := now.Add(t.ttl)
	if notAfter.After(s.notAfter) {
		notAfter = s.notAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           t.extKU,
		BasicConstraintsValid: true,
		IsCA:                  false,
		DNSNames:              t.dns,
	}
	if !t.id.IsZero() {
		tmpl.URIs = []*url.URL{t.id.URL()}
	}
	if err := addIPs(tmpl, t.ips); err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.cert, pub, s.key)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: sign: %w", err)
	}
	return der, s, nil
}
