package generate

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	security "istio.io/api/security/v1beta1"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// AuthorizationPolicy becomes Envoy RBAC exactly as istiod builds it
// (pilot/pkg/security/authz): one RBAC filter per action, in the order
// CUSTOM, DENY, ALLOW, AUDIT; one RBAC policy per rule, named
// ns[NS]-policy[NAME]-rule[I]; policies annotated istio.io/dry-run go to
// shadow_rules; TCP filter chains get network RBAC where an HTTP-only field
// makes an ALLOW rule match nothing and is ignored in a DENY or AUDIT rule.
const (
	rbacHTTPFilterName    = "envoy.filters.http.rbac"
	rbacNetworkFilterName = "envoy.filters.network.rbac"
	dryRunAnnotation      = "istio.io/dry-run"
	gatewayNameLabel      = "gateway.networking.k8s.io/gateway-name"
)

// authzPolicy is one AuthorizationPolicy that applies to the proxy.
type authzPolicy struct {
	ns, name string
	spec     *security.AuthorizationPolicy
	dryRun   bool
}

// authzPolicies returns the AuthorizationPolicies that apply to the proxy,
// sorted by namespace and name: those in the root namespace and the proxy's
// namespace whose selector (none: all) matches its labels, and for gateway
// proxies those whose targetRef(s) name its Gateway.
func (g *gen) authzPolicies() []authzPolicy {
	if g.pc.Config == nil || g.grpc {
		return nil
	}
	var out []authzPolicy
	for _, r := range g.pc.Config.List(config.AuthorizationPolicy) {
		ap, ok := r.Spec.(*security.AuthorizationPolicy)
		if !ok || !g.authzApplies(r.Namespace, ap) {
			continue
		}
		out = append(out, authzPolicy{ns: r.Namespace, name: r.Name, spec: ap, dryRun: r.Annotations[dryRunAnnotation] == "true"})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ns != out[j].ns {
			return out[i].ns < out[j].ns
		}
		return out[i].name < out[j].name
	})
	return out
}

func (g *gen) authzApplies(ns string, ap *security.AuthorizationPolicy) bool {
	refs := ap.GetTargetRefs()
	if ap.GetTargetRef() != nil {
		refs = append(refs, ap.GetTargetRef())
	}
	if len(refs) > 0 {
		if ns != g.p.Namespace {
			return false
		}
		for _, r := range refs {
			if r.GetKind() == "Gateway" && r.GetGroup() == "gateway.networking.k8s.io" &&
				g.p.Type == model.Router && g.p.Labels[gatewayNameLabel] == r.GetName() {
				return true
			}
		}
		return false
	}
	if ns != g.p.Namespace && ns != g.pc.Mesh.RootNamespace {
		return false
	}
	return model.LabelsMatch(ap.GetSelector().GetMatchLabels(), g.p.Labels)
}

// rbacSet collects the enforced and dry-run policies of one action.
type rbacSet struct {
	action         rbacv3.RBAC_Action
	custom         bool // CUSTOM: shadow rules selecting ext_authz (extauthz.go)
	enforced       bool // some policy of this action is enforced (an ALLOW with no rule denies all)
	rules, shadow  map[string]*rbacv3.Policy
	hasShadowAllow bool
}

// authzFilters builds the RBAC configs of the proxy's policies for HTTP
// (forTCP false) or TCP chains, in Istio's order.
func (g *gen) authzFilters(policies []authzPolicy, forTCP bool) []*rbacSet {
	sets := map[security.AuthorizationPolicy_Action]*rbacSet{}
	order := []security.AuthorizationPolicy_Action{security.AuthorizationPolicy_CUSTOM, security.AuthorizationPolicy_DENY,
		security.AuthorizationPolicy_ALLOW, security.AuthorizationPolicy_AUDIT}
	for _, p := range policies {
		act := p.spec.GetAction()
		s := sets[act]
		if s == nil {
			s = &rbacSet{rules: map[string]*rbacv3.Policy{}, shadow: map[string]*rbacv3.Policy{}}
			switch act {
			case security.AuthorizationPolicy_ALLOW:
				s.action = rbacv3.RBAC_ALLOW
			case security.AuthorizationPolicy_AUDIT:
				s.action = rbacv3.RBAC_LOG
			default:
				// DENY, and CUSTOM: customHTTPFilters and
				// customNetworkFilters make these the shadow rules that
				// select ext_authz (an HTTP-only field is ignored on TCP:
				// the rule selects more connections, as in istiod).
				s.action = rbacv3.RBAC_DENY
				s.custom = act == security.AuthorizationPolicy_CUSTOM
			}
			sets[act] = s
		}
		target := s.rules
		if p.dryRun {
			target = s.shadow
		} else {
			s.enforced = true
		}
		prefix := ""
		if act == security.AuthorizationPolicy_CUSTOM {
			prefix = "istio-ext-authz-"
		}
		for i, r := range p.spec.GetRules() {
			pol, ok := rulePolicy(r, g.trustDomain(), forTCP, act)
			if !ok {
				continue
			}
			target[fmt.Sprintf("%sns[%s]-policy[%s]-rule[%d]", prefix, p.ns, p.name, i)] = pol
		}
	}
	var out []*rbacSet
	for _, a := range order {
		if s := sets[a]; s != nil {
			out = append(out, s)
		}
	}
	return out
}

