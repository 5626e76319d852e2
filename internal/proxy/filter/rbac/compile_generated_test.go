package rbac

import (
	"fmt"

	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"sort"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/mast-mesh/mast/internal/proxy/match"
	"github.com/mast-mesh/mast/internal/proxy/match/matchgen"
)

// Compile compiles an RBAC config; anything it cannot enforce exactly is
// an error naming the field (the filter is NACKed: security fails closed).
func compileGenerated(r *rbacv3.RBAC) (*Engine, error) {
	if r == nil {
		return nil, nil
	}
	e := &Engine{}
	switch r.GetAction() {
	case rbacv3.RBAC_ALLOW:
		e.Action = Allow
	case rbacv3.RBAC_DENY:
		e.Action = Deny
	case rbacv3.RBAC_LOG:
		e.Action = Log
	default:
		return nil, fmt.Errorf("action %v: not supported", r.GetAction())
	}
	if r.GetAuditLoggingOptions() != nil {
		return nil, fmt.Errorf("audit_logging_options: not supported")
	}
	names := make([]string, 0, len(r.GetPolicies()))
	for n := range r.GetPolicies() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := r.GetPolicies()[n]
		cp := Policy{Name: n}
		if p.GetCondition() != nil || p.GetCheckedCondition() != nil || p.GetCelConfig() != nil {
			return nil, fmt.Errorf("policies[%s]: condition (CEL): not supported", n)
		}
		if len(p.GetPermissions()) == 0 || len(p.GetPrincipals()) == 0 {
			return nil, fmt.Errorf("policies[%s]: permissions and principals must not be empty", n)
		}
		for i, pm := range p.GetPermissions() {
			nd, err := permissionGenerated(pm)
			if err != nil {
				return nil, fmt.Errorf("policies[%s].permissions[%d]%w", n, i, err)
			}
			cp.Permissions = append(cp.Permissions, nd)
		}
		for i, pr := range p.GetPrincipals() {
			nd, err := principalGenerated(pr)
			if err != nil {
				return nil, fmt.Errorf("policies[%s].principals[%d]%w", n, i, err)
			}
			cp.Principals = append(cp.Principals, nd)
		}
		e.Policies = append(e.Policies, cp)
	}
	return e, nil
}

