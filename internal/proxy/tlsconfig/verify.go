// Package tlsconfig turns the proxy's parsed xDS TLS contexts into
// crypto/tls configurations: the workload certificate comes from the agent
// (read at every handshake, so renewals apply at once), peers are verified
// as SPIFFE X.509-SVIDs against the agent's current trust bundle (both roots
// during a root rotation), or against configured CA files for SIMPLE and
// MUTUAL TLS to other servers, and SAN matchers are applied. It also peeks
// at a connection's first bytes to tell TLS from plaintext and to read SNI
// and ALPN for filter chain matching (Inspect).
package tlsconfig

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// uriTag is the context-specific tag of a URI GeneralName (RFC 5280).
const uriTag = 6

// VerifySVID verifies chain (leaf first) as an X.509-SVID of trust domain td
// issued under bundle at now, for use as usage (ExtKeyUsageServerAuth for a
// server, ExtKeyUsageClientAuth for a client). Beyond go-spiffe's checks it
// reads the URI SAN from the raw extension (Go's parser lower-cases the
// scheme, which would let "SPIFFE://" pass), requires exactly one URI SAN,
// digitalSignature, and the usage when extended key usages are present.
func VerifySVID(chain []*x509.Certificate, td spiffeid.TrustDomain, bundle x509bundle.Source, now time.Time, usage x509.ExtKeyUsage) (spiffeid.ID, error) {
	id, _, err := verifySVIDChains(chain, td, bundle, now, usage)
	return id, err
}

// verifySVIDChains is VerifySVID that also returns the verified chains
// (leaf first, trust anchor last).
func verifySVIDChains(chain []*x509.Certificate, td spiffeid.TrustDomain, bundle x509bundle.Source, now time.Time, usage x509.ExtKeyUsage) (spiffeid.ID, [][]*x509.Certificate, error) {
	if len(chain) == 0 {
		return spiffeid.ID{}, nil, errors.New("peer presented no certificate")
	}
	leaf := chain[0]
	id, err := rawSPIFFEID(leaf)
	if err != nil {
		return spiffeid.ID{}, nil, err
	}
	if !id.MemberOf(td) {
		return id, nil, fmt.Errorf("peer identity %s is outside trust domain %s", id, td.Name())
	}
	switch {
	case leaf.IsCA:
		return id, nil, fmt.Errorf("peer certificate %s is a CA certificate", id)
	case leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0:
		return id, nil, fmt.Errorf("peer certificate %s has keyCertSign or cRLSign usage", id)
	case leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0:
		return id, nil, fmt.Errorf("peer certificate %s lacks the digitalSignature key usage", id)
	}
	if len(leaf.ExtKeyUsage) > 0 || len(leaf.UnknownExtKeyUsage) > 0 {
		ok := false
		for _, u := range leaf.ExtKeyUsage {
			ok = ok || u == usage || u == x509.ExtKeyUsageAny
		}
		if !ok {
			return id, nil, fmt.Errorf("peer certificate %s is not valid for %s", id, usageName(usage))
		}
	}
	_, chains, err := x509svid.Verify(chain, bundle, x509svid.WithTime(now))
	if err != nil {
		return id, nil, fmt.Errorf("peer certificate %s: %w", id, err)
	}
	return id, chains, nil
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "server authentication"
	case x509.ExtKeyUsageClientAuth:
		return "client authentication"
	}
	return fmt.Sprintf("extended key usage %d", u)
}

// rawSPIFFEID returns the single URI SAN of cert as a SPIFFE ID, parsed from
// the extension's bytes exactly as they were signed.
func rawSPIFFEID(cert *x509.Certificate) (spiffeid.ID, error) {
	var uris []string
	sans := 0
	for _, e := range cert.Extensions {
		if !e.Id.Equal(oidSubjectAltName) {
			continue
		}
		sans++
		var names []asn1.RawValue
		if rest, err := asn1.Unmarshal(e.Value, &names); err != nil || len(rest) != 0 {
			return spiffeid.ID{}, errors.New("peer certificate has a malformed subjectAltName extension")
		}
		for _, n := range names {
			if n.Class == asn1.ClassContextSpecific && n.Tag == uriTag {
				uris = append(uris, string(n.Bytes))
			}
		}
	}
	switch {
	case sans > 1:
		return spiffeid.ID{}, errors.New("peer certificate has more than one subjectAltName extension")
	case len(uris) == 0:
		return spiffeid.ID{}, errors.New("peer certificate has no URI SAN (no SPIFFE ID)")
	case len(uris) > 1:
		return spiffeid.ID{}, fmt.Errorf("peer certificate has %d URI SANs, want exactly one SPIFFE ID", len(uris))
	}
	id, err := spiffeid.FromString(uris[0])
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("peer certificate URI SAN %q is not a valid SPIFFE ID: %w", uris[0], err)
	}
	return id, nil
}

// PeerID returns the SPIFFE ID of a verified peer chain's leaf (as the
// handshake verified it), or false when the peer has none.
func PeerID(chain []*x509.Certificate) (spiffeid.ID, bool) {
	if len(chain) == 0 {
		return spiffeid.ID{}, false
	}
	id, err := rawSPIFFEID(chain[0])
	return id, err == nil
}
