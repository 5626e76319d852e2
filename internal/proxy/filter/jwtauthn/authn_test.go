package jwtauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

var testNow = time.Unix(1_800_000_000, 0)

func goodClaims() map[string]any {
	return map[string]any{
		"iss": testIssuer, "sub": "testing@secure.istio.io", "aud": testAudience,
		"exp": testNow.Unix() + 3600, "iat": testNow.Unix() - 10, "azp": "frontend",
		"groups": []string{"group1", "group2"},
		"nested": map[string]any{"key": map[string]any{"deep": "value"}},
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(m, k)
		} else {
			m[k] = kv[i+1]
		}
	}
	return m
}

func request(path string, h ...string) *Request {
	l := headers.List{}
	for i := 0; i < len(h); i += 2 {
		l.Add(h[i], h[i+1])
	}
	return &Request{Method: "GET", Scheme: "http", Host: "bookinfo.example.com", Path: path, Headers: &l}
}

func bearer(tok string) *Request { return request("/productpage", "authorization", "Bearer "+tok) }

// hmacToken signs header.payload with HMAC-SHA256 under secret: the
// classic attack of using the issuer's public key as an HMAC secret.
func hmacToken(alg string, secret []byte, claims map[string]any) string {
	si := b64json(map[string]any{"alg": alg, "typ": "JWT", "kid": "rsa"}) + "." + b64json(claims)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(si))
	return si + "." + b64(m.Sum(nil))
}

func rawToken(header, claims map[string]any, sig string) string {
	return b64json(header) + "." + b64json(claims) + "." + sig
}