func (g *gen) trustDomain() string { return g.pc.Mesh.TrustDomain }

func (s *rbacSet) httpFilter() *hcmv3.HttpFilter {
	cfg := &rbachttpv3.RBAC{}
	if s.enforced {
		cfg.Rules = &rbacv3.RBAC{Action: s.action, Policies: s.rules}
	}
	if len(s.shadow) > 0 {
		cfg.ShadowRules = &rbacv3.RBAC{Action: s.action, Policies: s.shadow}
		cfg.ShadowRulesStatPrefix = dryRunPrefix(s.action)
	}
	if cfg.Rules == nil && cfg.ShadowRules == nil {
		return nil
	}
	return httpFilter(rbacHTTPFilterName, toAny(cfg))
}

func (s *rbacSet) networkFilter() *listenerv3.Filter {
	cfg := &rbacnetv3.RBAC{StatPrefix: "tcp."}
	if s.enforced {
		cfg.Rules = &rbacv3.RBAC{Action: s.action, Policies: s.rules}
	}
	if len(s.shadow) > 0 {
		cfg.ShadowRules = &rbacv3.RBAC{Action: s.action, Policies: s.shadow}
		cfg.ShadowRulesStatPrefix = dryRunPrefix(s.action)
	}
	if cfg.Rules == nil && cfg.ShadowRules == nil {
		return nil
	}
	return &listenerv3.Filter{Name: rbacNetworkFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(cfg)}}
}

func dryRunPrefix(a rbacv3.RBAC_Action) string {
	if a == rbacv3.RBAC_ALLOW {
		return "istio_dry_run_allow_"
	}
	return "istio_dry_run_deny_"
}

// errHTTPOnly marks a field that has no meaning for TCP.
type errHTTPOnly struct{ field string }

func (e errHTTPOnly) Error() string { return e.field + " is HTTP-only" }

// rulePolicy translates one rule. ok is false when the rule must be left
// out (an ALLOW rule with HTTP-only fields on TCP).
func rulePolicy(r *security.Rule, td string, forTCP bool, act security.AuthorizationPolicy_Action) (*rbacv3.Policy, bool) {
	if r == nil {
		return nil, false
	}
	allow := act == security.AuthorizationPolicy_ALLOW
	var perms []*rbacv3.Permission
	var whenPerms []*rbacv3.Permission
	var whenIDs []*rbacv3.Principal
	for _, c := range r.GetWhen() {
		p, id, err := condition(c, td, forTCP)
		if err != nil {
			if allow {
				return nil, false
			}
			continue
		}
		if p != nil {
			whenPerms = append(whenPerms, p)
		}
		if id != nil {
			whenIDs = append(whenIDs, id)
		}
	}
	for _, to := range r.GetTo() {
		fields, err := operation(to.GetOperation(), forTCP, allow)
		if err != nil {
			return nil, false
		}
		perms = append(perms, andPerms(append(fields, whenPerms...)))
	}
	if len(r.GetTo()) == 0 {
		perms = []*rbacv3.Permission{andPerms(whenPerms)}
	}
	var ids []*rbacv3.Principal
	for _, from := range r.GetFrom() {
		fields, err := source(from.GetSource(), td, forTCP, allow)
		if err != nil {
			return nil, false
		}
		ids = append(ids, andIDs(append(fields, whenIDs...)))
	}
	if len(r.GetFrom()) == 0 {
		ids = []*rbacv3.Principal{andIDs(whenIDs)}
	}
	return &rbacv3.Policy{Permissions: perms, Principals: ids}, true
}

func andPerms(ps []*rbacv3.Permission) *rbacv3.Permission {
	if len(ps) == 0 {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func orPerms(ps []*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func notPerm(p *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
}

func andIDs(ids []*rbacv3.Principal) *rbacv3.Principal {
	if len(ids) == 0 {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ids}}}
}

func orIDs(ids []*rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ids}}}
}

