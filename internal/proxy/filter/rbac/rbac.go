// Package rbac is Envoy's role-based access control filter, HTTP
// (envoy.filters.http.rbac) and network (envoy.filters.network.rbac): the
// form Istio's AuthorizationPolicy takes. The RBAC proto (policies of
// permissions and principals: and/or/not trees, headers, url_path, URI
// templates, destination ip/port, SNI, direct and XFF remote addresses,
// authenticated principals, Istio's request.auth.* metadata) is compiled
// once into a tree that matches without allocating.
//
// Path rules see the path as it is routed and forwarded, and also its
// canonical reading (pathnorm.Canonical: every escape decoded, backslashes
// and ";" parameters handled, slashes merged): a DENY engine denies when
// either reading matches, an ALLOW engine allows only when both do, so a
// spelling the upstream application may read differently never slips past
// a policy.
package rbac

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/pathnorm"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// Names and type URLs.
const (
	Name           = "envoy.filters.http.rbac"
	NetworkName    = "envoy.filters.network.rbac"
	TypeURL        = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
	PerRouteURL    = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
	NetworkTypeURL = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
)

// DeniedBody is Envoy's body for a denied request.
const DeniedBody = "RBAC: access denied"

// Filter is the HTTP RBAC filter.
type Filter struct {
	name         string
	rules        *Engine // nil: not enforced
	shadow       *Engine
	shadowPrefix string
	rulesPrefix  string
}

// Network is the network RBAC filter.
type Network struct {
	rules        *Engine
	shadow       *Engine
	shadowPrefix string
}

var (
	_ filter.HTTPFilter    = (*Filter)(nil)
	_ filter.NetworkFilter = (*Network)(nil)
)

// Field numbers of the HTTP filter's RBAC, RBACPerRoute and the network
// filter's RBAC.
const (
	httpRules         = 1
	httpShadowRules   = 2
	httpShadowPrefix  = 3
	httpMatcher       = 4
	httpShadowMatcher = 5
	httpRulesPrefix   = 6
	perRouteRBAC      = 2
	netRules          = 1
	netShadowRules    = 2
	netEnforcement    = 4
	netShadowPrefix   = 5
	netMatcher        = 6
	netShadowMatcher  = 7
	netDelayDeny      = 8
)

// New parses an envoy.extensions.filters.http.rbac.v3.RBAC.
func New(name string, a *anypb.Any) (filter.HTTPFilter, error) {
	c, err := pbwire.Decode(wireTable, wireHTTP, a.GetValue())
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	return newFilter(name, c)
}

func newFilter(name string, c *pbwire.Msg) (*Filter, error) {
	if c.Has(httpMatcher) {
		return nil, fmt.Errorf("matcher: not supported")
	}
	if c.Has(httpShadowMatcher) {
		return nil, fmt.Errorf("shadow_matcher: not supported")
	}
	f := &Filter{name: name, shadowPrefix: c.Str(httpShadowPrefix), rulesPrefix: c.Str(httpRulesPrefix)}
	var err error
	if f.rules, err = compileField("rules", c.Sub(httpRules)); err != nil {
		return nil, err
	}
	if f.shadow, err = compileField("shadow_rules", c.Sub(httpShadowRules)); err != nil {
		return nil, err
	}
	return f, nil
}

// PerRoute parses RBACPerRoute: a route-level replacement of the rules.
func PerRoute(a *anypb.Any) (any, error) {
	c, err := pbwire.Decode(wireTable, wirePerRoute, a.GetValue())
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	if !c.Has(perRouteRBAC) {
		return &Filter{}, nil // disables the filter on the route
	}
	f, err := newFilter("", c.Sub(perRouteRBAC))
	if err != nil {
		return nil, fmt.Errorf("rbac.%w", err)
	}
	return f, nil
}

// enforcementTypes names envoy.extensions.filters.network.rbac.v3.RBAC's
// EnforcementType values.
var enforcementTypes = [...]string{"ONE_TIME_ON_FIRST_BYTE", "CONTINUOUS"}

