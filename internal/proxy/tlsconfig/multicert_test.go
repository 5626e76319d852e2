package tlsconfig_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/tlsconfig"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// writeRSACredential writes a credential whose key is RSA.
func writeRSACredential(t *testing.T, dir, name string, p *pki, dns string) *x509.Certificate {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(77), Subject: pkix.Name{CommonName: dns},
		NotBefore: p.now.Add(-time.Hour), NotAfter: p.now.Add(time.Hour), DNSNames: []string{dns},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		p.root, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(dir, name)
	os.MkdirAll(d, 0o700)
	os.WriteFile(filepath.Join(d, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(d, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	c, _ := x509.ParseCertificate(der)
	return c
}

// TestServerPicksCertificate: a server context with several certificates
// (Istio's credentialNames: one RSA, one ECDSA, and one for another name)
// presents the one the client's SNI and signature algorithms call for, as
// Envoy does with several tls_certificates.
func TestServerPicksCertificate(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t, "root")
	rsaLeaf := writeRSACredential(t, dir, "gw-rsa", p, "gw.example.com")
	ecLeaf := writeCredential(t, dir, "gw-ecdsa", p, "gw.example.com", nil)
	otherLeaf := writeCredential(t, dir, "other", p, "other.example.com", nil)
	b := tlsconfig.NewBuilder(nil, nil)
	b.Credentials = &tlsconfig.DirCredentials{Dir: dir}
	tc := &xdsparse.TLSContext{CertSDS: "kubernetes://other", ExtraCerts: []xdsparse.CertRef{{SDS: "kubernetes://gw-rsa"}, {SDS: "kubernetes://gw-ecdsa"}}}
	cfg, err := b.Server(tc)
	if err != nil {
		t.Fatal(err)
	}
	tls13 := []uint16{tls.VersionTLS13}
	curves := []tls.CurveID{tls.X25519, tls.CurveP256}
	for _, c := range []struct {
		name string
		sni  string
		algs []tls.SignatureScheme
		want *x509.Certificate
	}{
		{"ECDSA-only client", "gw.example.com", []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256}, ecLeaf},
		{"RSA-PSS-only client", "gw.example.com", []tls.SignatureScheme{tls.PSSWithSHA256}, rsaLeaf},
		{"both: the first listed for the name", "gw.example.com", []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.PSSWithSHA256}, rsaLeaf},
		{"SNI other.example.com", "other.example.com", []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.PSSWithSHA256}, otherLeaf},
		{"no SNI: the first supported", "", []tls.SignatureScheme{tls.PSSWithSHA256}, rsaLeaf},
	} {
		got, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: c.sni, SignatureSchemes: c.algs, SupportedVersions: tls13,
			SupportedCurves: curves, CipherSuites: []uint16{tls.TLS_AES_128_GCM_SHA256}})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got.Leaf == nil || !got.Leaf.Equal(c.want) {
			t.Errorf("%s: presented %v, want %s", c.name, got.Leaf.Subject, c.want.Subject)
		}
	}
	// A missing credential among several fails closed.
	tc.ExtraCerts = append(tc.ExtraCerts, xdsparse.CertRef{SDS: "kubernetes://absent"})
	if _, err := b.Server(tc); err == nil {
		t.Error("a context naming a missing credential built")
	}
}
