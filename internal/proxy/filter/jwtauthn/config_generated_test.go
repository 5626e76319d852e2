package jwtauthn

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// The generated decoder this package used before pbwire: the oracle of
// the wire decoder's differential tests.

// ParseAny parses a typed_config of the jwt_authn filter.
func parseAnyGenerated(a *anypb.Any) (*Config, error) {
	var m jwtv3.JwtAuthentication
	if err := a.UnmarshalTo(&m); err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	return parseGenerated(&m)
}

// Parse validates a JwtAuthentication and compiles it. Every field this
// filter does not honour is an error naming it.
func parseGenerated(m *jwtv3.JwtAuthentication) (*Config, error) {
	if len(m.GetFilterStateRules().GetRequires()) > 0 || m.GetFilterStateRules().GetName() != "" {
		return nil, fmt.Errorf("filter_state_rules: not supported")
	}
	c := &Config{
		providers:    map[string]*Provider{},
		bypassCORS:   m.GetBypassCorsPreflight(),
		stripFailure: m.GetStripFailureResponse(),
	}
	names := make([]string, 0, len(m.GetProviders()))
	for n := range m.GetProviders() {
		names = append(names, n)
	}
	sort.Strings(names)
	seen := map[string]bool{}
	for _, n := range names {
		p, err := parseProviderGenerated(n, m.GetProviders()[n])
		if err != nil {
			return nil, fmt.Errorf("providers[%q]: %w", n, err)
		}
		c.providers[n] = p
		c.ordered = append(c.ordered, p)
		for _, h := range p.sanitizeHeaders() {
			if !seen[h] {
				seen[h] = true
				c.sanitize = append(c.sanitize, h)
			}
		}
	}
	reqMap := map[string]*requirement{}
	reqNames := make([]string, 0, len(m.GetRequirementMap()))
	for n := range m.GetRequirementMap() {
		reqNames = append(reqNames, n)
	}
	sort.Strings(reqNames)
	for _, n := range reqNames {
		r := m.GetRequirementMap()[n]
		req, err := c.parseRequirementGenerated(r, 0)
		if err != nil {
			return nil, fmt.Errorf("requirement_map[%q]: %w", n, err)
		}
		reqMap[n] = req
	}
	for i, r := range m.GetRules() {
		pm, err := parsePathMatchGenerated(r.GetMatch())
		if err != nil {
			return nil, fmt.Errorf("rules[%d].match: %w", i, err)
		}
		ru := rule{match: pm}
		switch t := r.GetRequirementType().(type) {
		case nil:
		case *jwtv3.RequirementRule_Requires:
			if ru.req, err = c.parseRequirementGenerated(t.Requires, 0); err != nil {
				return nil, fmt.Errorf("rules[%d].requires: %w", i, err)
			}
		case *jwtv3.RequirementRule_RequirementName:
			req, ok := reqMap[t.RequirementName]
			if !ok {
				return nil, fmt.Errorf("rules[%d].requirement_name: %q is not in requirement_map", i, t.RequirementName)
			}
			ru.req = req
		}
		c.rules = append(c.rules, ru)
	}
	return c, nil
}

