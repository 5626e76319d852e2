package tlsconfig_test

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/agent"
	"github.com/mast-mesh/mast/internal/proxy/revocation"
	"github.com/mast-mesh/mast/internal/proxy/tlsconfig"
)

func (p *pki) crl(t *testing.T, revoked ...*x509.Certificate) *revocation.List {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: p.now.Add(-time.Minute), NextUpdate: p.now.Add(time.Hour)}
	for _, c := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: p.now})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, p.root, p.key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := revocation.Parse(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestCRLRefusesRevokedPeers: with the mesh CA's CRL in the validation
// context, a revoked client is refused by the server side and a revoked
// server by the client side, each logged with the identity and serial;
// an unrevoked pair still shakes hands.
func TestCRLRefusesRevokedPeers(t *testing.T) {
	mesh := newPKI(t, "mesh root")
	server, client, other := mesh.secrets(t, serverID), mesh.secrets(t, clientID), mesh.secrets(t, "spiffe://cluster.local/ns/default/sa/other")
	crl := mesh.crl(t, client.Cert.Leaf, server.Cert.Leaf)
	var logs bytes.Buffer
	build := func(s *agent.Secrets) *tlsconfig.Builder {
		b := tlsconfig.NewBuilder(staticSource{s}, nil)
		b.Log = slog.New(slog.NewTextHandler(&logs, nil))
		return b
	}
	in, out := istioMutual(false), istioMutual(true)
	in.CRL, in.OnlyLeafCRL, out.CRL, out.OnlyLeafCRL = crl, true, crl, true

	// A revoked client against the server.
	sc, _ := build(server).Server(in)
	cc, _ := build(client).Client(istioMutual(true), "")
	if _, _, serr := handshake(t, cc, sc); serr == nil || !strings.Contains(serr.Error(), "revoked") {
		t.Errorf("server accepted a revoked client: %v", serr)
	}
	if want := "identity=" + clientID + " serial=" + client.Cert.Leaf.SerialNumber.Text(16); !strings.Contains(logs.String(), want) {
		t.Errorf("log %q does not name %s", logs.String(), want)
	}
	// A client checking the CRL against a revoked server.
	cc, _ = build(other).Client(out, "")
	sc, _ = build(server).Server(istioMutual(false))
	if cerr, _ := func() (error, error) { _, c, s := handshake(t, cc, sc); return c, s }(); cerr == nil || !strings.Contains(cerr.Error(), "revoked") {
		t.Errorf("client accepted a revoked server: %v", cerr)
	}
	// Nobody revoked: accepted both ways.
	sc, _ = build(other).Server(in)
	cc, _ = build(mesh.secrets(t, clientID)).Client(out, "")
	if _, cerr, serr := handshake(t, cc, sc); cerr != nil || serr != nil {
		t.Errorf("unrevoked peers: client %v, server %v", cerr, serr)
	}
	// A CRL from another CA: the mesh's issuer has none, refused (fail closed).
	foreign := newPKI(t, "foreign root")
	in.CRL = foreign.crl(t)
	sc, _ = build(other).Server(in)
	cc, _ = build(mesh.secrets(t, clientID)).Client(istioMutual(true), "")
	if _, _, serr := handshake(t, cc, sc); serr == nil || !strings.Contains(serr.Error(), "no CRL from its issuer") {
		t.Errorf("no CRL for the issuer: %v, want refused", serr)
	}
}
