package jwtauthn

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"golang.org/x/sys/unix"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// benchAuthenticate measures one request through the Istio-shaped filter
// with a valid token: extraction, parsing, checks and signature
// verification with the provider's parsed (cached) keys. With tokenCache
// the token is verified once and found in the token cache afterwards;
// without, the token cache is emptied before every request.
func benchAuthenticate(b *testing.B, tok string, tokenCache bool) {
	c := mustParse(b, istioConfig(loadKeys().jwks, nil))
	p := c.providers["origins-0"]
	p.forward = true // keep the header between iterations
	h := headers.List{{Name: "authorization", Value: "Bearer " + tok}}
	r := &Request{Method: "GET", Host: "h", Path: "/productpage", Headers: &h}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		if !tokenCache {
			p.cache.m = nil
		}
		if o := c.Authenticate(r, testNow); o.Status != StatusOK || len(o.Identities) != 1 {
			b.Fatal(o.Status)
		}
	}
	reportCPU(b, cpu)
}

// cpuTime is the process's user+system CPU time. On a shared machine
// wall time per operation includes waiting for a core; CPU time per
// operation (reported as cpu-ns/op) does not.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	if start > 0 && b.N > 0 {
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	}
}

func BenchmarkVerifyES256(b *testing.B) {
	k := loadKeys()
	benchAuthenticate(b, sign(b, jose.ES256, k.p256, "p256", goodClaims()), false)
}

// BenchmarkCachedTokenES256 is the same request with the token already in
// the provider's token cache (a client reusing its token).
func BenchmarkCachedTokenES256(b *testing.B) {
	k := loadKeys()
	benchAuthenticate(b, sign(b, jose.ES256, k.p256, "p256", goodClaims()), true)
}

func BenchmarkVerifyRS256(b *testing.B) {
	k := loadKeys()
	benchAuthenticate(b, sign(b, jose.RS256, k.rsa, "rsa", goodClaims()), false)
}

func BenchmarkVerifyEdDSA(b *testing.B) {
	k := loadKeys()
	benchAuthenticate(b, sign(b, jose.EdDSA, k.ed, "ed", goodClaims()), false)
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

// BenchmarkRawP256Verify is crypto/ecdsa's verification alone, the floor
// under BenchmarkVerifyES256 on the same machine.
func BenchmarkRawP256Verify(b *testing.B) {
	k := loadKeys()
	h := sha256.Sum256([]byte("mast"))
	r, s, err := ecdsa.Sign(rand.Reader, k.p256, h[:])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		if !ecdsa.Verify(&k.p256.PublicKey, h[:], r, s) {
			b.Fatal("verify")
		}
	}
	reportCPU(b, cpu)
}
