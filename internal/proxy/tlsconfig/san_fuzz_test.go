package tlsconfig

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net"
	"net/url"
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/match"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// sanExtension encodes GeneralNames: URIs (tag 6) and DNS names (tag 2).
func sanExtension(t testing.TB, uris, dns []string) []byte {
	var names []asn1.RawValue
	for _, u := range uris {
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: uriTag, Bytes: []byte(u)})
	}
	for _, d := range dns {
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(d)})
	}
	b, err := asn1.Marshal(names)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzRawSPIFFEID parses a peer certificate's subjectAltName extension as
// the handshake sees it (attacker-controlled bytes up to the signature
// check) and checks: no panic; a SPIFFE ID only when the extension holds
// exactly one URI GeneralName, whose exact bytes the ID round-trips to (so
// "SPIFFE://" or a second URI never passes); and SAN matching of the same
// names never panics.
func FuzzRawSPIFFEID(f *testing.F) {
	f.Add(sanExtension(f, []string{"spiffe://cluster.local/ns/default/sa/reviews"}, nil))
	f.Add(sanExtension(f, []string{"SPIFFE://cluster.local/ns/default/sa/reviews"}, nil))
	f.Add(sanExtension(f, []string{"spiffe://a/x", "spiffe://b/y"}, nil))
	f.Add(sanExtension(f, nil, []string{"reviews.default.svc"}))
	f.Add(sanExtension(f, []string{"spiffe://cluster.local/ns/default/sa/reviews%2F.."}, []string{"*.example.com"}))
	f.Add([]byte{0x30, 0x03, 0x86, 0x01})
	f.Add([]byte{})
	matchers := []xdsparse.SANMatcher{
		{Type: xdsparse.SANURI, Str: match.String{Kind: match.StrExact, Value: "spiffe://cluster.local/ns/default/sa/reviews"}},
		{Type: xdsparse.SANDNS, Str: match.String{Kind: match.StrExact, Value: "*.default.svc"}},
	}
	f.Fuzz(func(t *testing.T, ext []byte) {
		cert := &x509.Certificate{Extensions: []pkix.Extension{{Id: oidSubjectAltName, Value: ext}}}
		id, err := rawSPIFFEID(cert)
		if err == nil {
			var names []asn1.RawValue
			if _, err := asn1.Unmarshal(ext, &names); err != nil {
				t.Fatalf("accepted %x, which does not parse as GeneralNames", ext)
			}
			var uris [][]byte
			for _, n := range names {
				if n.Class == asn1.ClassContextSpecific && n.Tag == uriTag {
					uris = append(uris, n.Bytes)
				}
			}
			if len(uris) != 1 || !bytes.Equal(uris[0], []byte(id.String())) {
				t.Fatalf("ID %q from URI SANs %q", id, uris)
			}
		}
		// What Go's parser makes of the same names goes to the matchers.
		var names []asn1.RawValue
		if _, err := asn1.Unmarshal(ext, &names); err != nil {
			return
		}
		leaf := &x509.Certificate{}
		for _, n := range names {
			switch {
			case n.Class != asn1.ClassContextSpecific:
			case n.Tag == uriTag:
				if u, err := url.Parse(string(n.Bytes)); err == nil {
					leaf.URIs = append(leaf.URIs, u)
				}
			case n.Tag == 2:
				leaf.DNSNames = append(leaf.DNSNames, string(n.Bytes))
			case n.Tag == 7 && (len(n.Bytes) == 4 || len(n.Bytes) == 16):
				leaf.IPAddresses = append(leaf.IPAddresses, net.IP(n.Bytes))
			}
		}
		_ = matchSANs(matchers, leaf)
	})
}