func notID(p *rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: p}}
}

// permField and idField translate the values (or notValues) of one field
// of a rule into permissions or principals (see valueField).
func permField(fields *[]*rbacv3.Permission, vals, notVals []string, httpOnly, forTCP, allow bool, name string,
	conv func(string) (*rbacv3.Permission, error)) error {
	return valueField(fields, vals, notVals, httpOnly, forTCP, allow, name, conv, orPerms, notPerm)
}

func idField(fields *[]*rbacv3.Principal, vals, notVals []string, httpOnly, forTCP, allow bool, name string,
	conv func(string) (*rbacv3.Principal, error)) error {
	return valueField(fields, vals, notVals, httpOnly, forTCP, allow, name, conv, orIDs, notID)
}

// valueField appends OR of vals and NOT(OR) of notVals to fields (ANDed by
// the caller). An HTTP-only field on TCP is an error for ALLOW rules and
// skipped otherwise.
func valueField[T any](fields *[]T, vals, notVals []string, httpOnly, forTCP, allow bool, name string,
	conv func(string) (T, error), or func([]T) T, not func(T) T) error {
	if len(vals) == 0 && len(notVals) == 0 {
		return nil
	}
	if httpOnly && forTCP {
		if allow {
			return errHTTPOnly{name}
		}
		return nil
	}
	build := func(vs []string) (T, error) {
		var set []T
		for _, v := range vs {
			p, err := conv(v)
			if err != nil {
				var zero T
				return zero, err
			}
			set = append(set, p)
		}
		if len(set) == 1 {
			return set[0], nil
		}
		return or(set), nil
	}
	if len(vals) > 0 {
		p, err := build(vals)
		if err != nil {
			return err
		}
		*fields = append(*fields, p)
	}
	if len(notVals) > 0 {
		p, err := build(notVals)
		if err != nil {
			return err
		}
		*fields = append(*fields, not(p))
	}
	return nil
}

func operation(o *security.Operation, forTCP, allow bool) ([]*rbacv3.Permission, error) {
	var f []*rbacv3.Permission
	if err := permField(&f, o.GetHosts(), o.GetNotHosts(), true, forTCP, allow, "hosts", hostPerm); err != nil {
		return nil, err
	}
	if err := permField(&f, o.GetPorts(), o.GetNotPorts(), false, forTCP, allow, "ports", portPerm); err != nil {
		return nil, err
	}
	if err := permField(&f, o.GetMethods(), o.GetNotMethods(), true, forTCP, allow, "methods", func(v string) (*rbacv3.Permission, error) {
		return headerPerm(":method", v), nil
	}); err != nil {
		return nil, err
	}
	if err := permField(&f, o.GetPaths(), o.GetNotPaths(), true, forTCP, allow, "paths", pathPerm); err != nil {
		return nil, err
	}
	return f, nil
}

func source(s *security.Source, td string, forTCP, allow bool) ([]*rbacv3.Principal, error) {
	var f []*rbacv3.Principal
	if err := idField(&f, s.GetPrincipals(), s.GetNotPrincipals(), false, forTCP, allow, "principals", func(v string) (*rbacv3.Principal, error) {
		return authnID(principalMatcher(v)), nil
	}); err != nil {
		return nil, err
	}
	if err := idField(&f, s.GetRequestPrincipals(), s.GetNotRequestPrincipals(), true, forTCP, allow, "requestPrincipals", func(v string) (*rbacv3.Principal, error) {
		return authnMeta("request.auth.principal", authzMatcher(v), false), nil
	}); err != nil {
		return nil, err
	}
	if err := idField(&f, s.GetNamespaces(), s.GetNotNamespaces(), false, forTCP, allow, "namespaces", func(v string) (*rbacv3.Principal, error) {
		return authnID(namespaceMatcher(v)), nil
	}); err != nil {
		return nil, err
	}
	if err := idField(&f, s.GetServiceAccounts(), s.GetNotServiceAccounts(), false, forTCP, allow, "serviceAccounts", func(v string) (*rbacv3.Principal, error) {
		ns, sa, ok := strings.Cut(v, "/")
		if !ok || ns == "" || sa == "" {
			return nil, fmt.Errorf("serviceAccounts %q: want NAMESPACE/NAME", v)
		}
		return authnID(authzRegex("spiffe://[^/]+/ns/" + regexp.QuoteMeta(ns) + "/sa/" + regexp.QuoteMeta(sa))), nil
	}); err != nil {
		return nil, err
	}
	if err := idField(&f, s.GetIpBlocks(), s.GetNotIpBlocks(), false, forTCP, allow, "ipBlocks", func(v string) (*rbacv3.Principal, error) {
		c, err := cidrRange(v)
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: c}}, err
	}); err != nil {
		return nil, err
	}
	if err := idField(&f, s.GetRemoteIpBlocks(), s.GetNotRemoteIpBlocks(), false, forTCP, allow, "remoteIpBlocks", func(v string) (*rbacv3.Principal, error) {
		c, err := cidrRange(v)
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: c}}, err
	}); err != nil {
		return nil, err
	}
	_ = td
	return f, nil
}

