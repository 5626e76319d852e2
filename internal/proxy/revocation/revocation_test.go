package revocation

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t testing.TB, name string) testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert, key}
}

func (c testCA) leaf(t testing.TB, serial int64) *x509.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func (c testCA) crl(t testing.TB, next time.Time, serials ...int64) []byte {
	tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: next}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, c.cert, c.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func TestCheck(t *testing.T) {
	a, b := newCA(t, "root A"), newCA(t, "root B")
	later := time.Now().Add(time.Hour)
	both, err := Parse(append(a.crl(t, later, 7, 9), b.crl(t, later)...))
	if err != nil {
		t.Fatal(err)
	}
	onlyA, _ := Parse(a.crl(t, later, 7))
	expired, _ := Parse(a.crl(t, time.Now().Add(-time.Second)))
	// A CRL that claims A's name but is signed by another key.
	forged := newCA(t, "root A")
	forgedA, _ := Parse(forged.crl(t, later))
	cases := []struct {
		name  string
		l     *List
		chain []*x509.Certificate
		want  string // "" accepted, "revoked" a RevokedError, else a substring
	}{
		{"not listed", both, []*x509.Certificate{a.leaf(t, 8), a.cert}, ""},
		{"listed", both, []*x509.Certificate{a.leaf(t, 7), a.cert}, "revoked"},
		{"other issuer, empty CRL", both, []*x509.Certificate{b.leaf(t, 7), b.cert}, ""},
		{"issuer without CRL", onlyA, []*x509.Certificate{b.leaf(t, 3), b.cert}, `no CRL from its issuer "CN=root B"`},
		{"expired CRL", expired, []*x509.Certificate{a.leaf(t, 3), a.cert}, "expired"},
		{"CRL not signed by the issuer", forgedA, []*x509.Certificate{a.leaf(t, 3), a.cert}, "no CRL from its issuer"},
	}
	for _, tc := range cases {
		err := tc.l.Check(tc.chain, time.Now(), true)
		var rev *RevokedError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want accepted", tc.name, err)
		case tc.want == "revoked" && !errors.As(err, &rev):
			t.Errorf("%s: %v, want revoked", tc.name, err)
		case tc.want == "revoked":
			if rev.Serial.Int64() != 7 || !strings.Contains(err.Error(), "serial 7") {
				t.Errorf("%s: %v does not name serial 7", tc.name, err)
			}
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	a := newCA(t, "root A")
	for name, data := range map[string]string{
		"empty":       "",
		"not PEM":     "hello",
		"certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.cert.Raw})),
		"bad DER":     "-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n",
	} {
		if _, err := Parse([]byte(data)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// FuzzParse: the CRL bytes come from xDS (or a file it names); Parse must
// never panic, and whatever it accepts must be usable by Check.
func FuzzParse(f *testing.F) {
	a := newCA(f, "root A")
	f.Add(a.crl(f, time.Now().Add(time.Hour), 1, 2, 3))
	f.Add(a.crl(f, time.Now().Add(24*time.Hour)))
	f.Add([]byte("-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n"))
	f.Add([]byte(""))
	leaf := a.leaf(f, 2)
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse(data)
		if err != nil {
			return
		}
		if l.Len() == 0 {
			t.Fatal("accepted without a CRL")
		}
		l.Check([]*x509.Certificate{leaf, a.cert}, time.Now(), false)
	})
}