func parseProviderGenerated(name string, p *jwtv3.JwtProvider) (*Provider, error) {
	switch {
	case p.GetSubjects() != nil:
		return nil, fmt.Errorf("subjects: not supported")
	case p.GetNormalizePayloadInMetadata() != nil:
		return nil, fmt.Errorf("normalize_payload_in_metadata: not supported")
	case p.GetHeaderInMetadata() != "":
		return nil, fmt.Errorf("header_in_metadata: not supported")
	case p.GetFailedStatusInMetadata() != "":
		return nil, fmt.Errorf("failed_status_in_metadata: not supported")
	case p.GetJwtCacheConfig() != nil:
		return nil, fmt.Errorf("jwt_cache_config: not supported")
	case p.GetMaxLifetime() != nil:
		return nil, fmt.Errorf("max_lifetime: not supported")
	case p.GetClearRouteCache():
		return nil, fmt.Errorf("clear_route_cache: not supported (claim_to_headers never changes the chosen route)")
	}
	out := &Provider{
		Name:              name,
		Issuer:            p.GetIssuer(),
		forward:           p.GetForward(),
		params:            p.GetFromParams(),
		cookies:           p.GetFromCookies(),
		payloadHeader:     strings.ToLower(p.GetForwardPayloadHeader()),
		padPayloadHeader:  p.GetPadForwardPayloadHeader(),
		PayloadInMetadata: p.GetPayloadInMetadata(),
		clockSkew:         defaultClockSkew,
		requireExp:        p.GetRequireExpiration(),
	}
	if p.ClockSkewSeconds != 0 {
		out.clockSkew = int64(p.GetClockSkewSeconds())
	}
	for _, a := range p.GetAudiences() {
		out.audiences = append(out.audiences, normalizeAudience(a))
	}
	for i, h := range p.GetFromHeaders() {
		if h.GetName() == "" {
			return nil, fmt.Errorf("from_headers[%d].name: empty", i)
		}
		out.headers = append(out.headers, headerLocation{name: strings.ToLower(h.GetName()), prefix: h.GetValuePrefix()})
	}
	for i, n := range out.params {
		if n == "" {
			return nil, fmt.Errorf("from_params[%d]: empty", i)
		}
	}
	for i, n := range out.cookies {
		if n == "" {
			return nil, fmt.Errorf("from_cookies[%d]: empty", i)
		}
	}
	if len(out.headers) == 0 && len(out.params) == 0 && len(out.cookies) == 0 {
		// Envoy's default locations.
		out.headers = []headerLocation{{name: "authorization", prefix: "Bearer "}}
		out.params = []string{"access_token"}
	}
	for i, ch := range p.GetClaimToHeaders() {
		if ch.GetHeaderName() == "" {
			return nil, fmt.Errorf("claim_to_headers[%d].header_name: empty", i)
		}
		var path []string
		switch {
		case len(ch.GetClaimPath()) > 0:
			for _, s := range ch.GetClaimPath() {
				path = append(path, s.GetKey())
			}
		case ch.GetClaimName() != "":
			path = strings.Split(ch.GetClaimName(), ".")
		default:
			return nil, fmt.Errorf("claim_to_headers[%d]: claim_name or claim_path is required", i)
		}
		out.claimHeaders = append(out.claimHeaders, claimHeader{header: strings.ToLower(ch.GetHeaderName()), path: path})
	}
	switch src := p.GetJwksSourceSpecifier().(type) {
	case *jwtv3.JwtProvider_LocalJwks:
		doc, err := dataSourceGenerated(src.LocalJwks)
		if err != nil {
			return nil, fmt.Errorf("local_jwks: %w", err)
		}
		if out.keys, err = ParseJWKS(doc); err != nil {
			return nil, fmt.Errorf("local_jwks: %w", err)
		}
	case *jwtv3.JwtProvider_RemoteJwks:
		return nil, fmt.Errorf("remote_jwks: not supported by mast-proxy; mastd fetches jwksUri and sends the keys inline as local_jwks, as istiod does by default")
	default:
		return nil, fmt.Errorf("jwks_source_specifier: local_jwks or remote_jwks is required")
	}
	return out, nil
}

func dataSourceGenerated(d *corev3.DataSource) ([]byte, error) {
	switch s := d.GetSpecifier().(type) {
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *corev3.DataSource_Filename:
		return nil, fmt.Errorf("filename: not supported (send the JWKS inline)")
	case *corev3.DataSource_EnvironmentVariable:
		return nil, fmt.Errorf("environment_variable: not supported (send the JWKS inline)")
	}
	return nil, fmt.Errorf("empty data source")
}