// condition translates one `when` condition into a permission or a
// principal (Istio's split: destination and connection keys are
// permissions, the rest principals).
func condition(c *security.Condition, td string, forTCP bool) (*rbacv3.Permission, *rbacv3.Principal, error) {
	key := c.GetKey()
	vals, notVals := c.GetValues(), c.GetNotValues()
	var perms []*rbacv3.Permission
	var ids []*rbacv3.Principal
	permOf := func(httpOnly bool, conv func(string) (*rbacv3.Permission, error)) error {
		if httpOnly && forTCP {
			return errHTTPOnly{key}
		}
		return permField(&perms, vals, notVals, false, false, false, key, conv)
	}
	idOf := func(httpOnly bool, conv func(string) (*rbacv3.Principal, error)) error {
		if httpOnly && forTCP {
			return errHTTPOnly{key}
		}
		return idField(&ids, vals, notVals, false, false, false, key, conv)
	}
	var err error
	switch {
	case strings.HasPrefix(key, "request.headers[") && strings.HasSuffix(key, "]"):
		name := key[len("request.headers[") : len(key)-1]
		err = idOf(true, func(v string) (*rbacv3.Principal, error) {
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_Header{Header: authzHeader(name, v)}}, nil
		})
	case key == "source.ip":
		err = idOf(false, func(v string) (*rbacv3.Principal, error) {
			c, err := cidrRange(v)
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: c}}, err
		})
	case key == "remote.ip":
		err = idOf(false, func(v string) (*rbacv3.Principal, error) {
			c, err := cidrRange(v)
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: c}}, err
		})
	case key == "source.namespace":
		err = idOf(false, func(v string) (*rbacv3.Principal, error) { return authnID(namespaceMatcher(v)), nil })
	case key == "source.principal":
		err = idOf(false, func(v string) (*rbacv3.Principal, error) { return authnID(principalMatcher(v)), nil })
	case key == "request.auth.principal", key == "request.auth.audiences", key == "request.auth.presenter":
		err = idOf(true, func(v string) (*rbacv3.Principal, error) { return authnMeta(key, authzMatcher(v), false), nil })
	case strings.HasPrefix(key, "request.auth.claims["):
		path, perr := claimPath(key)
		if perr != nil {
			return nil, nil, perr
		}
		err = idOf(true, func(v string) (*rbacv3.Principal, error) { return claimMeta(path, v), nil })
	case key == "destination.ip":
		err = permOf(false, func(v string) (*rbacv3.Permission, error) {
			c, err := cidrRange(v)
			return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: c}}, err
		})
	case key == "destination.port":
		err = permOf(false, portPerm)
	case key == "connection.sni":
		err = permOf(false, func(v string) (*rbacv3.Permission, error) {
			return &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: authzMatcher(v)}}, nil
		})
	case strings.HasPrefix(key, "experimental.envoy.filters."):
		filterName, sub, ok := strings.Cut(strings.TrimPrefix(key, "experimental."), "[")
		if !ok || !strings.HasSuffix(sub, "]") {
			return nil, nil, fmt.Errorf("when key %q: want experimental.envoy.filters.NAME[KEY]", key)
		}
		sub = sub[:len(sub)-1]
		err = permOf(false, func(v string) (*rbacv3.Permission, error) {
			return &rbacv3.Permission{Rule: &rbacv3.Permission_Metadata{Metadata: metaMatcher(filterName, []string{sub}, listOf(authzMatcher(v)))}}, nil
		})
	default:
		return nil, nil, fmt.Errorf("when key %q: unknown", key)
	}
	if err != nil {
		return nil, nil, err
	}
	var p *rbacv3.Permission
	var id *rbacv3.Principal
	if len(perms) > 0 {
		p = andPerms(perms)
	}
	if len(ids) > 0 {
		id = andIDs(ids)
	}
	return p, id, nil
}

