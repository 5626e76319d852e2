package jwtauthn

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestParseRefusesWhatItCannotHonour(t *testing.T) {
	jwks := loadKeys().jwks
	for _, tc := range []struct {
		name string
		mod  func(*jwtv3.JwtAuthentication)
		want string
	}{
		{"remote_jwks", func(m *jwtv3.JwtAuthentication) {
			m.Providers["origins-0"].JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{
				HttpUri: &corev3.HttpUri{Uri: "https://example.com/jwks"}}}
		}, `providers["origins-0"]: remote_jwks: not supported`},
		{"no jwks", func(m *jwtv3.JwtAuthentication) { m.Providers["origins-0"].JwksSourceSpecifier = nil }, "jwks_source_specifier"},
		{"jwks filename", func(m *jwtv3.JwtAuthentication) {
			m.Providers["origins-0"].JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
				Specifier: &corev3.DataSource_Filename{Filename: "/etc/jwks"}}}
		}, "local_jwks: filename: not supported"},
		{"jwks without usable keys", func(m *jwtv3.JwtAuthentication) {
			m.Providers["origins-0"].JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`}}}
		}, "local_jwks: jwks: no usable key"},
		{"jwks not JSON", func(m *jwtv3.JwtAuthentication) {
			m.Providers["origins-0"].JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: `-----BEGIN PUBLIC KEY-----`}}}
		}, "local_jwks: jwks:"},
		{"subjects", func(m *jwtv3.JwtAuthentication) {
			m.Providers["origins-0"].Subjects = &matcherv3.StringMatcher{}
		}, "subjects: not supported"},
		{"max_lifetime", func(m *jwtv3.JwtAuthentication) { m.Providers["origins-0"].MaxLifetime = durationpb.New(1) }, "max_lifetime: not supported"},
		{"jwt_cache_config", func(m *jwtv3.JwtAuthentication) { m.Providers["origins-0"].JwtCacheConfig = &jwtv3.JwtCacheConfig{} }, "jwt_cache_config"},
		{"header_in_metadata", func(m *jwtv3.JwtAuthentication) { m.Providers["origins-0"].HeaderInMetadata = "h" }, "header_in_metadata"},
		{"failed_status_in_metadata", func(m *jwtv3.JwtAuthentication) { m.Providers["origins-0"].FailedStatusInMetadata = "h" }, "failed_status_in_metadata"},
		{"normalize_payload_in_metadata", func(m *jwtv3.JwtAuthentication) {
			m.Providers["origins-0"].NormalizePayloadInMetadata = &jwtv3.JwtProvider_NormalizePayload{}
		}, "normalize_payload_in_metadata"},
		{"clear_route_cache", func(m *jwtv3.JwtAuthentication) { m.Providers["origins-0"].ClearRouteCache = true }, "clear_route_cache"},
		{"unknown provider", func(m *jwtv3.JwtAuthentication) {
			m.Rules[0].GetRequires().GetRequiresAny().Requirements[0] = &jwtv3.JwtRequirement{
				RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "nope"}}
		}, `rules[0].requires: requires_any.requirements[0]: provider_name: "nope" is not configured`},
		{"unknown requirement name", func(m *jwtv3.JwtAuthentication) {
			m.Rules[0].RequirementType = &jwtv3.RequirementRule_RequirementName{RequirementName: "r"}
		}, `rules[0].requirement_name: "r" is not in requirement_map`},
		{"extract_only_without_validation", func(m *jwtv3.JwtAuthentication) {
			m.Rules[0].RequirementType = &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{
				RequiresType: &jwtv3.JwtRequirement_ExtractOnlyWithoutValidation{ExtractOnlyWithoutValidation: &jwtv3.ExtractOnlyWithoutValidation{}}}}
		}, "extract_only_without_validation: not supported"},
		{"rule header match", func(m *jwtv3.JwtAuthentication) {
			m.Rules[0].Match.Headers = []*routev3.HeaderMatcher{{Name: "x"}}
		}, "rules[0].match: headers: not supported"},
		{"filter_state_rules", func(m *jwtv3.JwtAuthentication) {
			m.FilterStateRules = &jwtv3.FilterStateRule{Name: "x"}
		}, "filter_state_rules: not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := istioConfig(jwks, nil)
			tc.mod(m)
			_, err := parseProto(m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestRulesAndRequirementMap(t *testing.T) {
	k := loadKeys()
	m := istioConfig(k.jwks, nil)
	required := &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "origins-0"}}
	m.RequirementMap = map[string]*jwtv3.JwtRequirement{"strict": required}
	m.Rules = append([]*jwtv3.RequirementRule{
		{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/healthz"}}},
		{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}},
			RequirementType: &jwtv3.RequirementRule_RequirementName{RequirementName: "strict"}},
	}, m.Rules...)
	c := mustParse(t, m)
	for _, tc := range []struct {
		path string
		want Status
	}{
		{"/healthz", StatusOK}, {"/api", StatusMissing}, {"/api/v1?x=1", StatusMissing}, {"/apix", StatusOK}, {"/other", StatusOK},
	} {
		if o := c.Authenticate(request(tc.path), testNow); o.Status != tc.want {
			t.Errorf("%s: %q, want %q", tc.path, o.Status, tc.want)
		}
	}
}