// hostileTokens is a corpus of tokens that must all be refused by the
// Istio-shaped configuration with audiences [testAudience].
func hostileTokens(t testing.TB) []struct {
	name  string
	token string
	want  Status
} {
	k := loadKeys()
	good := sign(t, jose.ES256, k.p256, "p256", goodClaims())
	parts := strings.Split(good, ".")
	rsaPubDER, _ := x509.MarshalPKIXPublicKey(k.rsa.Public())
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPubDER})
	jwkRSA := jose.JSONWebKey{Key: k.rsa.Public()}
	jwkJSON, _ := json.Marshal(jwkRSA)
	var jwkMap map[string]any
	_ = json.Unmarshal(jwkJSON, &jwkMap)
	nB64, _ := jwkMap["n"].(string)
	nBytes, _ := base64.RawURLEncoding.DecodeString(nB64)
	tamperedPayload := b64json(with(goodClaims(), "sub", "admin"))
	deep := any("x")
	for range 100 {
		deep = map[string]any{"a": deep}
	}
	attackerJWK := jose.JSONWebKey{Key: k.attacker.Public(), KeyID: "p256"}
	embedded := func() string {
		opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("JWT")
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.attacker}, opts)
		b, _ := json.Marshal(goodClaims())
		o, _ := s.Sign(b)
		out, _ := o.CompactSerialize()
		return out
	}()
	jsonSerialized := func() string {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.p256}, (&jose.SignerOptions{}).WithHeader("kid", "p256"))
		b, _ := json.Marshal(goodClaims())
		o, _ := s.Sign(b)
		return o.FullSerialize()
	}()
	zeroSig := parts[0] + "." + parts[1] + "." + b64(make([]byte, 64))
	psSwap := func() string {
		tok := sign(t, jose.RS256, k.rsa, "rsa", goodClaims())
		p := strings.Split(tok, ".")
		return b64json(map[string]any{"alg": "PS256", "kid": "rsa", "typ": "JWT"}) + "." + p[1] + "." + p[2]
	}()
	return []struct {
		name  string
		token string
		want  Status
	}{
		{"alg none unsigned", rawToken(map[string]any{"alg": "none", "typ": "JWT"}, goodClaims(), ""), StatusHeaderNotImplementedAlg},
		{"alg none with signature", rawToken(map[string]any{"alg": "none"}, goodClaims(), parts[2]), StatusHeaderNotImplementedAlg},
		{"alg None", rawToken(map[string]any{"alg": "None"}, goodClaims(), parts[2]), StatusHeaderNotImplementedAlg},
		{"alg NONE", rawToken(map[string]any{"alg": "NONE"}, goodClaims(), parts[2]), StatusHeaderNotImplementedAlg},
		{"alg missing", rawToken(map[string]any{"typ": "JWT"}, goodClaims(), parts[2]), StatusHeaderBadAlg},
		{"alg not a string", rawToken(map[string]any{"alg": 256}, goodClaims(), parts[2]), StatusHeaderBadAlg},
		{"HS256 with the RSA public key PEM as secret", hmacToken("HS256", rsaPEM, goodClaims()), StatusHeaderNotImplementedAlg},
		{"HS256 with the RSA modulus as secret", hmacToken("HS256", nBytes, goodClaims()), StatusHeaderNotImplementedAlg},
		{"HS256 with the JWK JSON as secret", hmacToken("HS256", jwkJSON, goodClaims()), StatusHeaderNotImplementedAlg},
		{"HS384 label", rawToken(map[string]any{"alg": "HS384", "kid": "rsa"}, goodClaims(), parts[2]), StatusHeaderNotImplementedAlg},
		{"expired", sign(t, jose.ES256, k.p256, "p256", with(goodClaims(), "exp", testNow.Unix()-3600)), StatusExpired},
		{"expired beyond the 60s skew", sign(t, jose.ES256, k.p256, "p256", with(goodClaims(), "exp", testNow.Unix()-61)), StatusExpired},
		{"not yet valid", sign(t, jose.ES256, k.p256, "p256", with(goodClaims(), "nbf", testNow.Unix()+3600)), StatusNotYetValid},
		{"wrong issuer", sign(t, jose.ES256, k.p256, "p256", with(goodClaims(), "iss", "https://evil.example.com")), StatusUnknownIssuer},
		{"issuer differing in case", sign(t, jose.ES256, k.p256, "p256", with(goodClaims(), "iss", strings.ToUpper(testIssuer))), StatusUnknownIssuer},
		{"no issuer", sign(t, jose.ES256, k.p256, "p256", with(goodClaims(), "iss", nil)), StatusUnknownIssuer},
		{"wrong audience", sign(t, jose.ES256, k.p256, "p256", with(goodClaims(), "aud", "other.example.com")), StatusAudienceNotAllowed},
		{"no audience", sign(t, jose.ES256, k.p256, "p256", with(goodClaims(), "aud", nil)), StatusAudienceNotAllowed},
		{"unknown kid", sign(t, jose.ES256, k.p256, "nosuchkey", goodClaims()), StatusKidAlgMismatch},
		{"attacker key under a known kid", sign(t, jose.ES256, k.attacker, "p256", goodClaims()), StatusVerificationFail},
		{"attacker key without kid", sign(t, jose.ES256, k.attacker, "", goodClaims()), StatusVerificationFail},
		{"attacker RSA key under the RSA kid", sign(t, jose.RS256, k.attackerRSA, "rsa", goodClaims()), StatusVerificationFail},
		{"tampered payload", parts[0] + "." + tamperedPayload + "." + parts[2], StatusVerificationFail},
		{"tampered header kid", b64json(map[string]any{"alg": "ES256", "kid": "p384", "typ": "JWT"}) + "." + parts[1] + "." + parts[2], StatusKidAlgMismatch},
		{"ES256 signature under an RSA kid", b64json(map[string]any{"alg": "ES256", "kid": "rsa"}) + "." + parts[1] + "." + parts[2], StatusKidAlgMismatch},
		{"RS256 signature relabelled PS256", psSwap, StatusVerificationFail},
		{"zero ECDSA signature (psychic signature)", zeroSig, StatusVerificationFail},
		{"truncated signature", parts[0] + "." + parts[1] + "." + parts[2][:20], StatusVerificationFail},
		{"empty signature", parts[0] + "." + parts[1] + ".", StatusSignatureBadBase64},
		{"signature not base64", parts[0] + "." + parts[1] + ".!!!!", StatusSignatureBadBase64},
		{"two segments", parts[0] + "." + parts[1], StatusBadFormat},
		{"four segments", good + ".x", StatusBadFormat},
		{"JWE-shaped five segments", good + ".a.b", StatusBadFormat},
		{"JWS JSON serialization", jsonSerialized, StatusBadFormat},
		{"header not base64", "%%%." + parts[1] + "." + parts[2], StatusHeaderBadBase64},
		{"header is an array", b64([]byte(`["ES256"]`)) + "." + parts[1] + "." + parts[2], StatusHeaderBadJSON},
		{"header not JSON", b64([]byte(`{alg:ES256`)) + "." + parts[1] + "." + parts[2], StatusHeaderBadJSON},
		{"kid not a string", rawToken(map[string]any{"alg": "ES256", "kid": 7}, goodClaims(), parts[2]), StatusHeaderBadKid},
		{"payload not base64", parts[0] + ".%%%." + parts[2], StatusPayloadBadBase64},
		{"payload not JSON", parts[0] + "." + b64([]byte("{")) + "." + parts[2], StatusPayloadBadJSON},
		{"payload trailing data", parts[0] + "." + b64([]byte(`{"iss":"x"} {}`)) + "." + parts[2], StatusPayloadBadJSON},
		{"exp is a string", parts[0] + "." + b64json(with(goodClaims(), "exp", "9999999999")) + "." + parts[2], StatusPayloadExpNotInteger},
		{"exp is fractional", parts[0] + "." + b64json(with(goodClaims(), "exp", 1.5)) + "." + parts[2], StatusPayloadExpNotInteger},
		{"exp is negative", parts[0] + "." + b64json(with(goodClaims(), "exp", -1)) + "." + parts[2], StatusPayloadExpNotInteger},
		{"iss is a number", parts[0] + "." + b64json(with(goodClaims(), "iss", 1)) + "." + parts[2], StatusPayloadIssNotString},
		{"aud is a number", parts[0] + "." + b64json(with(goodClaims(), "aud", 1)) + "." + parts[2], StatusPayloadAudNotString},
		{"sub is an object", parts[0] + "." + b64json(with(goodClaims(), "sub", map[string]any{})) + "." + parts[2], StatusPayloadSubNotString},
		{"claims nested 100 deep", parts[0] + "." + b64json(with(goodClaims(), "deep", deep)) + "." + parts[2], StatusPayloadBadJSON},
		{"oversized", parts[0] + "." + strings.Repeat("A", MaxTokenSize) + "." + parts[2], StatusBadFormat},
		{"embedded jwk header with an attacker key", embedded, StatusVerificationFail},
		{"jku header pointing elsewhere", func() string {
			s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.attacker},
				(&jose.SignerOptions{}).WithHeader("jku", "https://evil.example.com/jwks").WithHeader("kid", "evil"))
			b, _ := json.Marshal(goodClaims())
			o, _ := s.Sign(b)
			out, _ := o.CompactSerialize()
			return out
		}(), StatusKidAlgMismatch},
		{"attacker jwk kid collision in header", rawToken(map[string]any{"alg": "ES256", "kid": "p256", "jwk": attackerJWK}, goodClaims(), parts[2]), StatusVerificationFail},
		{"crit header with an unknown extension", func() string {
			h := map[string]any{"alg": "ES256", "kid": "p256", "crit": []string{"exp-ext"}, "exp-ext": true}
			si := b64json(h) + "." + parts[1]
			return si + "." + esSign(k.p256, si)
		}(), StatusVerificationFail},
		{"token split by a newline", parts[0] + ".\n" + parts[1] + "." + parts[2], StatusPayloadBadBase64},
		{"padded segments", parts[0] + "=." + parts[1] + "." + parts[2], StatusHeaderBadBase64},
	}
}

