package rbac

import (
	"fmt"
	"net/netip"
	"slices"

	"strings"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/mast-mesh/mast/internal/proxy/match"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
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

// Field numbers of envoy.config.rbac.v3 (RBAC, Policy, Permission,
// Principal and their sets) and of the matchers they hold.
const (
	rbacAction   = 1
	rbacPolicies = 2
	rbacAudit    = 3

	polPermissions = 1
	polPrincipals  = 2
	polCondition   = 3
	polChecked     = 4
	polCelConfig   = 5

	permAndRules      = 1
	permOrRules       = 2
	permAny           = 3
	permHeader        = 4
	permDestIP        = 5
	permDestPort      = 6
	permMetadata      = 7
	permNotRule       = 8
	permSNI           = 9
	permURLPath       = 10
	permDestPortRange = 11
	permMatcher       = 12
	permURITemplate   = 13
	permSourcedMeta   = 14

	idAndIDs        = 1
	idOrIDs         = 2
	idAny           = 3
	idAuthenticated = 4
	idSourceIP      = 5
	idHeader        = 6
	idMetadata      = 7
	idNotID         = 8
	idURLPath       = 9
	idDirectIP      = 10
	idRemoteIP      = 11
	idFilterState   = 12
	idSourcedMeta   = 13
	idCustom        = 14

	setItems        = 1 // Permission.Set.rules, Principal.Set.ids
	authnPrincipal  = 2 // Principal.Authenticated.principal_name
	pathPath        = 1 // PathMatcher.path
	cidrPrefix      = 1
	cidrLen         = 2
	u32Value        = 1 // google.protobuf.UInt32Value.value
	rangeStart      = 1 // envoy.type.v3.Int32Range
	rangeEnd        = 2
	extTypedConfig  = 2 // TypedExtensionConfig.typed_config
	anyTypeURL      = 1
	anyValue        = 2
	tmplPath        = 1 // UriTemplateMatchConfig.path_template
	metaFilter      = 1 // MetadataMatcher
	metaPath        = 2
	metaValue       = 3
	metaInvert      = 4
	segKey          = 1
	valNull         = 1 // ValueMatcher
	valDouble       = 2
	valString       = 3
	valBool         = 4
	valPresent      = 5
	valList         = 6
	valOr           = 7
	listOneOf       = 1
	uriTemplateName = "envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig"
)

// Compile compiles an envoy.config.rbac.v3.RBAC from its wire bytes; see
// CompileWire.
func Compile(b []byte) (*Engine, error) {
	m, err := pbwire.Decode(wireTable, wireRBAC, b)
	if err != nil {
		return nil, err
	}
	return CompileWire(m)
}

// CompileWire compiles a decoded RBAC (nil: not enforced); anything it
// cannot enforce exactly is an error naming the field (the filter is
// NACKed: security fails closed).
func CompileWire(r *pbwire.Msg) (*Engine, error) {
	if r == nil {
		return nil, nil
	}
	e := &Engine{}
	switch a := r.I32(rbacAction); a {
	case 0:
		e.Action = Allow
	case 1:
		e.Action = Deny
	case 2:
		e.Action = Log
	default:
		return nil, fmt.Errorf("action %d: not supported", a)
	}
	if r.Has(rbacAudit) {
		return nil, fmt.Errorf("audit_logging_options: not supported")
	}
	names, pols := r.Map(rbacPolicies)
	order := make([]int, len(names))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(names[a], names[b]) })
	for _, i := range order {
		n, p := names[i], pols[i]
		cp := Policy{Name: n}
		if p.Has(polCondition) || p.Has(polChecked) || p.Has(polCelConfig) {
			return nil, fmt.Errorf("policies[%s]: condition (CEL): not supported", n)
		}
		perms, ids := p.Subs(polPermissions), p.Subs(polPrincipals)
		if len(perms) == 0 || len(ids) == 0 {
			return nil, fmt.Errorf("policies[%s]: permissions and principals must not be empty", n)
		}
		for i, pm := range perms {
			nd, err := permission(pm)
			if err != nil {
				return nil, fmt.Errorf("policies[%s].permissions[%d]%w", n, i, err)
			}
			cp.Permissions = append(cp.Permissions, nd)
		}
		for i, pr := range ids {
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

func permission(p *pbwire.Msg) (node, error) {
	switch p.Oneof(permAndRules, permOrRules, permAny, permHeader, permDestIP, permDestPort, permMetadata, permNotRule,
		permSNI, permURLPath, permDestPortRange, permMatcher, permURITemplate, permSourcedMeta) {
	case permAny:
		if !p.Bool(permAny) {
			return node{}, fieldErr("any", leafErr("false is not allowed"))
		}
		return node{kind: kAny}, nil
	case permAndRules:
		return permSet(kAnd, "and_rules", p.Sub(permAndRules).Subs(setItems))
	case permOrRules:
		return permSet(kOr, "or_rules", p.Sub(permOrRules).Subs(setItems))
	case permNotRule:
		k, err := permission(p.Sub(permNotRule))
		if err != nil {
			return node{}, fieldErr("not_rule", err)
		}
		return node{kind: kNot, kids: []node{k}}, nil
	case permHeader:
		h, err := match.HeaderWire(p.Sub(permHeader))
		if err != nil {
			return node{}, fieldErr("header", leafErr("%v", err))
		}
		return node{kind: kHeader, hdr: h}, nil
	case permURLPath:
		s, err := pathMatcher(p.Sub(permURLPath))
		if err != nil {
			return node{}, fieldErr("url_path", err)
		}
		return node{kind: kPath, str: s, hasStr: true}, nil
	case permDestIP:
		c, err := cidrWire(p.Sub(permDestIP))
		if err != nil {
			return node{}, fieldErr("destination_ip", err)
		}
		return node{kind: kDestIP, cidr: c}, nil
	case permDestPort:
		port := p.U32(permDestPort)
		if port > 65535 {
			return node{}, fieldErr("destination_port", leafErr("%d: out of range", port))
		}
		return node{kind: kDestPort, lo: port}, nil
	case permDestPortRange:
		rg := p.Sub(permDestPortRange)
		return node{kind: kDestRange, lo: uint32(rg.I32(rangeStart)), hi: uint32(rg.I32(rangeEnd))}, nil
	case permSNI:
		s, err := match.StringWire(p.Sub(permSNI))
		if err != nil {
			return node{}, fieldErr("requested_server_name", leafErr("%v", err))
		}
		return node{kind: kSNI, str: s, hasStr: true}, nil
	case permMetadata:
		m, err := metadata(p.Sub(permMetadata))
		if err != nil {
			return node{}, fieldErr("metadata", err)
		}
		return node{kind: kMeta, meta: m}, nil
	case permURITemplate:
		tc := p.Sub(permURITemplate).Sub(extTypedConfig)
		if u := tc.Str(anyTypeURL); !typeIs(u, uriTemplateName) {
			return node{}, fieldErr("uri_template", leafErr("typed_config %q: not supported", u))
		}
		cfg, err := pbwire.Decode(wireTable, wireURITemplate, tc.Bytes(anyValue))
		if err != nil {
			return node{}, fieldErr("uri_template", leafErr("typed_config: not a valid UriTemplateMatchConfig"))
		}
		t, err := parseTemplate(cfg.Str(tmplPath))
		if err != nil {
			return node{}, fieldErr("uri_template.path_template", leafErr("%v", err))
		}
		return node{kind: kTemplate, tmpl: t}, nil
	case permMatcher:
		return node{}, fieldErr("matcher", leafErr("not supported"))
	case permSourcedMeta:
		return node{}, fieldErr("sourced_metadata", leafErr("not supported"))
	default:
		return node{}, leafErr("rule: missing")
	}
}

// typeIs is anypb's MessageIs: the type URL names the message, after a
// "/" or alone.
func typeIs(url, full string) bool {
	if !strings.HasSuffix(url, full) {
		return false
	}
	return len(url) == len(full) || url[len(url)-len(full)-1] == '/'
}

func permSet(k kind, field string, rules []*pbwire.Msg) (node, error) {
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

func principal(p *pbwire.Msg) (node, error) {
	switch p.Oneof(idAndIDs, idOrIDs, idAny, idAuthenticated, idSourceIP, idHeader, idMetadata, idNotID, idURLPath,
		idDirectIP, idRemoteIP, idFilterState, idSourcedMeta, idCustom) {
	case idAny:
		if !p.Bool(idAny) {
			return node{}, fieldErr("any", leafErr("false is not allowed"))
		}
		return node{kind: kAny}, nil
	case idAndIDs:
		return idSet(kAnd, "and_ids", p.Sub(idAndIDs).Subs(setItems))
	case idOrIDs:
		return idSet(kOr, "or_ids", p.Sub(idOrIDs).Subs(setItems))
	case idNotID:
		k, err := principal(p.Sub(idNotID))
		if err != nil {
			return node{}, fieldErr("not_id", err)
		}
		return node{kind: kNot, kids: []node{k}}, nil
	case idAuthenticated:
		n := node{kind: kAuthn}
		if a := p.Sub(idAuthenticated); a.Has(authnPrincipal) {
			s, err := match.StringWire(a.Sub(authnPrincipal))
			if err != nil {
				return node{}, fieldErr("authenticated.principal_name", leafErr("%v", err))
			}
			n.str, n.hasStr = s, true
		}
		return n, nil
	case idSourceIP, idDirectIP, idRemoteIP:
		f, k := protowire.Number(idSourceIP), kDirectIP
		name := "source_ip"
		switch {
		case p.Has(idDirectIP):
			f, name = idDirectIP, "direct_remote_ip"
		case p.Has(idRemoteIP):
			f, k, name = idRemoteIP, kRemoteIP, "remote_ip"
		}
		c, err := cidrWire(p.Sub(f))
		if err != nil {
			return node{}, fieldErr(name, err)
		}
		return node{kind: k, cidr: c}, nil
	case idHeader:
		h, err := match.HeaderWire(p.Sub(idHeader))
		if err != nil {
			return node{}, fieldErr("header", leafErr("%v", err))
		}
		return node{kind: kHeader, hdr: h}, nil
	case idURLPath:
		s, err := pathMatcher(p.Sub(idURLPath))
		if err != nil {
			return node{}, fieldErr("url_path", err)
		}
		return node{kind: kPath, str: s, hasStr: true}, nil
	case idMetadata:
		m, err := metadata(p.Sub(idMetadata))
		if err != nil {
			return node{}, fieldErr("metadata", err)
		}
		return node{kind: kMeta, meta: m}, nil
	case idFilterState:
		return node{}, fieldErr("filter_state", leafErr("not supported"))
	case idSourcedMeta:
		return node{}, fieldErr("sourced_metadata", leafErr("not supported"))
	case idCustom:
		return node{}, fieldErr("custom", leafErr("not supported"))
	default:
		return node{}, leafErr("identifier: missing")
	}
}

func idSet(k kind, field string, ids []*pbwire.Msg) (node, error) {
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

func pathMatcher(p *pbwire.Msg) (match.String, error) {
	if !p.Has(pathPath) {
		return match.String{}, leafErr("path: missing")
	}
	s, err := match.StringWire(p.Sub(pathPath))
	if err != nil {
		return s, fieldErr("path", leafErr("%v", err))
	}
	return s, nil
}

func cidrWire(c *pbwire.Msg) (netip.Prefix, error) {
	return cidr(c.Str(cidrPrefix), c.Sub(cidrLen).U32(u32Value), c.Has(cidrLen))
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

func metadata(m *pbwire.Msg) (*metaMatcher, error) {
	if m.Str(metaFilter) == "" {
		return nil, fieldErr("filter", leafErr("empty"))
	}
	mm := &metaMatcher{filter: m.Str(metaFilter), invert: m.Bool(metaInvert)}
	for i, s := range m.Subs(metaPath) {
		if s.Str(segKey) == "" {
			return nil, fieldErr(fmt.Sprintf("path[%d].key", i), leafErr("empty"))
		}
		mm.path = append(mm.path, s.Str(segKey))
	}
	if len(mm.path) == 0 {
		return nil, fieldErr("path", leafErr("empty"))
	}
	v, err := value(m.Sub(metaValue))
	if err != nil {
		return nil, fieldErr("value", err)
	}
	mm.value = v
	return mm, nil
}

func value(v *pbwire.Msg) (valueMatcher, error) {
	switch v.Oneof(valNull, valDouble, valString, valBool, valPresent, valList, valOr) {
	case valString:
		s, err := match.StringWire(v.Sub(valString))
		if err != nil {
			return valueMatcher{}, fieldErr("string_match", leafErr("%v", err))
		}
		return valueMatcher{str: &s}, nil
	case valPresent:
		if !v.Bool(valPresent) {
			return valueMatcher{}, fieldErr("present_match", leafErr("false: not supported"))
		}
		return valueMatcher{present: true}, nil
	case valBool:
		b := v.Bool(valBool)
		return valueMatcher{boolean: &b}, nil
	case valList:
		inner, err := value(v.Sub(valList).Sub(listOneOf))
		if err != nil {
			return valueMatcher{}, fieldErr("list_match.one_of", err)
		}
		return valueMatcher{oneOf: &inner}, nil
	case valNull:
		return valueMatcher{}, fieldErr("null_match", leafErr("not supported"))
	case valDouble:
		return valueMatcher{}, fieldErr("double_match", leafErr("not supported"))
	case valOr:
		return valueMatcher{}, fieldErr("or_match", leafErr("not supported"))
	default:
		return valueMatcher{}, leafErr("match_pattern: missing")
	}
}
