package ca

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// IssueWorkloadCertificate signs a certificate for workload identity id
// and public key pub, valid for ttl (DefaultTTL when zero, capped at
// MaxTTL), for callers inside mastd that vouch for the identity themselves:
// the service broker issues its bindings' client certificates this way. It
// returns the PEM chain (leaf first, then any intermediates) and the leaf.
func (ca *CA) IssueWorkloadCertificate(id spiffeid.ID, pub crypto.PublicKey, ttl time.Duration) ([]byte, *x509.Certificate, error) {
	if err := ca.checkWorkloadID(id); err != nil {
		return nil, nil, fmt.Errorf("ca: %w", err)
	}
	switch {
	case ttl < 0:
		return nil, nil, fmt.Errorf("ca: negative lifetime %s", ttl)
	case ttl == 0:
		ttl = ca.cfg.DefaultTTL
	case ttl > ca.cfg.MaxTTL:
		ttl = ca.cfg.MaxTTL
	}
	der, s, err := ca.auth.Load().sign(leafTemplate{
		id: id, ttl: ttl,
		extKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, pub, ca.now())
	if err != nil {
		return nil, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: %w", err)
	}
	ca.recordIssued(leaf, id.String())
	chain := encodeCert(der)
	for _, c := range s.chainPEM {
		chain = append(chain, c...)
	}
	return chain, leaf, nil
}
