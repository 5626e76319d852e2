package tlsconfig_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/tlsconfig"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// writeCredential writes a credential directory the way a Kubernetes Secret
// is mounted: tls.crt, tls.key and, when ca is set, ca.crt.
func writeCredential(t *testing.T, dir, name string, p *pki, dns string, ca *x509.Certificate) *x509.Certificate {
	t.Helper()
	leaf, key := p.issue(t, leafSpec{uris: []string{}, dns: []string{dns}})
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	}
	if ca != nil {
		files["ca.crt"] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	}
	for f, b := range files {
		if err := os.WriteFile(filepath.Join(d, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return leaf
}

// TestCredentialServerMutual: a server context naming credentials by SDS
// (kubernetes://gw, kubernetes://gw-cacert, Istio's names for a Gateway's
// credentialName) presents the credential's certificate and verifies
// clients against its ca.crt; the pins and SANs of the validation context
// apply on top; a rotated certificate is served from the next
// configuration; a missing credential fails closed, naming it.
func TestCredentialServerMutual(t *testing.T) {
	dir := t.TempDir()
	serverPKI, clientPKI := newPKI(t, "server root"), newPKI(t, "client root")
	srvLeaf := writeCredential(t, dir, "gw", serverPKI, "gw.example.com", clientPKI.root)
	b := tlsconfig.NewBuilder(nil, nil)
	b.Credentials = &tlsconfig.DirCredentials{Dir: dir}

	var served []byte // the certificate the server presented last
	client := func(p *pki, dns string) *tls.Config {
		leaf, key := p.issue(t, leafSpec{uris: []string{}, dns: []string{dns}})
		roots := x509.NewCertPool()
		roots.AddCert(serverPKI.root)
		return &tls.Config{ServerName: "gw.example.com", RootCAs: roots, MinVersion: tls.VersionTLS12,
			Certificates:          []tls.Certificate{{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}},
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error { served = raw[0]; return nil }}
	}
	server := func(tc *xdsparse.TLSContext) *tls.Config {
		t.Helper()
		cfg, err := b.Server(tc)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	mutual := func() *xdsparse.TLSContext {
		return &xdsparse.TLSContext{CertSDS: "kubernetes://gw", Verify: true, RootsSDS: "kubernetes://gw-cacert", RequireClientCert: true}
	}

	_, cerr, serr := handshake(t, client(clientPKI, "alice.example.com"), server(mutual()))
	if cerr != nil || serr != nil || !bytes.Equal(served, srvLeaf.Raw) {
		t.Fatalf("mutual: client %v, server %v", cerr, serr)
	}
	if _, _, serr := handshake(t, client(serverPKI, "alice.example.com"), server(mutual())); serr == nil {
		t.Errorf("a client certificate from another CA was accepted")
	}
	// Pins: the client's SPKI pinned accepts it, another pin refuses it.
	c := client(clientPKI, "bob.example.com")
	spki := sha256.Sum256(c.Certificates[0].Leaf.RawSubjectPublicKeyInfo)
	pinned := mutual()
	pinned.SPKIPins = [][]byte{spki[:]}
	if _, _, serr := handshake(t, c, server(pinned)); serr != nil {
		t.Errorf("pinned SPKI refused: %v", serr)
	}
	hash := sha256.Sum256(c.Certificates[0].Leaf.Raw)
	pinned.SPKIPins, pinned.CertHashes = nil, [][]byte{hash[:]}
	if _, _, serr := handshake(t, c, server(pinned)); serr != nil {
		t.Errorf("pinned certificate hash refused: %v", serr)
	}
	other := sha256.Sum256([]byte("another certificate"))
	pinned.SPKIPins, pinned.CertHashes = nil, [][]byte{other[:]}
	if _, _, serr := handshake(t, c, server(pinned)); serr == nil || !strings.Contains(serr.Error(), "pinned") {
		t.Errorf("unpinned client: %v, want refused", serr)
	}
	// SANs: only alice.
	sans := mutual()
	sans.SANs = []xdsparse.SANMatcher{{Type: xdsparse.SANDNS, Str: xdsparse.StringMatcher{Kind: xdsparse.StrExact, Value: "alice.example.com"}}}
	if _, _, serr := handshake(t, client(clientPKI, "bob.example.com"), server(sans)); serr == nil {
		t.Errorf("bob accepted by a server that names alice")
	}
	// Rotation: a new certificate in the same directory is served.
	time.Sleep(10 * time.Millisecond) // a distinct modification time
	rotated := writeCredential(t, dir, "gw", serverPKI, "gw.example.com", clientPKI.root)
	_, cerr, serr = handshake(t, client(clientPKI, "alice.example.com"), server(mutual()))
	if cerr != nil || serr != nil || !bytes.Equal(served, rotated.Raw) {
		t.Errorf("after rotation: client %v, server %v, rotated certificate served: %v", cerr, serr, bytes.Equal(served, rotated.Raw))
	}
	// A credential that does not exist, or a proxy without a store: refused, named.
	if _, err := b.Server(&xdsparse.TLSContext{CertSDS: "kubernetes://nope"}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("missing credential: %v", err)
	}
	if _, err := tlsconfig.NewBuilder(nil, nil).Server(mutual()); err == nil || !strings.Contains(err.Error(), "--credentials-dir") {
		t.Errorf("no store: %v", err)
	}
	// gw-cacert without ca.crt anywhere: refused.
	writeCredential(t, dir, "plain", serverPKI, "gw.example.com", nil)
	if _, err := b.Server(&xdsparse.TLSContext{CertSDS: "kubernetes://plain", Verify: true, RootsSDS: "kubernetes://plain-cacert"}); err == nil ||
		!strings.Contains(err.Error(), "no CA certificates") {
		t.Errorf("credential without ca.crt: %v", err)
	}
	if _, err := (&tlsconfig.DirCredentials{Dir: dir}).Credential("../gw"); err == nil {
		t.Errorf("a name with a path was served")
	}
}

// TestCipherSuitesAndVersions: the server offers only the configured TLS
// 1.2 suites; a client offering none of them is refused.
func TestCipherSuitesAndVersions(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t, "root")
	writeCredential(t, dir, "gw", p, "gw.example.com", nil)
	b := tlsconfig.NewBuilder(nil, nil)
	b.Credentials = &tlsconfig.DirCredentials{Dir: dir}
	srv, err := b.Server(&xdsparse.TLSContext{CertSDS: "kubernetes://gw", MaxVersion: xdsparse.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}})
	if err != nil {
		t.Fatal(err)
	}
	cli := &tls.Config{InsecureSkipVerify: true, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}
	cs, cerr, serr := handshake(t, cli, srv)
	if cerr != nil || serr != nil || cs.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 || cs.Version != tls.VersionTLS12 {
		t.Fatalf("suite %x version %x: client %v, server %v", cs.CipherSuite, cs.Version, cerr, serr)
	}
	cli.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	if _, cerr, _ := handshake(t, cli, srv); cerr == nil {
		t.Errorf("a client without the configured suite shook hands")
	}
	cli = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	if _, cerr, _ := handshake(t, cli, srv); cerr == nil {
		t.Errorf("a TLS 1.3 client shook hands with a TLS 1.2 maximum")
	}
}