// NewNetwork parses an envoy.extensions.filters.network.rbac.v3.RBAC.
func NewNetwork(_ string, a *anypb.Any) (filter.NetworkFilter, error) {
	c, err := pbwire.Decode(wireTable, wireNetwork, a.GetValue())
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	switch et := c.I32(netEnforcement); {
	case c.Has(netMatcher):
		return nil, fmt.Errorf("matcher: not supported")
	case c.Has(netShadowMatcher):
		return nil, fmt.Errorf("shadow_matcher: not supported")
	case et != 0:
		name := fmt.Sprint(et)
		if et > 0 && int(et) < len(enforcementTypes) {
			name = enforcementTypes[et]
		}
		return nil, fmt.Errorf("enforcement_type %s: not supported", name)
	case pbwire.Duration(c.Sub(netDelayDeny)) != 0:
		return nil, fmt.Errorf("delay_deny: not supported")
	}
	n := &Network{shadowPrefix: c.Str(netShadowPrefix)}
	if n.rules, err = compileField("rules", c.Sub(netRules)); err != nil {
		return nil, err
	}
	if n.shadow, err = compileField("shadow_rules", c.Sub(netShadowRules)); err != nil {
		return nil, err
	}
	return n, nil
}

func compileField(field string, r *pbwire.Msg) (*Engine, error) {
	e, err := CompileWire(r)
	if err != nil {
		return nil, fmt.Errorf("%s.%w", field, err)
	}
	return e, nil
}

// decide evaluates e on the request, reading its path both ways (see the
// package comment). It returns whether the engine lets the request through
// and the matched policy.
func (e *Engine) decide(r *filter.Request, c *filter.Conn) (allowed bool, policy string) {
	in := input{r: r, c: c}
	if r != nil {
		in.path = r.PathOnly()
	}
	name, ok := e.match(&in)
	if r != nil {
		if canon := pathnorm.Canonical(in.path); canon != in.path {
			in.path = canon
			name2, ok2 := e.match(&in)
			switch e.Action {
			case Allow:
				ok = ok && ok2
			default:
				if !ok && ok2 {
					name, ok = name2, true
				}
			}
		}
	}
	switch e.Action {
	case Allow:
		return ok, name
	case Deny:
		return !ok, name
	default:
		return true, name
	}
}

// Decide exposes the engine's decision for tests and benchmarks.
func (e *Engine) Decide(r *filter.Request, c *filter.Conn) (bool, string) { return e.decide(r, c) }

// DecodeHeaders enforces the rules and records the shadow rules' result.
func (f *Filter) DecodeHeaders(_ context.Context, r *filter.Request) filter.Status {
	rules, shadow, prefix := f.rules, f.shadow, f.shadowPrefix
	if r.Route != nil {
		if pr, ok := r.Route.PerFilterConfig(f.name).(*Filter); ok {
			rules, shadow, prefix = pr.rules, pr.shadow, pr.shadowPrefix
		}
	}
	if shadow != nil {
		ok, name := shadow.decide(r, r.Conn)
		result := "allowed"
		if !ok {
			result = "denied"
		}
		if name != "" {
			r.AddMeta(Name, prefix+"shadow_effective_policy_id", name)
		}
		r.AddMeta(Name, prefix+"shadow_engine_result", result)
	}
	if rules == nil {
		return filter.Continue
	}
	ok, name := rules.decide(r, r.Conn)
	if rules.Action == Log {
		if name != "" {
			r.AddMeta(Name, "access_log_hint", "true")
			r.AddMeta(Name, "access_log_policy", name)
		}
		return filter.Continue
	}
	if ok {
		return filter.Continue
	}
	r.Flags |= filter.FlagRBACDenied
	if name != "" {
		r.AddMeta(Name, "enforced_effective_policy_id", name)
	}
	r.Details = deniedDetails(name)
	return r.LocalReply(403, DeniedBody, "RBAC")
}

// OnConnect records the shadow rules' result in the connection's dynamic
// metadata (as Envoy does: what the network ext_authz filter of a CUSTOM
// policy reads) and enforces the rules on a new connection.
func (n *Network) OnConnect(c *filter.Conn) filter.Status {
	if n.shadow != nil {
		ok, name := n.shadow.decide(nil, c)
		result := "allowed"
		if !ok {
			result = "denied"
		}
		if name != "" {
			c.AddMeta(NetworkName, n.shadowPrefix+"shadow_effective_policy_id", name)
		}
		c.AddMeta(NetworkName, n.shadowPrefix+"shadow_engine_result", result)
	}
	if n.rules == nil || n.rules.Action == Log {
		return filter.Continue
	}
	if ok, _ := n.rules.decide(nil, c); !ok {
		return filter.Stop
	}
	return filter.Continue
}

// deniedDetails is Envoy's response code details for a denial: the
// enforced policy that matched (a DENY rule), or "none" when no ALLOW
// policy matched.
func deniedDetails(policy string) string {
	if policy == "" {
		policy = "none"
	}
	return "rbac_access_denied_matched_policy[" + policy + "]"
}
