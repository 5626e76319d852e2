package rbac

import (
	"fmt"
	"net/netip"
	"sort"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/mast-mesh/mast/internal/proxy/match"
)

// Action is what an engine does with a match.
type Action uint8

// Envoy's RBAC actions.
const (
	Allow Action = iota
	Deny
	Log
)

// Engine is a compiled envoy.config.rbac.v3.RBAC: an action and its
// policies, sorted by name (Envoy reports the first matching policy in
// name order).
type Engine struct {
	Action   Action
	Policies []Policy
}

// Policy is a compiled RBAC policy: it matches when any permission and any
// principal match.
type Policy struct {
	Name        string
	Permissions []node
	Principals  []node
}

type kind uint8

const (
	kAny kind = iota
	kAnd
	kOr
	kNot
	kHeader
	kPath      // url_path
	kTemplate  // uri_template
	kDestIP    // destination_ip
	kDestPort  // destination_port
	kDestRange // destination_port_range
	kSNI       // requested_server_name
	kAuthn     // authenticated (principal_name in str when hasStr)
	kDirectIP  // direct_remote_ip, source_ip
	kRemoteIP  // remote_ip
	kMeta      // metadata
)

// node is one permission or principal rule; kids for and/or/not.
type node struct {
	kind   kind
	kids   []node
	hdr    match.Header
	str    match.String
	hasStr bool
	cidr   netip.Prefix
	lo, hi uint32 // ports: [lo, hi) for ranges, lo for one
	tmpl   *template
	meta   *metaMatcher
}

// Compile compiles an RBAC config; anything it cannot enforce exactly is
// an error naming the field (the filter is NACKed: security fails closed).
func Compile(r *rbacv3.RBAC) (*Engine, error) {
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
			nd, err := permission(pm)
			if err != nil {
				return nil, fmt.Errorf("policies[%s].permissions[%d]%w", n, i, err)
			}
			cp.Permissions = append(cp.Permissions, nd)
		}
		for i, pr := range p.GetPrincipals() {
			nd, err := principal(pr)
			if err != nil {
				return nil, fmt.Errorf("policies[%s].principals[%d]%w", n, i, err)
			}
			cp.Principals = append(cp.Principals, nd)
		}
		e.Policies = append(e.Policies, cp)
	}
	return e, nil
}

// fieldErr prefixes a field name to an error (".header: ...").
func fieldErr(field string, err error) error { return fmt.Errorf(".%s%w", field, err) }

func leafErr(format string, a ...any) error { return fmt.Errorf(": "+format, a...) }

func permission(p *rbacv3.Permission) (node, error) {
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		if !r.Any {
			return node{}, fieldErr("any", leafErr("false is not allowed"))
		}
		return node{kind: kAny}, nil
	case *rbacv3.Permission_AndRules:
		return permSet(kAnd, "and_rules", r.AndRules.GetRules())
	case *rbacv3.Permission_OrRules:
		return permSet(kOr, "or_rules", r.OrRules.GetRules())
	case *rbacv3.Permission_NotRule:
		k, err := permission(r.NotRule)
		if err != nil {
			return node{}, fieldErr("not_rule", err)
		}
		return node{kind: kNot, kids: []node{k}}, nil
	case *rbacv3.Permission_Header:
		h, err := match.ParseHeader(r.Header)
		if err != nil {
			return node{}, fieldErr("header", leafErr("%v", err))
		}
		return node{kind: kHeader, hdr: h}, nil
	case *rbacv3.Permission_UrlPath:
		s, err := pathMatcher(r.UrlPath)
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
		s, err := match.ParseString(r.RequestedServerName)
		if err != nil {
			return node{}, fieldErr("requested_server_name", leafErr("%v", err))
		}
		return node{kind: kSNI, str: s, hasStr: true}, nil
	case *rbacv3.Permission_Metadata:
		m, err := metadata(r.Metadata)
		if err != nil {
			return node{}, fieldErr("metadata", err)
		}
		return node{kind: kMeta, meta: m}, nil
	case *rbacv3.Permission_UriTemplate:
		var cfg uritemplatev3.UriTemplateMatchConfig
		if err := r.UriTemplate.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
			return node{}, fieldErr("uri_template", leafErr("%v", err))
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
		return node{}, leafErr("rule %T: not supported", r)
	}
}

