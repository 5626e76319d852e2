package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/mast-mesh/mast/internal/ca/token"
)

// authority is an immutable snapshot of the CA's keys. Which signer signs and
// which anchors are trusted is a function of the time (see signerAt and
// anchorsAt), so a rotation's phases need no timers.
type authority struct {
	signers  []signer // ascending activeFrom
	anchors  []anchor
	tokenKey *token.Key
	plugin   bool
}

// signer is a key that signs leaves, with the certificates a leaf's chain
// carries between the leaf and the root.
type signer struct {
	cert *x509.Certificate
	key  crypto.Signer
	// chainPEM is the signing certificate and intermediates above it, not
	// the root; empty when the signer is itself a root.
	chainPEM   []string
	activeFrom time.Time
	// notAfter caps leaf lifetimes: the earliest of the chain's expiries and
	// the signer's retirement.
	notAfter time.Time
}

// anchor is a trusted root.
type anchor struct {
	cert     *x509.Certificate
	pem      string
	retireAt time.Time // zero: trusted until the certificate expires
}

// signerAt returns the signer in charge at t: the latest one active by t.
func (a *authority) signerAt(t time.Time) (*signer, error) {
	for i := len(a.signers) - 1; i >= 0; i-- {
		s := &a.signers[i]
		if !s.activeFrom.After(t) {
			if !t.Before(s.notAfter) {
				return nil, fmt.Errorf("ca: signing certificate %q expired or retired at %s",
					s.cert.Subject.CommonName, s.notAfter.UTC().Format(time.RFC3339))
			}
			return s, nil
		}
	}
	return nil, errors.New("ca: no signing certificate active yet")
}

// servingSignerAt returns the signer of mastd's own serving certificates at
// t: the earliest signer that is active, unexpired and whose root is still
// trusted. During a rotation's overlap that is the old root, which every
// client trusts -- also a client whose bundle predates the rotation (an
// agent that did not renew during the propagation, or that read the root
// file before the rotation started); a client that holds the new root
// trusts the old one too until it retires. Serving certificates therefore
// move to the new root only when the old one leaves the bundle, and a
// rotation never leaves a live client unable to reach the CA to renew.
func (a *authority) servingSignerAt(t time.Time) (*signer, error) {
	for i := range a.signers {
		s := &a.signers[i]
		if !s.activeFrom.After(t) && t.Before(s.notAfter) {
			return s, nil
		}
	}
	return a.signerAt(t)
}

// anchorsAt returns the roots trusted at t.
func (a *authority) anchorsAt(t time.Time) []anchor {
	n := 0
	for _, an := range a.anchors {
		if an.trusted(t) {
			n++
		}
	}
	if n == len(a.anchors) {
		return a.anchors
	}
	out := make([]anchor, 0, n)
	for _, an := range a.anchors {
		if an.trusted(t) {
			out = append(out, an)
		}
	}
	return out
}

// rootsAt returns the certificates of anchorsAt(t).
func (a *authority) rootsAt(t time.Time) []*x509.Certificate {
	anchors := a.anchorsAt(t)
	out := make([]*x509.Certificate, len(anchors))
	for i, an := range anchors {
		out[i] = an.cert
	}
	return out
}

// nextChange returns the first instant after t at which signerAt or
// anchorsAt may change, or the zero time if none is scheduled.
func (a *authority) nextChange(t time.Time) time.Time {
	var next time.Time
	consider := func(c time.Time) {
		if c.After(t) && (next.IsZero() || c.Before(next)) {
			next = c
		}
	}
	for _, s := range a.signers {
		consider(s.activeFrom)
		consider(s.notAfter)
	}
	for _, an := range a.anchors {
		consider(an.retireAt)
		consider(an.cert.NotAfter)
	}
	return next
}

func (an anchor) trusted(t time.Time) bool {
	return (an.retireAt.IsZero() || t.Before(an.retireAt)) && t.Before(an.cert.NotAfter)
}

func bundlePEM(anchors []anchor) string {
	if len(anchors) == 1 {
		return anchors[0].pem
	}
	var b strings.Builder
	for _, an := range anchors {
		b.WriteString(an.pem)
	}
	return b.String()
}

// fromState builds the authority of a self-signed CA.
func fromState(st State) (*authority, error) {
	a := &authority{}
	for i, r := range st.Roots {
		cert, err := parseCertPEM(r.CertPEM)
		if err != nil {
			return nil, fmt.Errorf("root %d: cert: %w", i, err)
		}
		key, err := parseKeyPEM(r.KeyPEM)
		if err != nil {
			return nil, fmt.Errorf("root %d: key: %w", i, err)
		}
		if err := keyMatches(cert, key); err != nil {
			return nil, fmt.Errorf("root %d: %w", i, err)
		}
		notAfter := cert.NotAfter
		if !r.RetireAt.IsZero() && r.RetireAt.Before(notAfter) {
			notAfter = r.RetireAt
		}
		a.signers = append(a.signers, signer{cert: cert, key: key, activeFrom: r.ActiveFrom, notAfter: notAfter})
		a.anchors = append(a.anchors, anchor{cert: cert, pem: string(encodeCert(cert.Raw)), retireAt: r.RetireAt})
	}
	for i := 1; i < len(a.signers); i++ {
		if a.signers[i].activeFrom.Before(a.signers[i-1].activeFrom) {
			return nil, fmt.Errorf("root %d: activeFrom before that of root %d", i, i-1)
		}
	}
	if len(a.signers) == 0 {
		return nil, errors.New("no roots")
	}
	return a, nil
}

