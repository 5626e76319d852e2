// Package catest builds certificate signing requests and CA hierarchies for
// the CA's tests, fuzz seeds and benchmarks.
package catest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// CSR describes a request to build; zero fields are left out.
type CSR struct {
	Key    crypto.Signer // default: a fresh ECDSA P-256 key
	URIs   []string
	DNS    []string
	Emails []string
	IPs    []string
	// CA adds a basicConstraints extension asking for CA:true.
	CA bool
	// RawSANs replaces the SAN extension with these DER GeneralNames.
	RawSANs []asn1.RawValue
}

// Build returns the PEM CSR.
func (c CSR) Build(tb testing.TB) []byte {
	tb.Helper()
	key := c.Key
	if key == nil {
		key = ECKey(tb)
	}
	tmpl := &x509.CertificateRequest{DNSNames: c.DNS, EmailAddresses: c.Emails}
	for _, u := range c.URIs {
		parsed, err := url.Parse(u)
		if err != nil {
			tb.Fatalf("catest: URI %q: %v", u, err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	for _, ip := range c.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	if c.CA {
		val, err := asn1.Marshal(struct{ IsCA bool }{true})
		if err != nil {
			tb.Fatal(err)
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions,
			pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: val})
	}
	if c.RawSANs != nil {
		val, err := asn1.Marshal(c.RawSANs)
		if err != nil {
			tb.Fatal(err)
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions,
			pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: val})
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		tb.Fatalf("catest: CSR: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// URIName is a GeneralName of type uniformResourceIdentifier.
func URIName(u string) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(u)}
}

// DirectoryName is a GeneralName of type directoryName (tag 4), which Go's
// CSR parser skips.
func DirectoryName(tb testing.TB) asn1.RawValue {
	tb.Helper()
	name, err := asn1.Marshal(pkix.Name{CommonName: "evil"}.ToRDNSequence())
	if err != nil {
		tb.Fatal(err)
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: name}
}

// ECKey returns a fresh P-256 key.
func ECKey(tb testing.TB) *ecdsa.PrivateKey {
	return ECKeyCurve(tb, elliptic.P256())
}

// ECKeyCurve returns a fresh ECDSA key on curve.
func ECKeyCurve(tb testing.TB, curve elliptic.Curve) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// RSAKey returns a fresh RSA key of bits.
func RSAKey(tb testing.TB, bits int) *rsa.PrivateKey {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// Cert is a certificate and its key.
type Cert struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewRoot returns a self-signed CA valid from now-1h to now+ttl.
func NewRoot(tb testing.TB, cn string, now time.Time, ttl time.Duration) Cert {
	tb.Helper()
	return sign(tb, &x509.Certificate{
		Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(ttl),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, Cert{})
}

// NewIntermediate returns a CA signed by parent.
func NewIntermediate(tb testing.TB, cn string, parent Cert, now time.Time, ttl time.Duration) Cert {
	tb.Helper()
	return sign(tb, &x509.Certificate{
		Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(ttl),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, parent)
}

// NewLeaf returns a non-CA certificate signed by parent.
func NewLeaf(tb testing.TB, cn string, parent Cert, now time.Time, ttl time.Duration) Cert {
	tb.Helper()
	return sign(tb, &x509.Certificate{
		Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(ttl),
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature,
	}, parent)
}

func sign(tb testing.TB, tmpl *x509.Certificate, parent Cert) Cert {
	tb.Helper()
	key := ECKey(tb)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		tb.Fatal(err)
	}
	tmpl.SerialNumber = serial
	pc, pk := tmpl, key
	if parent.Cert != nil {
		pc, pk = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, pc, &key.PublicKey, pk)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return Cert{Cert: c, Key: key}
}

// WritePEM writes certificates as PEM to dir/name and returns the path.
func WritePEM(tb testing.TB, dir, name string, certs ...*x509.Certificate) string {
	tb.Helper()
	var data []byte
	for _, c := range certs {
		data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return write(tb, dir, name, data)
}

// WriteKey writes key as PKCS#8 PEM to dir/name and returns the path.
func WriteKey(tb testing.TB, dir, name string, key crypto.Signer) string {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return write(tb, dir, name, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func write(tb testing.TB, dir, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// Clock is a settable clock for Config.Clock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock set to t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
