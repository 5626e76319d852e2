package jwtauthn

import (
	"encoding/base64"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzParseToken feeds arbitrary strings to the token parser and, when one
// parses, to verification: nothing may panic, and only what the issuer's
// keys really signed (the seeds' decoded header and payload) may verify.
func FuzzParseToken(f *testing.F) {
	k := loadKeys()
	signed := map[string]bool{}
	for _, tok := range []string{
		sign(f, jose.ES256, k.p256, "p256", goodClaims()),
		sign(f, jose.RS256, k.rsa, "rsa", goodClaims()),
		sign(f, jose.EdDSA, k.ed, "ed", goodClaims()),
	} {
		f.Add(tok)
		signed[signingInput(tok)] = true
	}
	ks, err := ParseJWKS([]byte(k.jwks))
	if err != nil {
		f.Fatal(err)
	}
	for _, tc := range hostileTokens(f) {
		if len(tc.token) < 4096 {
			f.Add(tc.token)
		}
		// Some hostile tokens are really signed by the issuer (expired,
		// wrong audience, ...): they are refused by checks after the
		// signature, so their signature verifying is expected.
		if tok, st := parseToken(tc.token); st == StatusOK && ks.verify(tok) == StatusOK {
			signed[signingInput(tc.token)] = true
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, st := parseToken(s)
		if st != StatusOK {
			if tok != nil {
				t.Fatal("token returned with an error status")
			}
			return
		}
		if ks.verify(tok) == StatusOK && !signed[signingInput(s)] {
			t.Fatalf("verified a token the issuer never signed: %q", s)
		}
	})
}

// signingInput is a compact token's header and payload, decoded (so that
// base64 spellings of the same bytes compare equal).
func signingInput(s string) string {
	parts := strings.SplitN(s, ".", 3)
	if len(parts) < 2 {
		return ""
	}
	h, _ := base64.RawURLEncoding.DecodeString(parts[0])
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	return string(h) + "." + string(p)
}

// FuzzParseJWKS feeds arbitrary documents to the JWKS parser.
func FuzzParseJWKS(f *testing.F) {
	f.Add(loadKeys().jwks)
	f.Add(`{"keys":[]}`)
	f.Add(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)
	f.Add(`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}`)
	f.Add(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`)
	f.Add(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		ks, err := ParseJWKS([]byte(doc))
		if err == nil && ks.Len() == 0 {
			t.Fatal("a set without keys parsed")
		}
	})
}

// FuzzClaims feeds arbitrary payloads to the claims decoder and to the
// claim lookups and header rendering built on it.
func FuzzClaims(f *testing.F) {
	f.Add(`{"iss":"a","sub":"b","aud":["c","d"],"exp":1,"nbf":2,"iat":3,"azp":"e","groups":["g"],"n":{"k":{"d":1}}}`)
	f.Add(`{"aud":1}`)
	f.Add(`{"exp":1.5}`)
	f.Add(`[]`)
	f.Add(`{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`)
	f.Fuzz(func(t *testing.T, payload string) {
		c, st := parseClaims([]byte(payload))
		if st != StatusOK {
			return
		}
		for _, p := range [][]string{{"groups"}, {"n", "k", "d"}, {"aud"}, {"iss"}} {
			if s, ok := claimString(Lookup(c.All, p)); ok {
				if strings.ContainsAny(s, "\r\n\x00") {
					t.Fatalf("claim %v renders as %q", p, s)
				}
			}
		}
	})
}

// FuzzAuthenticate feeds arbitrary header values and paths to the whole
// filter: it must not panic, and must never accept a token it did not
// verify.
func FuzzAuthenticate(f *testing.F) {
	k := loadKeys()
	good := sign(f, jose.ES256, k.p256, "p256", goodClaims())
	f.Add("Bearer "+good, "/p?access_token=x", "session=1")
	f.Add("bearer  "+good+", other", "/p", "")
	f.Add("Bearer %%%", "/p?access_token=%zz", "a=b; session=")
	c, err := parseProto(istioConfig(k.jwks, nil))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, auth, path, cookie string) {
		r := request(path, "authorization", auth, "cookie", cookie)
		o := c.Authenticate(r, testNow)
		if o.Status == StatusOK {
			for _, id := range o.Identities {
				if id.Issuer != testIssuer {
					t.Fatalf("identity %+v", id)
				}
			}
		}
		_, _, www := c.Reply(Outcome{Status: StatusVerificationFail}, r)
		if strings.ContainsAny(www, "\r\n") {
			t.Fatalf("WWW-Authenticate %q", www)
		}
	})
}
