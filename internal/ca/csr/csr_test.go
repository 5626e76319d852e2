package csr_test

import (
	"crypto/elliptic"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/ca/catest"
	"github.com/mast-mesh/mast/internal/ca/csr"
)

const id = "spiffe://cluster.local/ns/default/sa/reviews"

func TestParseAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  catest.CSR
	}{
		{"ecdsa p256", catest.CSR{URIs: []string{id}}},
		{"ecdsa p384", catest.CSR{URIs: []string{id}, Key: catest.ECKeyCurve(t, elliptic.P384())}},
		{"rsa 2048", catest.CSR{URIs: []string{id}, Key: catest.RSAKey(t, 2048)}},
		{"raw single URI SAN", catest.CSR{RawSANs: []asn1.RawValue{catest.URIName(id)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := csr.Parse(tc.req.Build(t))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if r.ID.String() != id {
				t.Errorf("ID = %s, want %s", r.ID, id)
			}
			if r.PublicKey == nil {
				t.Error("PublicKey is nil")
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	valid := catest.CSR{URIs: []string{id}}.Build(t)
	block, _ := pem.Decode(valid)
	tampered := append([]byte(nil), block.Bytes...)
	tampered[len(tampered)-5] ^= 0xff // inside the signature
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "no PEM block"},
		{"not PEM", []byte("hello"), "no PEM block"},
		{"wrong PEM type", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes}), `type "CERTIFICATE"`},
		{"two blocks", append(append([]byte(nil), valid...), valid...), "more than one PEM block"},
		{"garbage DER", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{0x30, 0x03, 1, 2, 3}}), "csr:"},
		{"bad signature", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}), "self-signature"},
		{"too large", make([]byte, csr.MaxLen+1), "exceeds the limit"},
		{"no SAN", catest.CSR{}.Build(t), "0 URI SANs"},
		{"DNS SAN", catest.CSR{URIs: []string{id}, DNS: []string{"reviews.default.svc"}}.Build(t), "DNS SANs"},
		{"IP SAN", catest.CSR{URIs: []string{id}, IPs: []string{"10.0.0.1"}}.Build(t), "IP SANs"},
		{"email SAN", catest.CSR{URIs: []string{id}, Emails: []string{"a@example.com"}}.Build(t), "email SANs"},
		{"DNS only", catest.CSR{DNS: []string{"reviews"}}.Build(t), "DNS SANs"},
		{"second URI", catest.CSR{URIs: []string{id, "spiffe://cluster.local/ns/default/sa/admin"}}.Build(t), "2 URI SANs"},
		{"directoryName SAN", catest.CSR{RawSANs: []asn1.RawValue{catest.DirectoryName(t)}}.Build(t), "0 URI SANs"},
		{"URI plus directoryName", catest.CSR{RawSANs: []asn1.RawValue{catest.URIName(id), catest.DirectoryName(t)}}.Build(t), "2 subject alternative names"},
		{"CA true", catest.CSR{URIs: []string{id}, CA: true}.Build(t), "CA:true"},
		{"not spiffe", catest.CSR{URIs: []string{"https://example.com/x"}}.Build(t), "URI SAN"},
		{"P-224 key", catest.CSR{URIs: []string{id}, Key: catest.ECKeyCurve(t, elliptic.P224())}.Build(t), "curve P-224"},
		{"RSA 1024", catest.CSR{URIs: []string{id}, Key: catest.RSAKey(t, 1024)}.Build(t), "1024 bits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := csr.Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse accepted %s: %+v", tc.name, r)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// FuzzParse checks that Parse never panics and that whatever it accepts is a
// CSR with exactly one URI SAN, no other names and no CA request.
func FuzzParse(f *testing.F) {
	f.Add(catest.CSR{URIs: []string{id}}.Build(f))
	f.Add(catest.CSR{URIs: []string{id}, DNS: []string{"x"}}.Build(f))
	f.Add(catest.CSR{URIs: []string{id}, CA: true}.Build(f))
	f.Add(catest.CSR{RawSANs: []asn1.RawValue{catest.URIName(id), catest.DirectoryName(f)}}.Build(f))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := csr.Parse(data)
		if err != nil {
			return
		}
		block, _ := pem.Decode(data)
		req, perr := x509.ParseCertificateRequest(block.Bytes)
		if perr != nil {
			t.Fatalf("accepted an unparsable CSR: %v", perr)
		}
		if len(req.URIs) != 1 || len(req.DNSNames)+len(req.IPAddresses)+len(req.EmailAddresses) != 0 {
			t.Fatalf("accepted SANs uri=%v dns=%v ip=%v email=%v", req.URIs, req.DNSNames, req.IPAddresses, req.EmailAddresses)
		}
		if r.ID.String() != req.URIs[0].String() {
			t.Fatalf("ID %s != URI %s", r.ID, req.URIs[0])
		}
	})
}
