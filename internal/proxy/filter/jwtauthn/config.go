// Package jwtauthn is mast-proxy's envoy.filters.http.jwt_authn: it finds
// JWTs in a request where the configuration says, verifies them against
// the providers' public keys (go-jose), and enforces the configured
// requirements, answering 401/403 as Envoy does. Verified identities are
// handed to later filters (RBAC's requestPrincipals and request.auth.*).
package jwtauthn

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// FilterName is the filter's name in an HCM's http_filters.
const FilterName = "envoy.filters.http.jwt_authn"

// defaultClockSkew is Envoy's default for clock_skew_seconds.
const defaultClockSkew = 60

// Config is a parsed JwtAuthentication: immutable, shared by every request
// of the listener that carries it.
type Config struct {
	providers    map[string]*Provider
	ordered      []*Provider // by name, for allow_missing's issuer lookup
	rules        []rule
	bypassCORS   bool
	stripFailure bool
	// sanitize are the headers a verified token may write; they are removed
	// from every request first so that a client cannot forge them.
	sanitize []string
}

// Provider is one parsed JwtProvider.
type Provider struct {
	Name              string
	Issuer            string
	audiences         []string // normalized
	forward           bool
	headers           []headerLocation
	params            []string
	cookies           []string
	payloadHeader     string
	padPayloadHeader  bool
	PayloadInMetadata string
	clockSkew         int64
	claimHeaders      []claimHeader
	requireExp        bool
	keys              *KeySet
	cache             tokenCache
}

type headerLocation struct {
	name   string // lower-case
	prefix string
}

type claimHeader struct {
	header string // lower-case
	path   []string
}

type rule struct {
	match pathMatch
	req   *requirement // nil: no requirement
}

type pathMatch struct {
	prefix, exact, separated string
	re                       *regexp.Regexp
	kind                     uint8
	caseInsensitive          bool
}

const (
	matchPrefix uint8 = iota
	matchExact
	matchSeparatedPrefix
	matchRegex
)

type reqKind uint8

const (
	reqAllowAll reqKind = iota
	reqProvider
	reqAny
	reqAll
	reqAllowMissing
	reqAllowMissingOrFailed
)

type requirement struct {
	kind      reqKind
	provider  *Provider
	audiences []string // provider_and_audiences, normalized; nil: the provider's
	children  []*requirement
	// For requires_any: whether allow_missing / allow_missing_or_failed was
	// one of the alternatives.
	allowMissing, allowMissingOrFailed bool
}

// Field numbers of envoy.extensions.filters.http.jwt_authn.v3 messages
// and of the route match and data source they hold.
const (
	jaProviders      = 1 // JwtAuthentication
	jaRules          = 2
	jaFilterState    = 3
	jaBypassCORS     = 4
	jaRequirementMap = 5
	jaStripFailure   = 6

	fsName     = 1 // FilterStateRule
	fsRequires = 3

	ruleMatch    = 1 // RequirementRule
	ruleRequires = 2
	ruleReqName  = 3

	pvIssuer          = 1 // JwtProvider
	pvAudiences       = 2
	pvRemoteJwks      = 3
	pvLocalJwks       = 4
	pvForward         = 5
	pvFromHeaders     = 6
	pvFromParams      = 7
	pvPayloadHeader   = 8
	pvPayloadMeta     = 9
	pvClockSkew       = 10
	pvPadPayload      = 11
	pvCacheConfig     = 12
	pvFromCookies     = 13
	pvHeaderMeta      = 14
	pvClaimToHeaders  = 15
	pvFailedMeta      = 16
	pvClearRouteCache = 17
	pvNormalize       = 18
	pvSubjects        = 19
	pvRequireExp      = 20
	pvMaxLifetime     = 21

	jhName   = 1 // JwtHeader
	jhPrefix = 2

	chHeader = 1 // JwtClaimToHeader
	chName   = 2
	chPath   = 3
	segKey   = 1

	dsFilename = 1 // core.v3.DataSource
	dsBytes    = 2
	dsString   = 3
	dsEnv      = 4

	jrProvider         = 1 // JwtRequirement
	jrProviderAud      = 2
	jrAny              = 3
	jrAll              = 4
	jrAllowMissingFail = 5
	jrAllowMissing     = 6
	jrExtractOnly      = 7
	listRequirements   = 1 // JwtRequirementOrList, JwtRequirementAndList
	paProvider         = 1 // ProviderWithAudiences
	paAudiences        = 2

	rmPrefix          = 1 // route.v3.RouteMatch
	rmPath            = 2
	rmCaseSensitive   = 4
	rmHeaders         = 6
	rmQuery           = 7
	rmGrpc            = 8
	rmRuntimeFraction = 9
	rmSafeRegex       = 10
	rmTLSContext      = 11
	rmConnect         = 12
	rmDynamicMeta     = 13
	rmSeparatedPrefix = 14
	rmPathPolicy      = 15
	rmFilterState     = 16
	rmCookies         = 17
	regexRegex        = 2 // RegexMatcher
	boolValue         = 1 // google.protobuf.BoolValue
)

