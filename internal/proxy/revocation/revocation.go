// Package revocation checks certificates against X.509 certificate
// revocation lists (RFC 5280), as Envoy's CertificateValidationContext.crl:
// the proxy parses the PEM CRLs it is given once (a CRL it cannot parse is
// a NACK), then refuses a peer certificate whose serial its issuer's CRL
// lists. Like Envoy, once CRLs are configured a certificate whose issuer
// has no valid CRL among them is refused too (fail closed), and a CRL past
// its nextUpdate no longer vouches for anything.
package revocation

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// List is a parsed set of CRLs. It is safe for concurrent use.
type List struct {
	crls []*crl
}

type crl struct {
	rl      *x509.RevocationList
	revoked map[string]struct{} // serial numbers, big.Int.Text(16)
	sigs    sync.Map            // issuer certificate's Raw -> error (nil: signed by it)
}

// Parse reads every "X509 CRL" PEM block of data. It fails on other block
// types, on a CRL that does not parse and when there is none.
func Parse(data []byte) (*List, error) {
	l := &List{}
	for i := 0; ; i++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "X509 CRL" {
			return nil, fmt.Errorf("PEM block %d has type %q, want X509 CRL", i, b.Type)
		}
		rl, err := x509.ParseRevocationList(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", i, err)
		}
		c := &crl{rl: rl, revoked: make(map[string]struct{}, len(rl.RevokedCertificateEntries))}
		for _, e := range rl.RevokedCertificateEntries {
			if e.SerialNumber != nil {
				c.revoked[e.SerialNumber.Text(16)] = struct{}{}
			}
		}
		l.crls = append(l.crls, c)
	}
	if len(l.crls) == 0 {
		if len(bytes.TrimSpace(data)) > 0 {
			return nil, errors.New("no PEM block (a CRL must be PEM \"X509 CRL\")")
		}
		return nil, errors.New("no X509 CRL PEM block")
	}
	return l, nil
}

// Len returns the number of CRLs.
func (l *List) Len() int { return len(l.crls) }

// RevokedError is returned for a certificate its issuer's CRL lists.
type RevokedError struct {
	Serial *big.Int
	Issuer string // the issuer's subject
}

func (e *RevokedError) Error() string {
	return fmt.Sprintf("certificate serial %s is revoked by the CRL of %q", serialString(e.Serial), e.Issuer)
}

// serialString prints a serial as OpenSSL does (hex, colon-free).
func serialString(s *big.Int) string { return s.Text(16) }

// Check verifies a chain that crypto/x509 already verified (leaf first,
// trust anchor last): each certificate but the anchor (only the leaf when
// onlyLeaf, Envoy's only_verify_leaf_cert_crl) must have a CRL from its
// issuer, signed by it and current at now, that does not list it.
func (l *List) Check(chain []*x509.Certificate, now time.Time, onlyLeaf bool) error {
	n := len(chain) - 1
	if onlyLeaf && n > 1 {
		n = 1
	}
	for i := 0; i < n; i++ {
		cert, issuer := chain[i], chain[i+1]
		c := l.forIssuer(issuer)
		if c == nil {
			return fmt.Errorf("certificate serial %s: no CRL from its issuer %q among the configured CRLs", serialString(cert.SerialNumber), issuer.Subject.String())
		}
		if !c.rl.NextUpdate.IsZero() && now.After(c.rl.NextUpdate) {
			return fmt.Errorf("certificate serial %s: the CRL of %q expired at %s", serialString(cert.SerialNumber), issuer.Subject.String(), c.rl.NextUpdate.UTC().Format(time.RFC3339))
		}
		if _, ok := c.revoked[cert.SerialNumber.Text(16)]; ok {
			return &RevokedError{Serial: cert.SerialNumber, Issuer: issuer.Subject.String()}
		}
	}
	return nil
}

// forIssuer returns the CRL issued and signed by issuer, nil when none.
func (l *List) forIssuer(issuer *x509.Certificate) *crl {
	for _, c := range l.crls {
		if !bytes.Equal(c.rl.RawIssuer, issuer.RawSubject) {
			continue
		}
		v, ok := c.sigs.Load(string(issuer.Raw))
		if !ok {
			err := c.rl.CheckSignatureFrom(issuer)
			c.sigs.Store(string(issuer.Raw), err)
			v = err
		}
		if v == nil {
			return c
		}
	}
	return nil
}