// esSign signs s with ES256 in JWS's r||s form.
func esSign(priv *ecdsa.PrivateKey, s string) string {
	h := sha256.Sum256([]byte(s))
	r, ss, err := ecdsa.Sign(rand.Reader, priv, h[:])
	if err != nil {
		panic(err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	ss.FillBytes(out[32:])
	return b64(out)
}

func TestHostileTokensRefused(t *testing.T) {
	c := mustParse(t, istioConfig(loadKeys().jwks, func(p *jwtv3.JwtProvider) { p.Audiences = []string{testAudience} }))
	corpus := hostileTokens(t)
	if len(corpus) < 40 {
		t.Fatalf("corpus has %d tokens, want at least 40", len(corpus))
	}
	for _, tc := range corpus {
		t.Run(tc.name, func(t *testing.T) {
			o := c.Authenticate(bearer(tc.token), testNow)
			if o.Status == StatusOK {
				t.Fatalf("accepted: identities %+v", o.Identities)
			}
			if o.Status != tc.want {
				t.Errorf("status %q, want %q", o.Status, tc.want)
			}
			// The same token as a query parameter is refused as well.
			if o := c.Authenticate(request("/p?access_token="+tc.token), testNow); o.Status == StatusOK && !strings.Contains(tc.token, "\n") {
				t.Errorf("accepted as access_token parameter")
			}
		})
	}
}

func TestValidTokensEveryAlgorithm(t *testing.T) {
	k := loadKeys()
	c := mustParse(t, istioConfig(k.jwks, func(p *jwtv3.JwtProvider) { p.Audiences = []string{"https://" + testAudience + "/"} }))
	for _, tc := range []struct {
		alg  jose.SignatureAlgorithm
		key  crypto.Signer
		kid  string
		name string
	}{
		{jose.RS256, k.rsa, "rsa", "RS256"}, {jose.RS384, k.rsa, "rsa", "RS384"}, {jose.RS512, k.rsa, "rsa", "RS512"},
		{jose.PS256, k.rsa, "rsa", "PS256"}, {jose.PS384, k.rsa, "rsa", "PS384"}, {jose.PS512, k.rsa, "rsa", "PS512"},
		{jose.ES256, k.p256, "p256", "ES256"}, {jose.ES384, k.p384, "p384", "ES384"}, {jose.ES512, k.p521, "p521", "ES512"},
		{jose.EdDSA, k.ed, "ed", "EdDSA"}, {jose.ES256, k.p256, "", "ES256 without kid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := c.Authenticate(bearer(sign(t, tc.alg, tc.key, tc.kid, goodClaims())), testNow)
			if o.Status != StatusOK {
				t.Fatalf("status %q", o.Status)
			}
			if len(o.Identities) != 1 {
				t.Fatalf("identities %+v", o.Identities)
			}
			id := o.Identities[0]
			if id.Principal != testIssuer+"/testing@secure.istio.io" || id.Presenter != "frontend" ||
				len(id.Audiences) != 1 || id.Audiences[0] != testAudience || id.MetadataKey != testIssuer {
				t.Errorf("identity %+v", id)
			}
			if Lookup(id.Claims, []string{"nested", "key", "deep"}) != "value" {
				t.Errorf("nested claim: %v", id.Claims["nested"])
			}
		})
	}
}

func TestMissingTokenAndSkew(t *testing.T) {
	k := loadKeys()
	c := mustParse(t, istioConfig(k.jwks, nil))
	if o := c.Authenticate(request("/productpage"), testNow); o.Status != StatusOK || len(o.Identities) != 0 {
		t.Errorf("no token: %+v, want pass without identity (allow_missing)", o)
	}
	// Within the default 60 s clock skew.
	tok := sign(t, jose.ES256, k.p256, "p256", with(goodClaims(), "exp", testNow.Unix()-30, "nbf", testNow.Unix()+30))
	if o := c.Authenticate(bearer(tok), testNow); o.Status != StatusOK {
		t.Errorf("within skew: %q", o.Status)
	}
	c = mustParse(t, istioConfig(k.jwks, func(p *jwtv3.JwtProvider) { p.ClockSkewSeconds = 5 }))
	tok = sign(t, jose.ES256, k.p256, "p256", with(goodClaims(), "exp", testNow.Unix()-30))
	if o := c.Authenticate(bearer(tok), testNow); o.Status != StatusExpired {
		t.Errorf("clock_skew_seconds 5: %q, want expired", o.Status)
	}
	// A bad token next to a good one is refused: every token must verify.
	good := sign(t, jose.ES256, k.p256, "p256", goodClaims())
	bad := sign(t, jose.ES256, k.attacker, "p256", goodClaims())
	r := request("/p?access_token="+bad, "authorization", "Bearer "+good)
	if o := mustParse(t, istioConfig(k.jwks, nil)).Authenticate(r, testNow); o.Status == StatusOK {
		t.Error("good header token with a bad parameter token accepted")
	}
	// A provider requirement without allow_missing refuses a missing token.
	m := istioConfig(k.jwks, nil)
	m.Rules[0].GetRequires().GetRequiresAny().Requirements = m.Rules[0].GetRequires().GetRequiresAny().Requirements[:1]
	if o := mustParse(t, m).Authenticate(request("/x"), testNow); o.Status != StatusMissing {
		t.Errorf("required provider, no token: %q", o.Status)
	}
}

func TestHeaderEffects(t *testing.T) {
	k := loadKeys()
	c := mustParse(t, istioConfig(k.jwks, func(p *jwtv3.JwtProvider) {
		p.ForwardPayloadHeader = "x-jwt-payload"
		p.ClaimToHeaders = []*jwtv3.JwtClaimToHeader{
			{HeaderName: "x-jwt-deep", ClaimName: "nested.key.deep"},
			{HeaderName: "x-jwt-groups", ClaimName: "groups"},
			{HeaderName: "x-jwt-exp", ClaimName: "exp"},
		}
	}))
	tok := sign(t, jose.ES256, k.p256, "p256", goodClaims())
	r := bearer(tok)
	r.Headers.Add("x-jwt-deep", "forged")
	if o := c.Authenticate(r, testNow); o.Status != StatusOK {
		t.Fatal(o.Status)
	}
	h := *r.Headers
	if h.Has("authorization") {
		t.Error("authorization forwarded although forward is false")
	}
	if got := h.Value("x-jwt-payload"); got != strings.Split(tok, ".")[1] {
		t.Errorf("x-jwt-payload %q", got)
	}
	if h.Value("x-jwt-deep") != "value" || h.Count("x-jwt-deep") != 1 || h.Value("x-jwt-groups") != "group1,group2" ||
		h.Value("x-jwt-exp") != "1800003600" {
		t.Errorf("claim headers %v", h)
	}
	// Without a token the forged header is removed too.
	r = request("/", "x-jwt-payload", "forged", "x-jwt-deep", "forged")
	c.Authenticate(r, testNow)
	if r.Headers.Has("x-jwt-payload") || r.Headers.Has("x-jwt-deep") {
		t.Errorf("forged headers kept: %v", *r.Headers)
	}
	// forward keeps the token.
	c = mustParse(t, istioConfig(k.jwks, func(p *jwtv3.JwtProvider) { p.Forward = true }))
	r = bearer(tok)
	c.Authenticate(r, testNow)
	if r.Headers.Value("authorization") != "Bearer "+tok {
		t.Error("forward: token not kept")
	}
}

func TestLocations(t *testing.T) {
	k := loadKeys()
	tok := sign(t, jose.ES256, k.p256, "p256", goodClaims())
	c := mustParse(t, istioConfig(k.jwks, func(p *jwtv3.JwtProvider) {
		p.FromHeaders = []*jwtv3.JwtHeader{{Name: "X-Jwt-Assertion", ValuePrefix: "Token "}}
		p.FromParams = []string{"my_token"}
		p.FromCookies = []string{"session"}
	}))
	for _, tc := range []struct {
		name string
		r    *Request
		n    int
	}{
		{"header with prefix", request("/", "x-jwt-assertion", "Token "+tok), 1},
		{"header prefix in another case", request("/", "x-jwt-assertion", "token "+tok), 1},
		{"param", request("/a?x=1&my_token=" + tok), 1},
		{"cookie", request("/", "cookie", "a=b; session="+tok+"; c=d"), 1},
		{"default Authorization ignored when locations are set", bearer(tok), 0},
		{"default access_token ignored when locations are set", request("/?access_token=" + tok), 0},
		{"header without prefix", request("/", "x-jwt-assertion", tok), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := c.Authenticate(tc.r, testNow)
			if o.Status != StatusOK || len(o.Identities) != tc.n {
				t.Errorf("status %q, %d identities, want %d", o.Status, len(o.Identities), tc.n)
			}
		})
	}
}

