package ca

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"sync"
)

// CRL is the CA's certificate revocation list for proxies: one X.509 CRL
// per signing certificate that is or will be in charge (a root, or the
// plug-in CA's intermediate), each listing the serials of every unexpired
// certificate issued to a revoked identity. Proxies check the leaf of a
// peer against its issuer's CRL (Envoy's validation_context.crl with
// only_verify_leaf_cert_crl). A CRL is immutable; the same pointer stands
// for the same content.
type CRL struct {
	PEM []byte
	// Serials are the revoked certificates' serial numbers (hex).
	Serials []string
}

// crlCache keeps the last CRL until its inputs change.
type crlCache struct {
	mu  sync.Mutex
	key string
	crl *CRL

	notifyMu sync.Mutex
	changed  chan struct{}
}

// RevocationChanged returns a channel closed at the next change of what
// CRL returns (a revocation, a rotation adding a signer, a certificate
// issued to a revoked identity). Take it before reading CRL.
func (ca *CA) RevocationChanged() <-chan struct{} {
	ca.crls.notifyMu.Lock()
	defer ca.crls.notifyMu.Unlock()
	if ca.crls.changed == nil {
		ca.crls.changed = make(chan struct{})
	}
	return ca.crls.changed
}

func (ca *CA) notifyRevocation() {
	ca.crls.notifyMu.Lock()
	defer ca.crls.notifyMu.Unlock()
	if ca.crls.changed != nil {
		close(ca.crls.changed)
		ca.crls.changed = nil
	}
}

// CRL returns the current revocation list, or nil when no unexpired
// certificate of a revoked identity is known. It is signed again only when
// its content changes.
func (ca *CA) CRL() (*CRL, error) {
	now := ca.now()
	revoked := ca.Revoked()
	ids := make([]string, len(revoked))
	for i, r := range revoked {
		ids[i] = r.ID
	}
	certs := ca.issued.serialsOf(ids, now)
	if len(certs) == 0 {
		return nil, nil
	}
	a := ca.auth.Load()
	var key strings.Builder
	fmt.Fprintf(&key, "%p", a)
	serials := make([]string, len(certs))
	for i, c := range certs {
		serials[i] = c.serial.Text(16)
		key.WriteString(" " + serials[i])
	}
	ca.crls.mu.Lock()
	defer ca.crls.mu.Unlock()
	if ca.crls.crl != nil && ca.crls.key == key.String() {
		return ca.crls.crl, nil
	}
	entries := make([]x509.RevocationListEntry, len(certs))
	for i, c := range certs {
		entries[i] = x509.RevocationListEntry{SerialNumber: c.serial, RevocationTime: now}
	}
	out := &CRL{Serials: serials}
	for i := range a.signers {
		s := &a.signers[i]
		if !now.Before(s.notAfter) {
			continue
		}
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number:                    big.NewInt(now.UnixNano()),
			ThisUpdate:                now.Add(-clockSkew),
			NextUpdate:                s.notAfter,
			RevokedCertificateEntries: entries,
		}, s.cert, s.key)
		if err != nil {
			return nil, fmt.Errorf("ca: CRL of %q: %w", s.cert.Subject.String(), err)
		}
		out.PEM = append(out.PEM, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})...)
	}
	ca.crls.key, ca.crls.crl = key.String(), out
	return out, nil
}

// recordIssued logs a new leaf for the CRL; a leaf issued to an identity
// revoked meanwhile changes the CRL.
func (ca *CA) recordIssued(leaf *x509.Certificate, id string) {
	if err := ca.issued.record(leaf, id, ca.now()); err != nil {
		ca.log.Error("issued certificate not logged: a later revocation may miss it until it expires", "serial", leaf.SerialNumber.Text(16), "id", id, "error", err)
	}
	if ca.isRevokedString(id) {
		ca.notifyRevocation()
	}
}

func (ca *CA) isRevokedString(id string) bool {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	for _, r := range ca.st.Revoked {
		if r.ID == id {
			return true
		}
	}
	return false
}
