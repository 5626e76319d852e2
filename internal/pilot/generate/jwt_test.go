package generate

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	securitybeta "istio.io/api/security/v1beta1"
	typebeta "istio.io/api/type/v1beta1"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/proxy/filter/jwtauthn"
)

const testJWKS = `{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`

func requestAuthn(ns, name string, selector map[string]string, rules ...*securitybeta.JWTRule) config.Resource {
	ra := &securitybeta.RequestAuthentication{JwtRules: rules}
	if selector != nil {
		ra.Selector = &typebeta.WorkloadSelector{MatchLabels: selector}
	}
	return res(config.RequestAuthentication, ns, name, ra)
}

// hcmsOf returns the HTTP connection managers of a proxy's listeners.
func hcmsOf(t *testing.T, pc *model.PushContext, p *model.Proxy) map[string]*hcmv3.HttpConnectionManager {
	t.Helper()
	rs, err := Generate(pc, p, ListenerType, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*hcmv3.HttpConnectionManager{}
	for _, r := range rs {
		l := r.Resource.(*listenerv3.Listener)
		for i, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				if f.GetName() != hcmFilterName {
					continue
				}
				var m hcmv3.HttpConnectionManager
				if err := f.GetTypedConfig().UnmarshalTo(&m); err != nil {
					t.Fatal(err)
				}
				out[l.GetName()+"/"+itoa(uint32(i))] = &m
			}
		}
	}
	return out
}

// jwtOf returns the HCMs that carry jwt_authn, checking it is first and
// that mast-proxy's parser and go-control-plane's validation accept it.
func jwtOf(t *testing.T, hcms map[string]*hcmv3.HttpConnectionManager) map[string]*jwtv3.JwtAuthentication {
	t.Helper()
	out := map[string]*jwtv3.JwtAuthentication{}
	for name, m := range hcms {
		for i, f := range m.GetHttpFilters() {
			if f.GetName() != jwtAuthnFilterName {
				continue
			}
			if i != 0 {
				t.Errorf("%s: jwt_authn at position %d, want first", name, i)
			}
			var j jwtv3.JwtAuthentication
			if err := f.GetTypedConfig().UnmarshalTo(&j); err != nil {
				t.Fatal(err)
			}
			if err := j.Validate(); err != nil {
				t.Errorf("%s: go-control-plane validation: %v", name, err)
			}
			if _, err := jwtauthn.ParseAny(f.GetTypedConfig()); err != nil {
				t.Errorf("%s: mast-proxy NACKs it: %v", name, err)
			}
			out[name] = &j
		}
	}
	return out
}

func TestRequestAuthenticationScopes(t *testing.T) {
	rule := &securitybeta.JWTRule{Issuer: "testing@secure.istio.io", Jwks: testJWKS}
	for _, tc := range []struct {
		name          string
		ra            config.Resource
		gateway, side bool
	}{
		{"gateway by selector in the root namespace (Istio's task)", requestAuthn("istio-system", "jwt-example", map[string]string{"istio": "ingressgateway"}, rule), true, false},
		{"root namespace without selector: mesh-wide", requestAuthn("istio-system", "mesh", nil, rule), true, true},
		{"namespace-wide", requestAuthn("default", "ns", nil, rule), false, true},
		{"workload selector", requestAuthn("default", "reviews", map[string]string{"app": "reviews"}, rule), false, true},
		{"selector matching nobody", requestAuthn("default", "nobody", map[string]string{"app": "nope"}, rule), false, false},
		{"another namespace", requestAuthn("other", "other", nil, rule), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc := pushWith(tc.ra)
			if got := len(jwtOf(t, hcmsOf(t, pc, gatewayProxy()))) > 0; got != tc.gateway {
				t.Errorf("gateway has jwt_authn: %v, want %v", got, tc.gateway)
			}
			side := jwtOf(t, hcmsOf(t, pc, reviewsNoneProxy()))
			if got := len(side) > 0; got != tc.side {
				t.Errorf("reviews has jwt_authn: %v, want %v", got, tc.side)
			}
			for name := range side {
				if !strings.HasPrefix(name, "10.1.0.2_9080") {
					t.Errorf("jwt_authn on %s, want it on the inbound listener only", name)
				}
			}
		})
	}
}

func TestRequestAuthenticationTargetRef(t *testing.T) {
	ra := &securitybeta.RequestAuthentication{
		TargetRefs: []*typebeta.PolicyTargetReference{{Group: "gateway.networking.k8s.io", Kind: "Gateway", Name: "bookinfo-gateway"}},
		JwtRules:   []*securitybeta.JWTRule{{Issuer: "i", Jwks: testJWKS}},
	}
	pc := pushWith(res(config.RequestAuthentication, "istio-system", "t", ra))
	if len(jwtOf(t, hcmsOf(t, pc, gatewayProxy()))) != 0 {
		t.Error("targetRef applied to a gateway without the gateway-name label")
	}
	gw := gatewayProxy()
	gw.Labels[model.GatewayNameLabel] = "bookinfo-gateway"
	if len(jwtOf(t, hcmsOf(t, pc, gw))) == 0 {
		t.Error("targetRef did not apply to its gateway")
	}
}

func TestRequestAuthenticationFields(t *testing.T) {
	rules := []*securitybeta.JWTRule{
		{
			Issuer: "z-issuer", JwksUri: "https://z.example.com/jwks", Audiences: []string{"a1"},
			FromHeaders:           []*securitybeta.JWTHeader{{Name: "x-jwt", Prefix: "Token "}},
			FromParams:            []string{"tok"},
			FromCookies:           []string{"session"},
			OutputPayloadToHeader: "x-payload",
			OutputClaimToHeaders:  []*securitybeta.ClaimToHeader{{Header: "x-group", Claim: "nested.group"}},
			ForwardOriginalToken:  true,
		},
		{Issuer: "a-issuer", JwksUri: "https://a.example.com/jwks"},
	}
	ra := requestAuthn("default", "r", nil, rules...)
	pc := pushWith(ra)
	pc.JWKS = model.JWKSSnapshot{{URI: "https://a.example.com/jwks"}: testJWKS}
	js := jwtOf(t, hcmsOf(t, pc, reviewsNoneProxy()))
	if len(js) != 1 {
		t.Fatalf("%d jwt filters", len(js))
	}
	for _, j := range js {
		a, z := j.Providers["origins-0"], j.Providers["origins-1"]
		if a.GetIssuer() != "a-issuer" || z.GetIssuer() != "z-issuer" {
			t.Fatalf("providers not sorted by issuer: %v", j.Providers)
		}
		if a.GetLocalJwks().GetInlineString() != testJWKS {
			t.Error("fetched JWKS not inlined")
		}
		if z.GetLocalJwks().GetInlineString() != FakeJWKS {
			t.Error("unfetched jwksUri: want the fake JWKS (fail closed)")
		}
		if z.GetForwardPayloadHeader() != "x-payload" || !z.GetForward() || z.GetPayloadInMetadata() != "z-issuer" ||
			z.GetFromHeaders()[0].GetValuePrefix() != "Token " || z.GetFromParams()[0] != "tok" || z.GetFromCookies()[0] != "session" ||
			z.GetClaimToHeaders()[0].GetClaimName() != "nested.group" || z.GetAudiences()[0] != "a1" {
			t.Errorf("provider fields: %v", z)
		}
		if n := len(j.Rules[0].GetRequires().GetRequiresAny().GetRequirements()); n != 3 {
			t.Errorf("two providers: %d alternatives, want origins-0, origins-1 and the AND of both-or-missing", n)
		}
	}
}