// ParseAny parses a typed_config of the jwt_authn filter.
func ParseAny(a *anypb.Any) (*Config, error) {
	return Parse(a.GetValue())
}

// Parse decodes a JwtAuthentication from its wire bytes, validates it and
// compiles it. Every field this filter does not honour is an error naming
// it.
func Parse(b []byte) (*Config, error) {
	m, err := pbwire.Decode(wireTable, wireJwtAuthentication, b)
	if err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	if fs := m.Sub(jaFilterState); fs.Has(fsRequires) || fs.Str(fsName) != "" {
		return nil, fmt.Errorf("filter_state_rules: not supported")
	}
	c := &Config{
		providers:    map[string]*Provider{},
		bypassCORS:   m.Bool(jaBypassCORS),
		stripFailure: m.Bool(jaStripFailure),
	}
	pnames, pvals := m.Map(jaProviders)
	seen := map[string]bool{}
	for _, i := range sortedIndex(pnames) {
		n := pnames[i]
		p, err := parseProvider(n, pvals[i])
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
	rnames, rvals := m.Map(jaRequirementMap)
	for _, i := range sortedIndex(rnames) {
		req, err := c.parseRequirement(rvals[i], 0)
		if err != nil {
			return nil, fmt.Errorf("requirement_map[%q]: %w", rnames[i], err)
		}
		reqMap[rnames[i]] = req
	}
	for i, r := range m.Subs(jaRules) {
		pm, err := parsePathMatch(r.Sub(ruleMatch))
		if err != nil {
			return nil, fmt.Errorf("rules[%d].match: %w", i, err)
		}
		ru := rule{match: pm}
		switch r.Oneof(ruleRequires, ruleReqName) {
		case ruleRequires:
			if ru.req, err = c.parseRequirement(r.Sub(ruleRequires), 0); err != nil {
				return nil, fmt.Errorf("rules[%d].requires: %w", i, err)
			}
		case ruleReqName:
			name := r.Str(ruleReqName)
			req, ok := reqMap[name]
			if !ok {
				return nil, fmt.Errorf("rules[%d].requirement_name: %q is not in requirement_map", i, name)
			}
			ru.req = req
		}
		c.rules = append(c.rules, ru)
	}
	return c, nil
}

// sortedIndex returns the indexes of names in name order.
func sortedIndex(names []string) []int {
	idx := make([]int, len(names))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return names[idx[a]] < names[idx[b]] })
	return idx
}