func permissionGenerated(p *rbacv3.Permission) (node, error) {
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		if !r.Any {
			return node{}, fieldErr("any", leafErr("false is not allowed"))
		}
		return node{kind: kAny}, nil
	case *rbacv3.Permission_AndRules:
		return permSetGenerated(kAnd, "and_rules", r.AndRules.GetRules())
	case *rbacv3.Permission_OrRules:
		return permSetGenerated(kOr, "or_rules", r.OrRules.GetRules())
	case *rbacv3.Permission_NotRule:
		k, err := permissionGenerated(r.NotRule)
		if err != nil {
			return node{}, fieldErr("not_rule", err)
		}
		return node{kind: kNot, kids: []node{k}}, nil
	case *rbacv3.Permission_Header:
		h, err := matchgen.ParseHeader(r.Header)
		if err != nil {
			return node{}, fieldErr("header", leafErr("%v", err))
		}
		return node{kind: kHeader, hdr: h}, nil
	case *rbacv3.Permission_UrlPath:
		s, err := pathMatcherGenerated(r.UrlPath)
		if err != nil {
			return node{}, fieldErr("url_path", err)
		}
		return node{kind: kPath, str: s, hasStr: true}, nil
	case *rbacv3.Permission_DestinationIp:
		c, err := cidr(r.DestinationIp.GetAddressPrefix(), r.DestinationIp.GetPrefixLen().GetValue(), r.DestinationIp.GetPrefixLen() != nil)
		if err != nil {
			return node{}, fieldErr("destination_ip", err)
		}
		return node{kind: kDestIP, cidr: c}, nil
	case *rbacv3.Permission_DestinationPort:
		if r.DestinationPort > 65535 {
			return node{}, fieldErr("destination_port", leafErr("%d: out of range", r.DestinationPort))
		}
		return node{kind: kDestPort, lo: r.DestinationPort}, nil
	case *rbacv3.Permission_DestinationPortRange:
		return node{kind: kDestRange, lo: uint32(r.DestinationPortRange.GetStart()), hi: uint32(r.DestinationPortRange.GetEnd())}, nil
	case *rbacv3.Permission_RequestedServerName:
		s, err := matchgen.ParseString(r.RequestedServerName)
		if err != nil {
			return node{}, fieldErr("requested_server_name", leafErr("%v", err))
		}
		return node{kind: kSNI, str: s, hasStr: true}, nil
	case *rbacv3.Permission_Metadata:
		m, err := metadataGenerated(r.Metadata)
		if err != nil {
			return node{}, fieldErr("metadata", err)
		}
		return node{kind: kMeta, meta: m}, nil
	case *rbacv3.Permission_UriTemplate:
		var cfg uritemplatev3.UriTemplateMatchConfig
		if tc := r.UriTemplate.GetTypedConfig(); !tc.MessageIs(&cfg) {
			return node{}, fieldErr("uri_template", leafErr("typed_config %q: not supported", tc.GetTypeUrl()))
		} else if err := tc.UnmarshalTo(&cfg); err != nil {
			return node{}, fieldErr("uri_template", leafErr("typed_config: not a valid UriTemplateMatchConfig"))
		}
		t, err := parseTemplate(cfg.GetPathTemplate())
		if err != nil {
			return node{}, fieldErr("uri_template.path_template", leafErr("%v", err))
		}
		return node{kind: kTemplate, tmpl: t}, nil
	case *rbacv3.Permission_Matcher:
		return node{}, fieldErr("matcher", leafErr("not supported"))
	case *rbacv3.Permission_SourcedMetadata:
		return node{}, fieldErr("sourced_metadata", leafErr("not supported"))
	default:
		return node{}, leafErr("rule: missing")
	}
}

func permSetGenerated(k kind, field string, rules []*rbacv3.Permission) (node, error) {
	n := node{kind: k}
	for i, r := range rules {
		c, err := permissionGenerated(r)
		if err != nil {
			return node{}, fieldErr(fmt.Sprintf("%s.rules[%d]", field, i), err)
		}
		n.kids = append(n.kids, c)
	}
	if len(n.kids) == 0 {
		return node{}, fieldErr(field, leafErr("empty"))
	}
	return n, nil
}

