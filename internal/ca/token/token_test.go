package token_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/mast-mesh/mast/internal/ca/token"
)

const aud = "cluster.local"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustKey(t testing.TB) *token.Key {
	t.Helper()
	k, err := token.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	k := mustKey(t)
	sub := spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/reviews")
	tok, err := token.Issue(k, sub, aud, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c, err := token.Verify(tok, k, aud, t0.Add(30*time.Minute))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.Subject != sub || !c.Expiry.Equal(t0.Add(time.Hour)) || !c.IssuedAt.Equal(t0) || c.KeyID != k.ID {
		t.Errorf("claims = %+v", c)
	}

	// The key survives a PEM round trip with the same ID.
	p, err := k.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := token.ParseKeyPEM(p)
	if err != nil {
		t.Fatal(err)
	}
	if k2.ID != k.ID {
		t.Errorf("key ID after PEM round trip %q, want %q", k2.ID, k.ID)
	}
	if _, err := token.Verify(tok, k2, aud, t0); err != nil {
		t.Errorf("Verify with reloaded key: %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	k := mustKey(t)
	other := mustKey(t)
	sub := spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/reviews")
	good, err := token.Issue(k, sub, aud, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := token.Issue(other, sub, aud, t0, t0.Add(time.Hour))
	otherAud, _ := token.Issue(k, sub, "example.org", t0, t0.Add(time.Hour))
	parts := strings.Split(good, ".")

	// A token with our kid but signed by another key.
	forged := signRaw(t, other, k.ID, jwt.Claims{Issuer: token.Issuer, Subject: sub.String(),
		Audience: jwt.Audience{aud}, IssuedAt: jwt.NewNumericDate(t0), Expiry: jwt.NewNumericDate(t0.Add(time.Hour))})
	noExp := signRaw(t, k, k.ID, jwt.Claims{Issuer: token.Issuer, Subject: sub.String(),
		Audience: jwt.Audience{aud}, IssuedAt: jwt.NewNumericDate(t0)})
	badSub := signRaw(t, k, k.ID, jwt.Claims{Issuer: token.Issuer, Subject: "reviews",
		Audience: jwt.Audience{aud}, IssuedAt: jwt.NewNumericDate(t0), Expiry: jwt.NewNumericDate(t0.Add(time.Hour))})
	wrongIss := signRaw(t, k, k.ID, jwt.Claims{Issuer: "kubernetes", Subject: sub.String(),
		Audience: jwt.Audience{aud}, IssuedAt: jwt.NewNumericDate(t0), Expiry: jwt.NewNumericDate(t0.Add(time.Hour))})
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"`+k.ID+`"}`)) + "." + parts[1] + "."

	for _, tc := range []struct {
		name, tok string
		now       time.Time
		want      string
	}{
		{"expired", good, t0.Add(2 * time.Hour), "expired"},
		{"issued in the future", good, t0.Add(-time.Hour), "future"},
		{"rotated-out key", foreign, t0, "unknown key"},
		{"forged kid", forged, t0, "signature"},
		{"other audience", otherAud, t0, "aud"},
		{"wrong issuer", wrongIss, t0, "iss"},
		{"no exp", noExp, t0, "exp and iat"},
		{"sub not SPIFFE", badSub, t0, `sub "reviews"`},
		{"alg none", none, t0, "malformed"},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"x"}`)) + "." + parts[2], t0, "signature"},
		{"garbage", "not-a-token", t0, "malformed"},
		{"empty", "", t0, "malformed"},
		{"too long", strings.Repeat("a", token.MaxLen+1), t0, "exceeds the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := token.Verify(tc.tok, k, aud, tc.now)
			if err == nil {
				t.Fatalf("Verify accepted: %+v", c)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestIssueRefuses(t *testing.T) {
	k := mustKey(t)
	sub := spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/reviews")
	if _, err := token.Issue(k, spiffeid.ID{}, aud, t0, t0.Add(time.Hour)); err == nil {
		t.Error("Issue accepted an empty subject")
	}
	if _, err := token.Issue(k, sub, aud, t0, t0); err == nil {
		t.Error("Issue accepted exp == iat")
	}
}

// signRaw signs claims with key k but names kid in the header.
func signRaw(t testing.TB, k *token.Key, kid string, c jwt.Claims) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: token.PrivateKeyForTest(k), KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// FuzzVerify checks that Verify never panics on arbitrary input and accepts
// nothing but a token the key signed.
func FuzzVerify(f *testing.F) {
	k, err := token.GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	sub := spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/reviews")
	good, err := token.Issue(k, sub, aud, t0, t0.Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good + "x")
	f.Add(strings.Replace(good, ".", "..", 1))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := token.Verify(raw, k, aud, t0)
		if err != nil {
			return
		}
		if c.Subject != sub || c.KeyID != k.ID {
			t.Fatalf("accepted claims %+v", c)
		}
	})
}