// pruneRetired drops roots whose retirement has passed.
func pruneRetired(st State, now time.Time) State {
	kept := st.Roots[:0:0]
	for _, r := range st.Roots {
		if r.RetireAt.IsZero() || now.Before(r.RetireAt) {
			kept = append(kept, r)
		}
	}
	st.Roots = kept
	return st
}

// newRoot generates a self-signed ECDSA P-256 root for td.
func newRoot(td spiffeid.TrustDomain, now time.Time, ttl time.Duration) (RootState, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return RootState{}, fmt.Errorf("generate root key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return RootState{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{td.Name()},
			// Distinct subjects let verifiers tell the roots of a rotation apart.
			CommonName: fmt.Sprintf("Mast Root CA %s %x", now.UTC().Format("2006-01-02"), serial.Bytes()[:4]),
		},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(ttl),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return RootState{}, fmt.Errorf("create root: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return RootState{}, fmt.Errorf("marshal root key: %w", err)
	}
	return RootState{
		CertPEM:    encodeCert(der),
		KeyPEM:     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		ActiveFrom: now,
	}, nil
}

// pluginFiles names a user-supplied CA, laid out as Istio's cacerts secret.
type pluginFiles struct {
	cert, key, chain, root string
}

// loadPlugin builds the authority of a plug-in CA: a signing certificate and
// key (a root or an intermediate), optional intermediates, and the roots.
// The root file may hold several roots (the user's own rotation overlap).
func loadPlugin(f pluginFiles, now time.Time) (*authority, error) {
	if f.cert == "" || f.key == "" {
		return nil, errors.New("plug-in CA: PluginCert and PluginKey must both be set")
	}
	certPEM, err := os.ReadFile(f.cert)
	if err != nil {
		return nil, fmt.Errorf("plug-in CA: PluginCert: %w", err)
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("plug-in CA: PluginCert %s: %w", f.cert, err)
	}
	keyPEM, err := os.ReadFile(f.key)
	if err != nil {
		return nil, fmt.Errorf("plug-in CA: PluginKey: %w", err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("plug-in CA: PluginKey %s: %w", f.key, err)
	}
	if err := keyMatches(cert, key); err != nil {
		return nil, fmt.Errorf("plug-in CA: PluginKey %s does not belong to PluginCert %s: %w", f.key, f.cert, err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("plug-in CA: PluginCert %s is not a CA certificate with keyCertSign", f.cert)
	}
	selfSigned := bytes.Equal(cert.RawSubject, cert.RawIssuer) && cert.CheckSignatureFrom(cert) == nil

	var roots []*x509.Certificate
	switch {
	case f.root != "":
		data, err := os.ReadFile(f.root)
		if err != nil {
			return nil, fmt.Errorf("plug-in CA: PluginRoot: %w", err)
		}
		if roots, err = parseCertsPEM(data); err != nil {
			return nil, fmt.Errorf("plug-in CA: PluginRoot %s: %w", f.root, err)
		}
	case selfSigned:
		roots = []*x509.Certificate{cert}
	default:
		return nil, errors.New("plug-in CA: PluginRoot is required when PluginCert is not self-signed")
	}

	var inters []*x509.Certificate
	if f.chain != "" {
		data, err := os.ReadFile(f.chain)
		if err != nil {
			return nil, fmt.Errorf("plug-in CA: PluginChain: %w", err)
		}
		all, err := parseCertsPEM(data)
		if err != nil {
			return nil, fmt.Errorf("plug-in CA: PluginChain %s: %w", f.chain, err)
		}
		for _, c := range all { // Istio's cert-chain.pem may repeat ca-cert and the root
			if c.Equal(cert) || bytes.Equal(c.RawSubject, c.RawIssuer) {
				continue
			}
			inters = append(inters, c)
		}
	}

	rootPool, interPool := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		rootPool.AddCert(r)
	}
	for _, c := range inters {
		interPool.AddCert(c)
	}
	chains, err := cert.Verify(x509.VerifyOptions{
		Roots: rootPool, Intermediates: interPool, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("plug-in CA: PluginCert %s does not chain to PluginRoot: %w", f.cert, err)
	}

	s := signer{cert: cert, key: key, activeFrom: time.Time{}, notAfter: cert.NotAfter}
	// Carry the verified path (minus its root) so every leaf's chain is one
	// the verifier can follow; cap leaf lifetimes at the path's expiry.
	path := chains[0]
	for _, c := range path {
		if c.NotAfter.Before(s.notAfter) {
			s.notAfter = c.NotAfter
		}
	}
	if !selfSigned {
		for _, c := range path[:len(path)-1] {
			s.chainPEM = append(s.chainPEM, string(encodeCert(c.Raw)))
		}
	}
	a := &authority{signers: []signer{s}, plugin: true}
	for _, r := range roots {
		a.anchors = append(a.anchors, anchor{cert: r, pem: string(encodeCert(r.Raw))})
	}
	return a, nil
}

// newSerial returns a random serial number of 128 bits.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil // positive, never zero
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	certs, err := parseCertsPEM(data)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("%d certificates, want 1", len(certs))
	}
	return certs[0], nil
}

func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block of type %q, want CERTIFICATE", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return certs, nil
}

func parseKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var k any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block of type %q, want a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("key type %T not supported; want ECDSA or RSA", k)
	}
}

func keyMatches(cert *x509.Certificate, key crypto.Signer) error {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	if !ok || !pub.Equal(cert.PublicKey) {
		return errors.New("private key does not match the certificate's public key")
	}
	return nil
}
