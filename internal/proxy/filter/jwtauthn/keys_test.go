package jwtauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"google.golang.org/protobuf/proto"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/emptypb"
)

const (
	testIssuer   = "testing@secure.istio.io"
	testAudience = "bookinfo.example.com"
)

// testKeys are the issuer's signing keys, one per algorithm family, and an
// attacker's keys that are not in the JWKS.
type testKeys struct {
	rsa, attackerRSA *rsa.PrivateKey
	p256, attacker   *ecdsa.PrivateKey
	p384             *ecdsa.PrivateKey
	p521             *ecdsa.PrivateKey
	ed               ed25519.PrivateKey
	jwks             string
}

var (
	keysOnce sync.Once
	keys     *testKeys
)

func mustKey[T any](k T, err error) T {
	if err != nil {
		panic(err)
	}
	return k
}

func loadKeys() *testKeys {
	keysOnce.Do(func() {
		k := &testKeys{
			rsa:         mustKey(rsa.GenerateKey(rand.Reader, 2048)),
			attackerRSA: mustKey(rsa.GenerateKey(rand.Reader, 2048)),
			p256:        mustKey(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)),
			attacker:    mustKey(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)),
			p384:        mustKey(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)),
			p521:        mustKey(ecdsa.GenerateKey(elliptic.P521(), rand.Reader)),
		}
		_, k.ed = mustKey2(ed25519.GenerateKey(rand.Reader))
		set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: k.rsa.Public(), KeyID: "rsa", Use: "sig"},
			{Key: k.p256.Public(), KeyID: "p256", Use: "sig"},
			{Key: k.p384.Public(), KeyID: "p384"},
			{Key: k.p521.Public(), KeyID: "p521"},
			{Key: k.ed.Public(), KeyID: "ed"},
		}}
		k.jwks = string(mustKey(json.Marshal(set)))
		keys = k
	})
	return keys
}

func mustKey2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}

// sign makes a compact JWS of claims with go-jose.
func sign(t testing.TB, alg jose.SignatureAlgorithm, priv crypto.Signer, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return b64(b)
}

// istioConfig is the JwtAuthentication istiod generates for one jwtRule:
// requires_any {origins-0, allow_missing} on prefix "/".
func istioConfig(jwks string, mod func(*jwtv3.JwtProvider)) *jwtv3.JwtAuthentication {
	p := &jwtv3.JwtProvider{
		Issuer:            testIssuer,
		PayloadInMetadata: testIssuer,
		JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: jwks},
		}},
	}
	if mod != nil {
		mod(p)
	}
	return &jwtv3.JwtAuthentication{
		Providers: map[string]*jwtv3.JwtProvider{"origins-0": p},
		Rules: []*jwtv3.RequirementRule{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{
				RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{
					Requirements: []*jwtv3.JwtRequirement{
						{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "origins-0"}},
						{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}},
					},
				}},
			}},
		}},
		BypassCorsPreflight: true,
	}
}

func mustParse(t testing.TB, m *jwtv3.JwtAuthentication) *Config {
	t.Helper()
	c, err := parseProto(m)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ecdsaKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

// parseProto parses a generated JwtAuthentication through its wire bytes.
func parseProto(m *jwtv3.JwtAuthentication) (*Config, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}