func TestReply(t *testing.T) {
	c := mustParse(t, istioConfig(loadKeys().jwks, nil))
	r := request("/productpage?access_token=secret")
	code, body, www := c.Reply(Outcome{Status: StatusVerificationFail}, r)
	if code != 401 || body != "Jwt verification fails" || www != `Bearer realm="http://bookinfo.example.com/productpage", error="invalid_token"` {
		t.Errorf("reply %d %q %q", code, body, www)
	}
	code, body, www = c.Reply(Outcome{Status: StatusMissing}, r)
	if code != 401 || body != "Jwt is missing" || www != `Bearer realm="http://bookinfo.example.com/productpage"` {
		t.Errorf("reply %d %q %q", code, body, www)
	}
	if code, _, _ := c.Reply(Outcome{Status: StatusAudienceNotAllowed}, r); code != 403 {
		t.Errorf("audience: %d, want 403 as Envoy", code)
	}
}

func TestCORSPreflightBypass(t *testing.T) {
	c := mustParse(t, istioConfig(loadKeys().jwks, nil))
	r := request("/", "origin", "http://a", "access-control-request-method", "GET", "authorization", "Bearer x.y.z")
	r.Method = "OPTIONS"
	if o := c.Authenticate(r, testNow); o.Status != StatusOK {
		t.Errorf("preflight: %q", o.Status)
	}
}