func principalGenerated(p *rbacv3.Principal) (node, error) {
	switch r := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		if !r.Any {
			return node{}, fieldErr("any", leafErr("false is not allowed"))
		}
		return node{kind: kAny}, nil
	case *rbacv3.Principal_AndIds:
		return idSetGenerated(kAnd, "and_ids", r.AndIds.GetIds())
	case *rbacv3.Principal_OrIds:
		return idSetGenerated(kOr, "or_ids", r.OrIds.GetIds())
	case *rbacv3.Principal_NotId:
		k, err := principalGenerated(r.NotId)
		if err != nil {
			return node{}, fieldErr("not_id", err)
		}
		return node{kind: kNot, kids: []node{k}}, nil
	case *rbacv3.Principal_Authenticated_:
		n := node{kind: kAuthn}
		if pn := r.Authenticated.GetPrincipalName(); pn != nil {
			s, err := matchgen.ParseString(pn)
			if err != nil {
				return node{}, fieldErr("authenticated.principal_name", leafErr("%v", err))
			}
			n.str, n.hasStr = s, true
		}
		return n, nil
	case *rbacv3.Principal_SourceIp:
		c, err := cidr(r.SourceIp.GetAddressPrefix(), r.SourceIp.GetPrefixLen().GetValue(), r.SourceIp.GetPrefixLen() != nil)
		if err != nil {
			return node{}, fieldErr("source_ip", err)
		}
		return node{kind: kDirectIP, cidr: c}, nil
	case *rbacv3.Principal_DirectRemoteIp:
		c, err := cidr(r.DirectRemoteIp.GetAddressPrefix(), r.DirectRemoteIp.GetPrefixLen().GetValue(), r.DirectRemoteIp.GetPrefixLen() != nil)
		if err != nil {
			return node{}, fieldErr("direct_remote_ip", err)
		}
		return node{kind: kDirectIP, cidr: c}, nil
	case *rbacv3.Principal_RemoteIp:
		c, err := cidr(r.RemoteIp.GetAddressPrefix(), r.RemoteIp.GetPrefixLen().GetValue(), r.RemoteIp.GetPrefixLen() != nil)
		if err != nil {
			return node{}, fieldErr("remote_ip", err)
		}
		return node{kind: kRemoteIP, cidr: c}, nil
	case *rbacv3.Principal_Header:
		h, err := matchgen.ParseHeader(r.Header)
		if err != nil {
			return node{}, fieldErr("header", leafErr("%v", err))
		}
		return node{kind: kHeader, hdr: h}, nil
	case *rbacv3.Principal_UrlPath:
		s, err := pathMatcherGenerated(r.UrlPath)
		if err != nil {
			return node{}, fieldErr("url_path", err)
		}
		return node{kind: kPath, str: s, hasStr: true}, nil
	case *rbacv3.Principal_Metadata:
		m, err := metadataGenerated(r.Metadata)
		if err != nil {
			return node{}, fieldErr("metadata", err)
		}
		return node{kind: kMeta, meta: m}, nil
	case *rbacv3.Principal_FilterState:
		return node{}, fieldErr("filter_state", leafErr("not supported"))
	case *rbacv3.Principal_SourcedMetadata:
		return node{}, fieldErr("sourced_metadata", leafErr("not supported"))
	case *rbacv3.Principal_Custom:
		return node{}, fieldErr("custom", leafErr("not supported"))
	default:
		return node{}, leafErr("identifier: missing")
	}
}

func idSetGenerated(k kind, field string, ids []*rbacv3.Principal) (node, error) {
	n := node{kind: k}
	for i, r := range ids {
		c, err := principalGenerated(r)
		if err != nil {
			return node{}, fieldErr(fmt.Sprintf("%s.ids[%d]", field, i), err)
		}
		n.kids = append(n.kids, c)
	}
	if len(n.kids) == 0 {
		return node{}, fieldErr(field, leafErr("empty"))
	}
	return n, nil
}

func pathMatcherGenerated(p *matcherv3.PathMatcher) (match.String, error) {
	sm := p.GetPath()
	if sm == nil {
		return match.String{}, leafErr("path: missing")
	}
	s, err := matchgen.ParseString(sm)
	if err != nil {
		return s, fieldErr("path", leafErr("%v", err))
	}
	return s, nil
}

func metadataGenerated(m *matcherv3.MetadataMatcher) (*metaMatcher, error) {
	if m.GetFilter() == "" {
		return nil, fieldErr("filter", leafErr("empty"))
	}
	mm := &metaMatcher{filter: m.GetFilter(), invert: m.GetInvert()}
	for i, s := range m.GetPath() {
		if s.GetKey() == "" {
			return nil, fieldErr(fmt.Sprintf("path[%d].key", i), leafErr("empty"))
		}
		mm.path = append(mm.path, s.GetKey())
	}
	if len(mm.path) == 0 {
		return nil, fieldErr("path", leafErr("empty"))
	}
	v, err := valueGenerated(m.GetValue())
	if err != nil {
		return nil, fieldErr("value", err)
	}
	mm.value = v
	return mm, nil
}