func permSet(k kind, field string, rules []*rbacv3.Permission) (node, error) {
	n := node{kind: k}
	for i, r := range rules {
		c, err := permission(r)
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

func principal(p *rbacv3.Principal) (node, error) {
	switch r := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		if !r.Any {
			return node{}, fieldErr("any", leafErr("false is not allowed"))
		}
		return node{kind: kAny}, nil
	case *rbacv3.Principal_AndIds:
		return idSet(kAnd, "and_ids", r.AndIds.GetIds())
	case *rbacv3.Principal_OrIds:
		return idSet(kOr, "or_ids", r.OrIds.GetIds())
	case *rbacv3.Principal_NotId:
		k, err := principal(r.NotId)
		if err != nil {
			return node{}, fieldErr("not_id", err)
		}
		return node{kind: kNot, kids: []node{k}}, nil
	case *rbacv3.Principal_Authenticated_:
		n := node{kind: kAuthn}
		if pn := r.Authenticated.GetPrincipalName(); pn != nil {
			s, err := match.ParseString(pn)
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
		h, err := match.ParseHeader(r.Header)
		if err != nil {
			return node{}, fieldErr("header", leafErr("%v", err))
		}
		return node{kind: kHeader, hdr: h}, nil
	case *rbacv3.Principal_UrlPath:
		s, err := pathMatcher(r.UrlPath)
		if err != nil {
			return node{}, fieldErr("url_path", err)
		}
		return node{kind: kPath, str: s, hasStr: true}, nil
	case *rbacv3.Principal_Metadata:
		m, err := metadata(r.Metadata)
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
		return node{}, leafErr("identifier %T: not supported", r)
	}
}

func idSet(k kind, field string, ids []*rbacv3.Principal) (node, error) {
	n := node{kind: k}
	for i, r := range ids {
		c, err := principal(r)
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

func pathMatcher(p *matcherv3.PathMatcher) (match.String, error) {
	sm := p.GetPath()
	if sm == nil {
		return match.String{}, leafErr("path: missing")
	}
	s, err := match.ParseString(sm)
	if err != nil {
		return s, fieldErr("path", leafErr("%v", err))
	}
	return s, nil
}

func cidr(prefix string, bits uint32, hasBits bool) (netip.Prefix, error) {
	a, err := netip.ParseAddr(prefix)
	if err != nil {
		return netip.Prefix{}, leafErr("address_prefix %q: not an IP address", prefix)
	}
	a = a.Unmap()
	if !hasBits {
		bits = uint32(a.BitLen())
	}
	if bits > uint32(a.BitLen()) {
		return netip.Prefix{}, leafErr("prefix_len %d: longer than the address", bits)
	}
	return netip.PrefixFrom(a, int(bits)).Masked(), nil
}

// metaMatcher is a compiled MetadataMatcher over the values mast-proxy
// keeps: Istio's istio_authn keys (request.auth.*, source.*), computed
// from the JWT result and the peer certificate, and other filters' dynamic
// metadata (filter.Request.Meta).
type metaMatcher struct {
	filter string
	path   []string
	value  valueMatcher
	invert bool
}

type valueMatcher struct {
	str     *match.String
	present bool
	boolean *bool
	oneOf   *valueMatcher // list_match.one_of
}

func metadata(m *matcherv3.MetadataMatcher) (*metaMatcher, error) {
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
	v, err := value(m.GetValue())
	if err != nil {
		return nil, fieldErr("value", err)
	}
	mm.value = v
	return mm, nil
}

func value(v *matcherv3.ValueMatcher) (valueMatcher, error) {
	switch p := v.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_StringMatch:
		s, err := match.ParseString(p.StringMatch)
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
		inner, err := value(p.ListMatch.GetOneOf())
		if err != nil {
			return valueMatcher{}, fieldErr("list_match.one_of", err)
		}
		return valueMatcher{oneOf: &inner}, nil
	default:
		return valueMatcher{}, leafErr("%T: not supported", p)
	}
}
