package dataplane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// CertServerName is the DNS name in the second hop's certificate, which the
// first hop verifies (SNI and verify name).
const CertServerName = "server.bench.svc.cluster.local"

// Certs are the PEM files of the TLS chain between the peers' hops: a CA,
// a server certificate for the second hop and a client certificate for the
// first, both ECDSA P-256 with SPIFFE URIs as a mesh would issue.
type Certs struct {
	CA                    string
	ServerCert, ServerKey string
	ServerPEM             string // certificate and key in one file (HAProxy)
	ClientCert, ClientKey string
	ClientPEM             string
}

// WriteCerts creates the CA and both certificates in dir.
func WriteCerts(dir string) (Certs, error) {
	c := Certs{
		CA:         filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server.key"), ServerPEM: filepath.Join(dir, "server-bundle.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client.key"), ClientPEM: filepath.Join(dir, "client-bundle.pem"),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return c, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return c, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"mast bench"}, CommonName: "bench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return c, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return c, err
	}
	if err := writePEM(c.CA, pemBlock("CERTIFICATE", caDER)); err != nil {
		return c, err
	}
	leaf := func(serial int64, sa string, usage x509.ExtKeyUsage, certPath, keyPath, bundlePath string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		id, _ := url.Parse("spiffe://cluster.local/ns/" + Namespace + "/sa/" + sa)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: sa},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames: []string{CertServerName}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, URIs: []*url.URL{id},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		cert, k := pemBlock("CERTIFICATE", der), pemBlock("EC PRIVATE KEY", kb)
		if err := writePEM(certPath, cert); err != nil {
			return err
		}
		if err := writePEM(keyPath, k); err != nil {
			return err
		}
		return writePEM(bundlePath, append(append([]byte{}, cert...), k...))
	}
	if err := leaf(2, "server", x509.ExtKeyUsageServerAuth, c.ServerCert, c.ServerKey, c.ServerPEM); err != nil {
		return c, fmt.Errorf("server certificate: %w", err)
	}
	if err := leaf(3, "client", x509.ExtKeyUsageClientAuth, c.ClientCert, c.ClientKey, c.ClientPEM); err != nil {
		return c, fmt.Errorf("client certificate: %w", err)
	}
	return c, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writePEM(path string, b []byte) error {
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