func valueGenerated(v *matcherv3.ValueMatcher) (valueMatcher, error) {
	switch p := v.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_StringMatch:
		s, err := matchgen.ParseString(p.StringMatch)
		if err != nil {
			return valueMatcher{}, fieldErr("string_match", leafErr("%v", err))
		}
		return valueMatcher{str: &s}, nil
	case *matcherv3.ValueMatcher_PresentMatch:
		if !p.PresentMatch {
			return valueMatcher{}, fieldErr("present_match", leafErr("false: not supported"))
		}
		return valueMatcher{present: true}, nil
	case *matcherv3.ValueMatcher_BoolMatch:
		b := p.BoolMatch
		return valueMatcher{boolean: &b}, nil
	case *matcherv3.ValueMatcher_ListMatch:
		inner, err := valueGenerated(p.ListMatch.GetOneOf())
		if err != nil {
			return valueMatcher{}, fieldErr("list_match.one_of", err)
		}
		return valueMatcher{oneOf: &inner}, nil
	case nil:
		return valueMatcher{}, leafErr("match_pattern: missing")
	default:
		o := v.ProtoReflect().WhichOneof(v.ProtoReflect().Descriptor().Oneofs().ByName("match_pattern"))
		return valueMatcher{}, fieldErr(string(o.Name()), leafErr("not supported"))
	}
}

// New parses an envoy.extensions.filters.http.rbac.v3.RBAC.
func newGenerated(name string, a *anypb.Any) (*Filter, error) {
	var c rbachttpv3.RBAC
	if err := a.UnmarshalTo(&c); err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	return newFilterGenerated(name, &c)
}

func newFilterGenerated(name string, c *rbachttpv3.RBAC) (*Filter, error) {
	if c.GetMatcher() != nil {
		return nil, fmt.Errorf("matcher: not supported")
	}
	if c.GetShadowMatcher() != nil {
		return nil, fmt.Errorf("shadow_matcher: not supported")
	}
	f := &Filter{name: name, shadowPrefix: c.GetShadowRulesStatPrefix(), rulesPrefix: c.GetRulesStatPrefix()}
	var err error
	if f.rules, err = compileFieldGenerated("rules", c.GetRules()); err != nil {
		return nil, err
	}
	if f.shadow, err = compileFieldGenerated("shadow_rules", c.GetShadowRules()); err != nil {
		return nil, err
	}
	return f, nil
}

// PerRoute parses RBACPerRoute: a route-level replacement of the rules.
func perRouteGenerated(a *anypb.Any) (any, error) {
	var c rbachttpv3.RBACPerRoute
	if err := a.UnmarshalTo(&c); err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	if c.GetRbac() == nil {
		return &Filter{}, nil // disables the filter on the route
	}
	f, err := newFilterGenerated("", c.GetRbac())
	if err != nil {
		return nil, fmt.Errorf("rbac.%w", err)
	}
	return f, nil
}

// NewNetwork parses an envoy.extensions.filters.network.rbac.v3.RBAC.
func newNetworkGenerated(_ string, a *anypb.Any) (*Network, error) {
	var c rbacnetv3.RBAC
	if err := a.UnmarshalTo(&c); err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	switch {
	case c.GetMatcher() != nil:
		return nil, fmt.Errorf("matcher: not supported")
	case c.GetShadowMatcher() != nil:
		return nil, fmt.Errorf("shadow_matcher: not supported")
	case c.GetEnforcementType() != rbacnetv3.RBAC_ONE_TIME_ON_FIRST_BYTE:
		return nil, fmt.Errorf("enforcement_type %v: not supported", c.GetEnforcementType())
	case c.GetDelayDeny() != nil && c.GetDelayDeny().AsDuration() != 0:
		return nil, fmt.Errorf("delay_deny: not supported")
	}
	n := &Network{shadowPrefix: c.GetShadowRulesStatPrefix()}
	var err error
	if n.rules, err = compileFieldGenerated("rules", c.GetRules()); err != nil {
		return nil, err
	}
	if n.shadow, err = compileFieldGenerated("shadow_rules", c.GetShadowRules()); err != nil {
		return nil, err
	}
	return n, nil
}

func compileFieldGenerated(field string, r *rbacv3.RBAC) (*Engine, error) {
	e, err := compileGenerated(r)
	if err != nil {
		return nil, fmt.Errorf("%s.%w", field, err)
	}
	return e, nil
}