func TestMultipleProviders(t *testing.T) {
	// Istio's shape for two jwtRules: any{o0, o1, all{any{o0, missing}, any{o1, missing}}}.
	k := loadKeys()
	other := mustKey(ecdsaKey())
	otherJWKS, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: other.Public(), KeyID: "o"}}})
	m := istioConfig(k.jwks, nil)
	m2 := istioConfig(string(otherJWKS), func(p *jwtv3.JwtProvider) { p.Issuer = "other" })
	m.Providers["origins-1"] = m2.Providers["origins-0"]
	pn := func(n string) *jwtv3.JwtRequirement {
		return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: n}}
	}
	anyOf := func(r ...*jwtv3.JwtRequirement) *jwtv3.JwtRequirement {
		return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: r}}}
	}
	missing := m.Rules[0].GetRequires().GetRequiresAny().Requirements[1]
	m.Rules[0].RequirementType = &jwtv3.RequirementRule_Requires{Requires: anyOf(pn("origins-0"), pn("origins-1"),
		&jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAll{RequiresAll: &jwtv3.JwtRequirementAndList{
			Requirements: []*jwtv3.JwtRequirement{anyOf(pn("origins-0"), missing), anyOf(pn("origins-1"), missing)}}}})}
	c := mustParse(t, m)
	for _, tc := range []struct {
		name string
		r    *Request
		want Status
	}{
		{"first issuer", bearer(sign(t, jose.ES256, k.p256, "p256", goodClaims())), StatusOK},
		{"second issuer", bearer(sign(t, jose.ES256, other, "o", with(goodClaims(), "iss", "other"))), StatusOK},
		{"second issuer signed by the first's key", bearer(sign(t, jose.ES256, k.p256, "p256", with(goodClaims(), "iss", "other"))), StatusKidAlgMismatch},
		{"unknown issuer", bearer(sign(t, jose.ES256, k.p256, "p256", with(goodClaims(), "iss", "third"))), StatusUnknownIssuer},
		{"none", request("/"), StatusOK},
	} {
		if o := c.Authenticate(tc.r, testNow); o.Status != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, o.Status, tc.want)
		}
	}
}

// TestTokenCache: a token verified once is found in the cache, and the
// time checks still apply to it.
func TestTokenCache(t *testing.T) {
	k := loadKeys()
	c := mustParse(t, istioConfig(k.jwks, nil))
	tok := sign(t, jose.ES256, k.p256, "p256", with(goodClaims(), "exp", testNow.Unix()+10))
	for i := range 2 {
		if o := c.Authenticate(bearer(tok), testNow); o.Status != StatusOK || len(o.Identities) != 1 {
			t.Fatalf("request %d: %q", i, o.Status)
		}
	}
	if c.providers["origins-0"].cache.get(tok) == nil {
		t.Fatal("verified token not cached")
	}
	if o := c.Authenticate(bearer(tok), testNow.Add(2*time.Minute)); o.Status != StatusExpired {
		t.Errorf("cached token after exp: %q, want expired", o.Status)
	}
	// A forged token is never cached.
	bad := sign(t, jose.ES256, k.attacker, "p256", goodClaims())
	c.Authenticate(bearer(bad), testNow)
	if c.providers["origins-0"].cache.get(bad) != nil {
		t.Error("refused token cached")
	}
}