func parseProvider(name string, p *pbwire.Msg) (*Provider, error) {
	switch {
	case p.Has(pvSubjects):
		return nil, fmt.Errorf("subjects: not supported")
	case p.Has(pvNormalize):
		return nil, fmt.Errorf("normalize_payload_in_metadata: not supported")
	case p.Str(pvHeaderMeta) != "":
		return nil, fmt.Errorf("header_in_metadata: not supported")
	case p.Str(pvFailedMeta) != "":
		return nil, fmt.Errorf("failed_status_in_metadata: not supported")
	case p.Has(pvCacheConfig):
		return nil, fmt.Errorf("jwt_cache_config: not supported")
	case p.Has(pvMaxLifetime):
		return nil, fmt.Errorf("max_lifetime: not supported")
	case p.Bool(pvClearRouteCache):
		return nil, fmt.Errorf("clear_route_cache: not supported (claim_to_headers never changes the chosen route)")
	}
	out := &Provider{
		Name:              name,
		Issuer:            p.Str(pvIssuer),
		forward:           p.Bool(pvForward),
		params:            p.Strs(pvFromParams),
		cookies:           p.Strs(pvFromCookies),
		payloadHeader:     strings.ToLower(p.Str(pvPayloadHeader)),
		padPayloadHeader:  p.Bool(pvPadPayload),
		PayloadInMetadata: p.Str(pvPayloadMeta),
		clockSkew:         defaultClockSkew,
		requireExp:        p.Bool(pvRequireExp),
	}
	if s := p.U32(pvClockSkew); s != 0 {
		out.clockSkew = int64(s)
	}
	for _, a := range p.Strs(pvAudiences) {
		out.audiences = append(out.audiences, normalizeAudience(a))
	}
	for i, h := range p.Subs(pvFromHeaders) {
		if h.Str(jhName) == "" {
			return nil, fmt.Errorf("from_headers[%d].name: empty", i)
		}
		out.headers = append(out.headers, headerLocation{name: strings.ToLower(h.Str(jhName)), prefix: h.Str(jhPrefix)})
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
	for i, ch := range p.Subs(pvClaimToHeaders) {
		if ch.Str(chHeader) == "" {
			return nil, fmt.Errorf("claim_to_headers[%d].header_name: empty", i)
		}
		var path []string
		switch {
		case ch.Has(chPath):
			for _, s := range ch.Subs(chPath) {
				path = append(path, s.Str(segKey))
			}
		case ch.Str(chName) != "":
			path = strings.Split(ch.Str(chName), ".")
		default:
			return nil, fmt.Errorf("claim_to_headers[%d]: claim_name or claim_path is required", i)
		}
		out.claimHeaders = append(out.claimHeaders, claimHeader{header: strings.ToLower(ch.Str(chHeader)), path: path})
	}
	switch p.Oneof(pvLocalJwks, pvRemoteJwks) {
	case pvLocalJwks:
		doc, err := dataSource(p.Sub(pvLocalJwks))
		if err != nil {
			return nil, fmt.Errorf("local_jwks: %w", err)
		}
		if out.keys, err = ParseJWKS(doc); err != nil {
			return nil, fmt.Errorf("local_jwks: %w", err)
		}
	case pvRemoteJwks:
		return nil, fmt.Errorf("remote_jwks: not supported by mast-proxy; mastd fetches jwksUri and sends the keys inline as local_jwks, as istiod does by default")
	default:
		return nil, fmt.Errorf("jwks_source_specifier: local_jwks or remote_jwks is required")
	}
	return out, nil
}

func dataSource(d *pbwire.Msg) ([]byte, error) {
	switch d.Oneof(dsString, dsBytes, dsFilename, dsEnv) {
	case dsString:
		return []byte(d.Str(dsString)), nil
	case dsBytes:
		return d.Bytes(dsBytes), nil
	case dsFilename:
		return nil, fmt.Errorf("filename: not supported (send the JWKS inline)")
	case dsEnv:
		return nil, fmt.Errorf("environment_variable: not supported (send the JWKS inline)")
	}
	return nil, fmt.Errorf("empty data source")
}

// sanitizeHeaders are the headers the provider writes after verification.
func (p *Provider) sanitizeHeaders() []string {
	var out []string
	if p.payloadHeader != "" {
		out = append(out, p.payloadHeader)
	}
	for _, ch := range p.claimHeaders {
		out = append(out, ch.header)
	}
	return out
}

// normalizeAudience strips a scheme and a trailing slash, so that
// "https://example.com/" and "example.com" are the same audience (as in
// jwt_verify_lib).
func normalizeAudience(a string) string {
	if i := strings.Index(a, "://"); i >= 0 {
		a = a[i+3:]
	}
	return strings.TrimSuffix(a, "/")
}

const maxRequirementDepth = 16

func (c *Config) parseRequirement(r *pbwire.Msg, depth int) (*requirement, error) {
	if depth > maxRequirementDepth {
		return nil, fmt.Errorf("nested more than %d deep", maxRequirementDepth)
	}
	switch r.Oneof(jrProvider, jrProviderAud, jrAny, jrAll, jrAllowMissingFail, jrAllowMissing, jrExtractOnly) {
	case 0:
		return &requirement{kind: reqAllowAll}, nil
	case jrProvider:
		name := r.Str(jrProvider)
		p, ok := c.providers[name]
		if !ok {
			return nil, fmt.Errorf("provider_name: %q is not configured", name)
		}
		return &requirement{kind: reqProvider, provider: p}, nil
	case jrProviderAud:
		pa := r.Sub(jrProviderAud)
		p, ok := c.providers[pa.Str(paProvider)]
		if !ok {
			return nil, fmt.Errorf("provider_and_audiences.provider_name: %q is not configured", pa.Str(paProvider))
		}
		req := &requirement{kind: reqProvider, provider: p, audiences: []string{}}
		for _, a := range pa.Strs(paAudiences) {
			req.audiences = append(req.audiences, normalizeAudience(a))
		}
		return req, nil
	case jrAny:
		req := &requirement{kind: reqAny}
		for i, ch := range r.Sub(jrAny).Subs(listRequirements) {
			switch ch.Oneof(jrAllowMissing, jrAllowMissingFail) {
			case jrAllowMissing:
				req.allowMissing = true
				continue
			case jrAllowMissingFail:
				req.allowMissingOrFailed = true
				continue
			}
			cr, err := c.parseRequirement(ch, depth+1)
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
	case jrAll:
		req := &requirement{kind: reqAll}
		for i, ch := range r.Sub(jrAll).Subs(listRequirements) {
			cr, err := c.parseRequirement(ch, depth+1)
			if err != nil {
				return nil, fmt.Errorf("requires_all.requirements[%d]: %w", i, err)
			}
			req.children = append(req.children, cr)
		}
		if len(req.children) == 0 {
			return nil, fmt.Errorf("requires_all: no requirements")
		}
		return req, nil
	case jrAllowMissing:
		return &requirement{kind: reqAllowMissing}, nil
	case jrAllowMissingFail:
		return &requirement{kind: reqAllowMissingOrFailed}, nil
	default: // jrExtractOnly
		return nil, fmt.Errorf("extract_only_without_validation: not supported")
	}
}

func parsePathMatch(m *pbwire.Msg) (pathMatch, error) {
	switch {
	case m == nil:
		return pathMatch{}, fmt.Errorf("required")
	case m.Has(rmHeaders):
		return pathMatch{}, fmt.Errorf("headers: not supported")
	case m.Has(rmQuery):
		return pathMatch{}, fmt.Errorf("query_parameters: not supported")
	case m.Has(rmCookies):
		return pathMatch{}, fmt.Errorf("cookies: not supported")
	case m.Has(rmGrpc):
		return pathMatch{}, fmt.Errorf("grpc: not supported")
	case m.Has(rmTLSContext):
		return pathMatch{}, fmt.Errorf("tls_context: not supported")
	case m.Has(rmDynamicMeta):
		return pathMatch{}, fmt.Errorf("dynamic_metadata: not supported")
	case m.Has(rmFilterState):
		return pathMatch{}, fmt.Errorf("filter_state: not supported")
	case m.Has(rmRuntimeFraction):
		return pathMatch{}, fmt.Errorf("runtime_fraction: not supported")
	}
	pm := pathMatch{caseInsensitive: m.Has(rmCaseSensitive) && !m.Sub(rmCaseSensitive).Bool(boolValue)}
	switch m.Oneof(rmPrefix, rmPath, rmSeparatedPrefix, rmSafeRegex, rmConnect, rmPathPolicy) {
	case rmPrefix:
		pm.kind, pm.prefix = matchPrefix, m.Str(rmPrefix)
	case rmPath:
		pm.kind, pm.exact = matchExact, m.Str(rmPath)
	case rmSeparatedPrefix:
		pm.kind, pm.separated = matchSeparatedPrefix, m.Str(rmSeparatedPrefix)
	case rmSafeRegex:
		re, err := regexp.Compile("^(?:" + m.Sub(rmSafeRegex).Str(regexRegex) + ")$")
		if err != nil {
			return pathMatch{}, fmt.Errorf("safe_regex: %w", err)
		}
		pm.kind, pm.re = matchRegex, re
	case rmConnect:
		return pathMatch{}, fmt.Errorf("connect_matcher: not supported")
	case rmPathPolicy:
		return pathMatch{}, fmt.Errorf("path_match_policy: not supported")
	default:
		return pathMatch{}, fmt.Errorf("path specifier: required")
	}
	return pm, nil
}

func (pm *pathMatch) matches(path string) bool {
	switch pm.kind {
	case matchPrefix:
		if pm.caseInsensitive {
			return len(path) >= len(pm.prefix) && strings.EqualFold(path[:len(pm.prefix)], pm.prefix)
		}
		return strings.HasPrefix(path, pm.prefix)
	case matchExact:
		if pm.caseInsensitive {
			return strings.EqualFold(path, pm.exact)
		}
		return path == pm.exact
	case matchSeparatedPrefix:
		s := pm.separated
		if pm.caseInsensitive {
			if len(path) < len(s) || !strings.EqualFold(path[:len(s)], s) {
				return false
			}
		} else if !strings.HasPrefix(path, s) {
			return false
		}
		return len(path) == len(s) || path[len(s)] == '/'
	case matchRegex:
		return pm.re.MatchString(path)
	}
	return false
}