// claimPath parses request.auth.claims[a][b] into ["a","b"].
func claimPath(key string) ([]string, error) {
	rest := strings.TrimPrefix(key, "request.auth.claims")
	var out []string
	for rest != "" {
		if rest[0] != '[' {
			return nil, fmt.Errorf("when key %q: bad claim path", key)
		}
		end := strings.IndexByte(rest, ']')
		if end < 2 {
			return nil, fmt.Errorf("when key %q: bad claim path", key)
		}
		out = append(out, rest[1:end])
		rest = rest[end+1:]
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("when key %q: no claim", key)
	}
	return out, nil
}

// stringMatcher is Istio's value convention: "*" any non-empty value,
// "*x" suffix, "x*" prefix, otherwise exact.
func authzMatcher(v string) *matcherv3.StringMatcher {
	return authzMatcherWithPrefix(v, "")
}

func authzMatcherWithPrefix(v, prefix string) *matcherv3.StringMatcher {
	switch {
	case v == "*":
		return authzRegex(".+")
	case strings.HasPrefix(v, "*"):
		if prefix == "" {
			return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: v[1:]}}
		}
		return authzRegex(regexp.QuoteMeta(prefix) + ".*" + regexp.QuoteMeta(v[1:]))
	case strings.HasSuffix(v, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: prefix + v[:len(v)-1]}}
	default:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: prefix + v}}
	}
}

func authzRegex(re string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}}
}

func principalMatcher(v string) *matcherv3.StringMatcher {
	return authzMatcherWithPrefix(v, "spiffe://")
}

func namespaceMatcher(v string) *matcherv3.StringMatcher {
	return authzRegex(".*/ns/" + strings.ReplaceAll(regexp.QuoteMeta(v), `\*`, ".*") + "/.*")
}

func authnID(m *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m}}}
}

func metaMatcher(filter string, path []string, v *matcherv3.ValueMatcher) *matcherv3.MetadataMatcher {
	m := &matcherv3.MetadataMatcher{Filter: filter, Value: v}
	for _, p := range path {
		m.Path = append(m.Path, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: p}})
	}
	return m
}

func listOf(m *matcherv3.StringMatcher) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
		MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: m}}}}}}
}

func authnMeta(key string, m *matcherv3.StringMatcher, _ bool) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: metaMatcher("istio_authn", []string{key},
		&matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: m}})}}
}

func claimMeta(path []string, v string) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: metaMatcher("istio_authn",
		append([]string{"request.auth.claims"}, path...), listOf(authzMatcher(v)))}}
}

func authzHeader(name, v string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: authzMatcher(v)}}
}

func headerPerm(name, v string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: authzHeader(name, v)}}
}

// hostPerm matches :authority case-insensitively; a host without a port
// also matches with any port.
func hostPerm(v string) (*rbacv3.Permission, error) {
	var re string
	switch {
	case v == "*":
		re = ".+"
	case strings.HasPrefix(v, "*"):
		re = ".*" + regexp.QuoteMeta(v[1:])
	case strings.HasSuffix(v, "*"):
		re = regexp.QuoteMeta(v[:len(v)-1]) + ".*"
	default:
		re = regexp.QuoteMeta(v)
	}
	if _, _, err := splitPort(v); err != nil && v != "*" {
		re += "(:[0-9]+)?"
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: ":authority",
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "(?i)" + re}}}}}}}, nil
}

func splitPort(h string) (string, int, error) {
	i := strings.LastIndexByte(h, ':')
	if i < 0 || strings.HasSuffix(h, "]") {
		return h, 0, fmt.Errorf("no port")
	}
	n, err := strconv.Atoi(h[i+1:])
	return h[:i], n, err
}

func portPerm(v string) (*rbacv3.Permission, error) {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return nil, fmt.Errorf("port %q: invalid", v)
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(n)}}, nil
}

func pathPerm(v string) (*rbacv3.Permission, error) {
	if strings.Contains(v, "{") {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_UriTemplate{UriTemplate: &corev3.TypedExtensionConfig{
			Name: "uri-template", TypedConfig: toAny(&uritemplatev3.UriTemplateMatchConfig{PathTemplate: v})}}}, nil
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
		Rule: &matcherv3.PathMatcher_Path{Path: authzMatcher(v)}}}}, nil
}

func cidrRange(v string) (*corev3.CidrRange, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("ip block %q: %w", v, err)
		}
		return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return nil, fmt.Errorf("ip %q: %w", v, err)
	}
	return &corev3.CidrRange{AddressPrefix: a.String(), PrefixLen: wrapperspb.UInt32(uint32(a.BitLen()))}, nil
}
