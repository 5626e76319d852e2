package jwtauthn

import (
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// benchAuthenticate measures one request through the Istio-shaped filter
// with a valid token: extraction, parsing, checks and signature
// verification with the provider's cached keys.
func benchAuthenticate(b *testing.B, tok string) {
	c := mustParse(b, istioConfig(loadKeys().jwks, nil))
	c.providers["origins-0"].forward = true // keep the header between iterations
	h := headers.List{{Name: "authorization", Value: "Bearer " + tok}}
	r := &Request{Method: "GET", Host: "h", Path: "/productpage", Headers: &h}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if o := c.Authenticate(r, testNow); o.Status != StatusOK || len(o.Identities) != 1 {
			b.Fatal(o.Status)
		}
	}
}

func BenchmarkVerifyES256(b *testing.B) {
	k := loadKeys()
	benchAuthenticate(b, sign(b, jose.ES256, k.p256, "p256", goodClaims()))
}

func BenchmarkVerifyRS256(b *testing.B) {
	k := loadKeys()
	benchAuthenticate(b, sign(b, jose.RS256, k.rsa, "rsa", goodClaims()))
}

func BenchmarkVerifyEdDSA(b *testing.B) {
	k := loadKeys()
	benchAuthenticate(b, sign(b, jose.EdDSA, k.ed, "ed", goodClaims()))
}

// BenchmarkNoToken is the cost for a request without a token.
func BenchmarkNoToken(b *testing.B) {
	c := mustParse(b, istioConfig(loadKeys().jwks, nil))
	h := headers.List{{Name: "accept", Value: "*/*"}}
	r := &Request{Method: "GET", Host: "h", Path: "/productpage", Headers: &h}
	b.ReportAllocs()
	for b.Loop() {
		c.Authenticate(r, testNow)
	}
}
