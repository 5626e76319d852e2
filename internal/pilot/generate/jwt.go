package generate

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/emptypb"
	security "istio.io/api/security/v1beta1"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

const jwtAuthnFilterName = "envoy.filters.http.jwt_authn"

// FakeJWKS is the key set sent for a jwksUri mastd has not (yet) fetched:
// an RSA public key whose private half nobody holds, so every token is
// refused (fail closed, as istiod's fake JWKS).
const FakeJWKS = `{"keys":[{"kty":"RSA","kid":"mast-unfetched-jwks","alg":"RS256","e":"AQAB","n":"` +
	`0KYl5yG7X44V_anfTglPYnrZeK8NbVNViYJILkuSHoxduEDjuCZgbPcd5nth7jS_RVjlFlLJeeUshV_jNLn0m9keepaguljkwA2gGfHgFAJn` +
	`FLZJp0DnaCvF_VYo_j7QX7KBgPJWz5Ng4O051Dwm8QnwGTlJQGQBZy2Mn7fRVr5nD191PfvvQjbG_3Mq5HFKLRqpUrPfds4gPxoQ-avdMTd-` +
	`diVxrgDt0UEOrMpsCmXPWi9OK1QP4jQ2VfhctTlG7lN7auxExUQzxLnkKSXUCHPy_8xo6YpZHejqM0L2598OFAtahz5wt5Co--5-VZrwxEyJ` +
	`ObizOs34eS9ov7nDjw"}]}`

// jwtFilter is the jwt_authn filter for the RequestAuthentications that
// apply to the proxy, nil when none does.
func (g *gen) jwtFilter() *hcmv3.HttpFilter {
	rules := g.pc.JWTRules(g.p)
	if len(rules) == 0 {
		return nil
	}
	return httpFilter(jwtAuthnFilterName, toAny(jwtAuthentication(rules, g.pc.JWKS)))
}

// jwtAuthentication converts jwtRules into Envoy's configuration exactly
// as istiod does: one provider "origins-N" per rule; a token, when
// present, must be valid for some provider; a request without one passes
// (allow_missing) and is left to AuthorizationPolicy.
func jwtAuthentication(rules []*security.JWTRule, jwks model.JWKSSnapshot) *jwtv3.JwtAuthentication {
	providers := map[string]*jwtv3.JwtProvider{}
	var inner, outer []*jwtv3.JwtRequirement
	for i, r := range rules {
		name := fmt.Sprintf("origins-%d", i)
		p := &jwtv3.JwtProvider{
			Issuer:               r.GetIssuer(),
			Audiences:            r.GetAudiences(),
			Forward:              r.GetForwardOriginalToken(),
			ForwardPayloadHeader: r.GetOutputPayloadToHeader(),
			PayloadInMetadata:    r.GetIssuer(),
			FromParams:           r.GetFromParams(),
			FromCookies:          r.GetFromCookies(),
			JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: jwksFor(r, jwks)},
			}},
		}
		for _, h := range r.GetFromHeaders() {
			p.FromHeaders = append(p.FromHeaders, &jwtv3.JwtHeader{Name: h.GetName(), ValuePrefix: h.GetPrefix()})
		}
		for _, c := range r.GetOutputClaimToHeaders() {
			p.ClaimToHeaders = append(p.ClaimToHeaders, &jwtv3.JwtClaimToHeader{HeaderName: c.GetHeader(), ClaimName: c.GetClaim()})
		}
		providers[name] = p
		inner = append(inner, anyOf(providerReq(name), allowMissing()))
		outer = append(outer, providerReq(name))
	}
	req := inner[0]
	if len(inner) > 1 {
		// any{P1, P2, ..., all{any{P1, missing}, any{P2, missing}, ...}}: the
		// inner AND makes every present token valid; the outer OR covers
		// providers that share a location.
		req = anyOf(append(outer, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAll{
			RequiresAll: &jwtv3.JwtRequirementAndList{Requirements: inner}}})...)
	}
	return &jwtv3.JwtAuthentication{
		Providers: providers,
		Rules: []*jwtv3.RequirementRule{{
			Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtv3.RequirementRule_Requires{Requires: req},
		}},
		BypassCorsPreflight: true,
	}
}

// jwksFor is the key set of a rule: inline, fetched, or the fake one.
func jwksFor(r *security.JWTRule, jwks model.JWKSSnapshot) string {
	if r.GetJwks() != "" {
		return r.GetJwks()
	}
	if k, ok := model.KeyOf(r); ok {
		if s, ok := jwks[k]; ok {
			return s
		}
	}
	return FakeJWKS
}

func providerReq(name string) *jwtv3.JwtRequirement {
	return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: name}}
}

func allowMissing() *jwtv3.JwtRequirement {
	return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}}
}

func anyOf(r ...*jwtv3.JwtRequirement) *jwtv3.JwtRequirement {
	return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{
		RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: r}}}
}

// withAuthnFilters puts the proxy's authentication filters at the front of
// an HCM's http_filters: jwt_authn first, before any authorization filter
// (ext_authz, rbac) and before fault, cors and the router, as Istio orders
// them.
func (g *gen) withAuthnFilters(m *hcmv3.HttpConnectionManager) *hcmv3.HttpConnectionManager {
	if f := g.jwtFilter(); f != nil {
		m.HttpFilters = append([]*hcmv3.HttpFilter{f}, m.HttpFilters...)
	}
	return m
}