func (c *Config) parseRequirementGenerated(r *jwtv3.JwtRequirement, depth int) (*requirement, error) {
	if depth > maxRequirementDepth {
		return nil, fmt.Errorf("nested more than %d deep", maxRequirementDepth)
	}
	switch t := r.GetRequiresType().(type) {
	case nil:
		return &requirement{kind: reqAllowAll}, nil
	case *jwtv3.JwtRequirement_ProviderName:
		p, ok := c.providers[t.ProviderName]
		if !ok {
			return nil, fmt.Errorf("provider_name: %q is not configured", t.ProviderName)
		}
		return &requirement{kind: reqProvider, provider: p}, nil
	case *jwtv3.JwtRequirement_ProviderAndAudiences:
		p, ok := c.providers[t.ProviderAndAudiences.GetProviderName()]
		if !ok {
			return nil, fmt.Errorf("provider_and_audiences.provider_name: %q is not configured", t.ProviderAndAudiences.GetProviderName())
		}
		req := &requirement{kind: reqProvider, provider: p, audiences: []string{}}
		for _, a := range t.ProviderAndAudiences.GetAudiences() {
			req.audiences = append(req.audiences, normalizeAudience(a))
		}
		return req, nil
	case *jwtv3.JwtRequirement_RequiresAny:
		req := &requirement{kind: reqAny}
		for i, ch := range t.RequiresAny.GetRequirements() {
			switch ch.GetRequiresType().(type) {
			case *jwtv3.JwtRequirement_AllowMissing:
				req.allowMissing = true
				continue
			case *jwtv3.JwtRequirement_AllowMissingOrFailed:
				req.allowMissingOrFailed = true
				continue
			}
			cr, err := c.parseRequirementGenerated(ch, depth+1)
			if err != nil {
				return nil, fmt.Errorf("requires_any.requirements[%d]: %w", i, err)
			}
			req.children = append(req.children, cr)
		}
		if len(req.children) == 0 {
			switch {
			case req.allowMissingOrFailed:
				return &requirement{kind: reqAllowMissingOrFailed}, nil
			case req.allowMissing:
				return &requirement{kind: reqAllowMissing}, nil
			}
			return nil, fmt.Errorf("requires_any: no requirements")
		}
		return req, nil
	case *jwtv3.JwtRequirement_RequiresAll:
		req := &requirement{kind: reqAll}
		for i, ch := range t.RequiresAll.GetRequirements() {
			cr, err := c.parseRequirementGenerated(ch, depth+1)
			if err != nil {
				return nil, fmt.Errorf("requires_all.requirements[%d]: %w", i, err)
			}
			req.children = append(req.children, cr)
		}
		if len(req.children) == 0 {
			return nil, fmt.Errorf("requires_all: no requirements")
		}
		return req, nil
	case *jwtv3.JwtRequirement_AllowMissing:
		return &requirement{kind: reqAllowMissing}, nil
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		return &requirement{kind: reqAllowMissingOrFailed}, nil
	case *jwtv3.JwtRequirement_ExtractOnlyWithoutValidation:
		return nil, fmt.Errorf("extract_only_without_validation: not supported")
	}
	return nil, fmt.Errorf("unknown requirement type")
}

func parsePathMatchGenerated(m *routev3.RouteMatch) (pathMatch, error) {
	switch {
	case m == nil:
		return pathMatch{}, fmt.Errorf("required")
	case len(m.GetHeaders()) > 0:
		return pathMatch{}, fmt.Errorf("headers: not supported")
	case len(m.GetQueryParameters()) > 0:
		return pathMatch{}, fmt.Errorf("query_parameters: not supported")
	case len(m.GetCookies()) > 0:
		return pathMatch{}, fmt.Errorf("cookies: not supported")
	case m.GetGrpc() != nil:
		return pathMatch{}, fmt.Errorf("grpc: not supported")
	case m.GetTlsContext() != nil:
		return pathMatch{}, fmt.Errorf("tls_context: not supported")
	case len(m.GetDynamicMetadata()) > 0:
		return pathMatch{}, fmt.Errorf("dynamic_metadata: not supported")
	case len(m.GetFilterState()) > 0:
		return pathMatch{}, fmt.Errorf("filter_state: not supported")
	case m.GetRuntimeFraction() != nil:
		return pathMatch{}, fmt.Errorf("runtime_fraction: not supported")
	}
	pm := pathMatch{caseInsensitive: m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue()}
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		pm.kind, pm.prefix = matchPrefix, p.Prefix
	case *routev3.RouteMatch_Path:
		pm.kind, pm.exact = matchExact, p.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		pm.kind, pm.separated = matchSeparatedPrefix, p.PathSeparatedPrefix
	case *routev3.RouteMatch_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return pathMatch{}, fmt.Errorf("safe_regex: %w", err)
		}
		pm.kind, pm.re = matchRegex, re
	case *routev3.RouteMatch_ConnectMatcher_:
		return pathMatch{}, fmt.Errorf("connect_matcher: not supported")
	case *routev3.RouteMatch_PathMatchPolicy:
		return pathMatch{}, fmt.Errorf("path_match_policy: not supported")
	default:
		return pathMatch{}, fmt.Errorf("path specifier: required")
	}
	return pm, nil
}
