// Package csr parses and checks certificate signing requests sent to the CA
// by proxies. It accepts exactly what a workload certificate needs (one
// SPIFFE URI SAN, a sound public key, no CA request) and says precisely what
// is wrong with anything else.
package csr

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// MaxLen bounds the size of a PEM CSR. Real ones are under 2 KiB.
const MaxLen = 64 << 10

// Request is a parsed, checked CSR.
type Request struct {
	// ID is the single SPIFFE ID the CSR asks for.
	ID spiffeid.ID
	// PublicKey is the key to certify (ECDSA P-256/P-384 or RSA 2048-8192).
	PublicKey crypto.PublicKey
}

var (
	oidSubjectAltName   = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
)

// uriNameTag is the context-specific tag of uniformResourceIdentifier in a
// GeneralName (RFC 5280 4.2.1.6).
const uriNameTag = 6

// Parse decodes a PEM CSR, checks its self-signature, and checks that it
// requests exactly one SPIFFE URI SAN, no other names, and no CA rights.
func Parse(data []byte) (*Request, error) {
	if len(data) > MaxLen {
		return nil, fmt.Errorf("csr: %d bytes exceeds the limit of %d", len(data), MaxLen)
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("csr: no PEM block found")
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("csr: PEM block type %q, want CERTIFICATE REQUEST", block.Type)
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("csr: more than one PEM block")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr: self-signature: %w", err)
	}
	if err := checkKey(req.PublicKey); err != nil {
		return nil, err
	}
	switch {
	case len(req.DNSNames) > 0:
		return nil, fmt.Errorf("csr: DNS SANs %q not allowed; want exactly one SPIFFE URI SAN", req.DNSNames)
	case len(req.IPAddresses) > 0:
		return nil, fmt.Errorf("csr: IP SANs %v not allowed; want exactly one SPIFFE URI SAN", req.IPAddresses)
	case len(req.EmailAddresses) > 0:
		return nil, fmt.Errorf("csr: email SANs %q not allowed; want exactly one SPIFFE URI SAN", req.EmailAddresses)
	case len(req.URIs) != 1:
		return nil, fmt.Errorf("csr: %d URI SANs, want exactly one SPIFFE URI SAN", len(req.URIs))
	}
	if err := checkExtensions(req.Extensions); err != nil {
		return nil, err
	}
	id, err := spiffeid.FromURI(req.URIs[0])
	if err != nil {
		return nil, fmt.Errorf("csr: URI SAN %q: %w", req.URIs[0].String(), err)
	}
	return &Request{ID: id, PublicKey: req.PublicKey}, nil
}

// checkExtensions refuses requested CA rights and counts SAN entries in the
// raw extension, so that name types Go's parser skips (otherName,
// directoryName, registeredID, ...) are refused too.
func checkExtensions(exts []pkix.Extension) error {
	sans := 0
	for _, e := range exts {
		switch {
		case e.Id.Equal(oidBasicConstraints):
			var bc struct {
				IsCA       bool `asn1:"optional"`
				MaxPathLen int  `asn1:"optional,default:-1"`
			}
			if rest, err := asn1.Unmarshal(e.Value, &bc); err != nil || len(rest) != 0 {
				return errors.New("csr: malformed basicConstraints extension")
			}
			if bc.IsCA {
				return errors.New("csr: requests CA:true; workload certificates are never CAs")
			}
		case e.Id.Equal(oidSubjectAltName):
			sans++
			if sans > 1 {
				return errors.New("csr: more than one subjectAltName extension")
			}
			var names []asn1.RawValue
			if rest, err := asn1.Unmarshal(e.Value, &names); err != nil || len(rest) != 0 {
				return errors.New("csr: malformed subjectAltName extension")
			}
			if len(names) != 1 {
				return fmt.Errorf("csr: %d subject alternative names, want exactly one SPIFFE URI SAN", len(names))
			}
			if n := names[0]; n.Class != asn1.ClassContextSpecific || n.Tag != uriNameTag {
				return fmt.Errorf("csr: subject alternative name of type tag %d, want a URI (tag 6)", n.Tag)
			}
		}
	}
	if sans == 0 {
		return errors.New("csr: no subjectAltName extension; want exactly one SPIFFE URI SAN")
	}
	return nil
}

func checkKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("csr: ECDSA curve %s not allowed; want P-256 or P-384", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 || n > 8192 {
			return fmt.Errorf("csr: RSA key of %d bits not allowed; want 2048 to 8192", n)
		}
	default:
		return fmt.Errorf("csr: public key type %T not allowed; want ECDSA or RSA", pub)
	}
	return nil
}
