package xdsparse

import (
	"fmt"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	prevprio "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/filter/builtin"
	"github.com/mast-mesh/mast/internal/proxy/match/matchgen"
)

// generatedRouteConfiguration is the RDS path DecodeRouteConfiguration
// replaced, kept as the oracle: go-control-plane's generated types,
// checkFields, then the parse.
func generatedRouteConfiguration(rc *routev3.RouteConfiguration) (*RouteTable, error) {
	if rc.GetName() == "" {
		return nil, fmt.Errorf("route configuration: name is empty")
	}
	if err := checkFields(rc, routeRules); err != nil {
		return nil, fmt.Errorf("route configuration %q: %w", rc.GetName(), err)
	}
	t := &RouteTable{Name: rc.GetName(), exact: map[string]*VirtualHost{}}
	var err error
	t.Headers, err = generatedHeaderOps(rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove(), rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove())
	if err != nil {
		return nil, fmt.Errorf("route configuration %q: %w", rc.GetName(), err)
	}
	if v := rc.GetVhds(); v != nil {
		if v.GetConfigSource().GetAds() == nil {
			return nil, fmt.Errorf("route configuration %q: vhds.config_source: only ads is supported", rc.GetName())
		}
		t.VHDS = true
	}
	t.IgnorePort = rc.GetIgnorePortInHostMatching()
	reg := builtin.Registry()
	tableFilters, err := reg.PerRoute(rc.GetTypedPerFilterConfig())
	if err != nil {
		return nil, fmt.Errorf("route configuration %q: %w", rc.GetName(), err)
	}
	t.filters = tableFilters
	for i, pvh := range rc.GetVirtualHosts() {
		vh, err := generatedVirtualHost(pvh, reg, tableFilters)
		if err != nil {
			return nil, fmt.Errorf("route configuration %q: virtual_hosts[%d] %q: %w", rc.GetName(), i, pvh.GetName(), err)
		}
		if err := t.add(vh); err != nil {
			return nil, err
		}
	}
	t.inline = t.VirtualHosts
	t.sortWildcards()
	return t, nil
}

func generatedVirtualHost(p *routev3.VirtualHost, reg *filter.Registry, tableFilters map[string]any) (*VirtualHost, error) {
	if len(p.GetDomains()) == 0 {
		return nil, fmt.Errorf("domains: empty")
	}
	vh := &VirtualHost{Name: p.GetName(), Domains: p.GetDomains()}
	for i, d := range p.GetDomains() {
		if d == "" || strings.Count(d, "*") > 1 || (strings.Contains(d, "*") && d != "*" && !strings.HasPrefix(d, "*") && !strings.HasSuffix(d, "*")) {
			return nil, fmt.Errorf("domains[%d] %q: invalid wildcard", i, d)
		}
	}
	switch p.GetRequireTls() {
	case routev3.VirtualHost_NONE:
	case routev3.VirtualHost_EXTERNAL_ONLY, routev3.VirtualHost_ALL:
		vh.RequireTLS = true
	default:
		return nil, fmt.Errorf("require_tls %v: unknown", p.GetRequireTls())
	}
	var err error
	vh.Headers, err = generatedHeaderOps(p.GetRequestHeadersToAdd(), p.GetRequestHeadersToRemove(), p.GetResponseHeadersToAdd(), p.GetResponseHeadersToRemove())
	if err != nil {
		return nil, err
	}
	if rp := p.GetRetryPolicy(); rp != nil {
		if vh.Retry, err = generatedRetry(rp); err != nil {
			return nil, fmt.Errorf("retry_policy: %w", err)
		}
	}
	vhFilters, err := reg.PerRoute(p.GetTypedPerFilterConfig())
	if err != nil {
		return nil, err
	}
	vhFilters = mergePerFilter(tableFilters, vhFilters)
	for i, pr := range p.GetRoutes() {
		r, err := generatedRoute(pr, vh)
		if err != nil {
			return nil, fmt.Errorf("routes[%d] %q: %w", i, pr.GetName(), err)
		}
		own, err := reg.PerRoute(pr.GetTypedPerFilterConfig())
		if err != nil {
			return nil, fmt.Errorf("routes[%d] %q: %w", i, pr.GetName(), err)
		}
		r.PerFilter = mergePerFilter(vhFilters, own)
		vh.Routes = append(vh.Routes, r)
	}
	return vh, nil
}

func generatedRoute(p *routev3.Route, vh *VirtualHost) (*Route, error) {
	r := &Route{Name: p.GetName(), VHost: vh, CaseSensitive: true, Operation: p.GetDecorator().GetOperation(), StatPrefix: p.GetStatPrefix()}
	m := p.GetMatch()
	if m == nil {
		return nil, fmt.Errorf("match: missing")
	}
	if cs := m.GetCaseSensitive(); cs != nil {
		r.CaseSensitive = cs.GetValue()
	}
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		r.Kind, r.Path = PathPrefix, ps.Prefix
	case *routev3.RouteMatch_Path:
		r.Kind, r.Path = PathExact, ps.Path
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(ps.SafeRegex.GetRegex(), true)
		if err != nil {
			return nil, fmt.Errorf("match.safe_regex: %w", err)
		}
		r.Kind, r.Regex = PathRegex, re
	case *routev3.RouteMatch_PathSeparatedPrefix:
		if strings.ContainsAny(ps.PathSeparatedPrefix, "?#") || (len(ps.PathSeparatedPrefix) > 1 && strings.HasSuffix(ps.PathSeparatedPrefix, "/")) {
			return nil, fmt.Errorf("match.path_separated_prefix %q: must not contain ?# or end in /", ps.PathSeparatedPrefix)
		}
		r.Kind, r.Path = PathSeparatedPrefix, ps.PathSeparatedPrefix
	case *routev3.RouteMatch_ConnectMatcher_:
		r.Kind = PathConnect
	case nil:
		return nil, fmt.Errorf("match: no path specifier")
	default: // path_match_policy
		return nil, fmt.Errorf("match: path specifier path_match_policy not supported")
	}
	if !r.CaseSensitive {
		r.Path = strings.ToLower(r.Path)
		if r.Regex != nil {
			re, err := compileRegex("(?i)"+m.GetSafeRegex().GetRegex(), true)
			if err != nil {
				return nil, fmt.Errorf("match.safe_regex: %w", err)
			}
			r.Regex = re
		}
	}
	if m.GetGrpc() != nil {
		r.Headers = append(r.Headers, HeaderMatcher{Name: "content-type", Str: StringMatcher{Kind: StrPrefix, Value: "application/grpc"}})
	}
	if m.GetRuntimeFraction() != nil || len(m.GetDynamicMetadata()) > 0 || m.GetFilterState() != nil {
		return nil, fmt.Errorf("match: runtime_fraction, dynamic_metadata and filter_state are not supported")
	}
	for i, h := range m.GetHeaders() {
		hm, err := generatedHeaderMatcher(h)
		if err != nil {
			return nil, fmt.Errorf("match.headers[%d] %q: %w", i, h.GetName(), err)
		}
		r.Headers = append(r.Headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qm := QueryMatcher{Name: q.GetName()}
		switch qs := q.GetQueryParameterMatchSpecifier().(type) {
		case *routev3.QueryParameterMatcher_StringMatch:
			sm, err := generatedStringMatcher(qs.StringMatch)
			if err != nil {
				return nil, fmt.Errorf("match.query_parameters[%d] %q: %w", i, q.GetName(), err)
			}
			qm.Str = sm
		case *routev3.QueryParameterMatcher_PresentMatch:
			qm.Present = true
		default:
			qm.Present = true
		}
		r.Query = append(r.Query, qm)
	}
	var err error
	r.HeaderOps, err = generatedHeaderOps(p.GetRequestHeadersToAdd(), p.GetRequestHeadersToRemove(), p.GetResponseHeadersToAdd(), p.GetResponseHeadersToRemove())
	if err != nil {
		return nil, err
	}
	switch a := p.GetAction().(type) {
	case *routev3.Route_Route:
		ra, err := generatedRouteAction(a.Route)
		if err != nil {
			return nil, fmt.Errorf("route: %w", err)
		}
		if ra.Retry == nil {
			ra.Retry = vh.Retry
		}
		r.Action = ra
	case *routev3.Route_Redirect:
		rd, err := generatedRedirect(a.Redirect)
		if err != nil {
			return nil, fmt.Errorf("redirect: %w", err)
		}
		r.Redirect = rd
	case *routev3.Route_DirectResponse:
		st := int(a.DirectResponse.GetStatus())
		if st < 200 || st > 599 {
			return nil, fmt.Errorf("direct_response.status %d: want 200-599", st)
		}
		d := &DirectResponse{Status: st}
		if b := a.DirectResponse.GetBody(); b != nil {
			switch {
			case b.GetInlineString() != "":
				d.Body = b.GetInlineString()
			case len(b.GetInlineBytes()) > 0:
				d.Body = string(b.GetInlineBytes())
			case b.GetFilename() != "" || b.GetEnvironmentVariable() != "":
				return nil, fmt.Errorf("direct_response.body: only inline bodies are supported")
			}
		}
		r.Direct = d
	case *routev3.Route_NonForwardingAction:
		r.Direct = &DirectResponse{Status: 404}
	case *routev3.Route_FilterAction:
		return nil, fmt.Errorf("action filter_action not supported")
	default:
		return nil, fmt.Errorf("action: missing")
	}
	return r, nil
}

// generatedHeaderMatcher is matchgen.ParseHeader, with the string matcher's
// errors worded as generatedStringMatcher words them.
func generatedHeaderMatcher(h *routev3.HeaderMatcher) (HeaderMatcher, error) {
	if sm := h.GetStringMatch(); sm != nil && h.GetName() != "" {
		if _, err := generatedStringMatcher(sm); err != nil {
			return HeaderMatcher{}, err
		}
	}
	return matchgen.ParseHeader(h)
}

// generatedStringMatcher is matchgen.ParseString, whose error for a missing
// or custom pattern names a Go type; the wire decoder names the field.
func generatedStringMatcher(s *matcherv3.StringMatcher) (StringMatcher, error) {
	switch s.GetMatchPattern().(type) {
	case nil:
		return StringMatcher{IgnoreCase: s.GetIgnoreCase()}, fmt.Errorf("string matcher: no pattern")
	case *matcherv3.StringMatcher_Custom:
		return StringMatcher{IgnoreCase: s.GetIgnoreCase()}, fmt.Errorf("string matcher: pattern custom not supported")
	}
	return matchgen.ParseString(s)
}

func generatedHeaderOps(reqAdd []*corev3.HeaderValueOption, reqRm []string, respAdd []*corev3.HeaderValueOption, respRm []string) (HeaderOps, error) {
	var h HeaderOps
	var err error
	if h.RequestAdd, err = generatedHeaderValueOps(reqAdd, "request_headers_to_add"); err != nil {
		return h, err
	}
	if h.ResponseAdd, err = generatedHeaderValueOps(respAdd, "response_headers_to_add"); err != nil {
		return h, err
	}
	for _, n := range reqRm {
		h.RequestRemove = append(h.RequestRemove, strings.ToLower(n))
	}
	for _, n := range respRm {
		h.ResponseRemove = append(h.ResponseRemove, strings.ToLower(n))
	}
	return h, nil
}

func generatedRouteAction(p *routev3.RouteAction) (*RouteAction, error) {
	a := &RouteAction{Timeout: 15 * time.Second}
	switch c := p.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		if c.Cluster == "" {
			return nil, fmt.Errorf("cluster: empty")
		}
		a.Cluster = c.Cluster
	case *routev3.RouteAction_WeightedClusters:
		for i, w := range c.WeightedClusters.GetClusters() {
			if w.GetName() == "" {
				return nil, fmt.Errorf("weighted_clusters.clusters[%d]: name is empty", i)
			}
			ops, err := generatedHeaderOps(w.GetRequestHeadersToAdd(), w.GetRequestHeadersToRemove(), w.GetResponseHeadersToAdd(), w.GetResponseHeadersToRemove())
			if err != nil {
				return nil, fmt.Errorf("weighted_clusters.clusters[%d]: %w", i, err)
			}
			wt := w.GetWeight().GetValue()
			a.Weighted = append(a.Weighted, WeightedCluster{Name: w.GetName(), Weight: wt, HeaderOps: ops})
			a.TotalWeight += wt
		}
		if a.TotalWeight == 0 {
			return nil, fmt.Errorf("weighted_clusters: total weight is 0")
		}
	default: // the others are refused by the field rules
		return nil, fmt.Errorf("cluster specifier: missing")
	}
	a.PrefixRewrite = p.GetPrefixRewrite()
	if rr := p.GetRegexRewrite(); rr != nil {
		re, err := compileRegex(rr.GetPattern().GetRegex(), false)
		if err != nil {
			return nil, fmt.Errorf("regex_rewrite: %w", err)
		}
		a.RegexRewrite, a.RegexSubst = re, convertSubst(rr.GetSubstitution())
	}
	switch h := p.GetHostRewriteSpecifier().(type) {
	case *routev3.RouteAction_HostRewriteLiteral:
		a.HostRewrite = h.HostRewriteLiteral
	case *routev3.RouteAction_AutoHostRewrite:
		a.AutoHost = h.AutoHostRewrite.GetValue()
	case nil:
	default:
		return nil, fmt.Errorf("host rewrite %T not supported", h)
	}
	if t := p.GetTimeout(); t != nil {
		a.Timeout = t.AsDuration()
	}
	if t := p.GetIdleTimeout(); t != nil {
		a.IdleTimeout = t.AsDuration()
	}
	if t := p.GetMaxGrpcTimeout(); t != nil {
		a.GRPCTimeout, a.GRPCTimeoutMax = true, t.AsDuration()
	}
	if m := p.GetMaxStreamDuration(); m != nil {
		a.MaxStreamDuration = m.GetMaxStreamDuration().AsDuration()
		if t := m.GetGrpcTimeoutHeaderMax(); t != nil {
			a.GRPCTimeout, a.GRPCTimeoutMax = true, t.AsDuration()
		}
	}
	for i, u := range p.GetUpgradeConfigs() {
		t := strings.ToLower(u.GetUpgradeType())
		if t == "" {
			return nil, fmt.Errorf("upgrade_configs[%d].upgrade_type: empty", i)
		}
		if u.GetConnectConfig() != nil {
			if t != "connect" {
				return nil, fmt.Errorf("upgrade_configs[%d] %q: connect_config is only valid for CONNECT", i, t)
			}
			if u.GetConnectConfig().GetProxyProtocolConfig() != nil {
				return nil, fmt.Errorf("upgrade_configs[%d].connect_config.proxy_protocol_config: not supported", i)
			}
			a.ConnectTerminate = true
		}
		if a.Upgrades == nil {
			a.Upgrades = map[string]bool{}
		}
		a.Upgrades[t] = u.GetEnabled() == nil || u.GetEnabled().GetValue()
	}
	if rp := p.GetRetryPolicy(); rp != nil {
		var err error
		if a.Retry, err = generatedRetry(rp); err != nil {
			return nil, fmt.Errorf("retry_policy: %w", err)
		}
	}
	if hp := p.GetHedgePolicy(); hp != nil {
		// initial_requests and additional_request_chance are refused by
		// the field rules (Envoy does not implement them either).
		a.HedgeOnPerTryTimeout = hp.GetHedgeOnPerTryTimeout()
	}
	for i, m := range p.GetRequestMirrorPolicies() {
		mp, err := generatedMirror(m)
		if err != nil {
			return nil, fmt.Errorf("request_mirror_policies[%d]: %w", i, err)
		}
		a.Mirrors = append(a.Mirrors, mp)
	}
	for i, hp := range p.GetHashPolicy() {
		h := HashPolicy{Terminal: hp.GetTerminal()}
		switch s := hp.GetPolicySpecifier().(type) {
		case *routev3.RouteAction_HashPolicy_Header_:
			h.Header = strings.ToLower(s.Header.GetHeaderName())
		case *routev3.RouteAction_HashPolicy_Cookie_:
			h.Cookie = s.Cookie.GetName()
			if h.Cookie == "" || strings.ContainsAny(h.Cookie, "=;, \t") {
				return nil, fmt.Errorf("hash_policy[%d].cookie.name %q: not a cookie name", i, h.Cookie)
			}
			if t := s.Cookie.GetTtl(); t != nil {
				h.GenerateCookie, h.CookieTTL, h.CookiePath = true, t.AsDuration(), s.Cookie.GetPath()
				if h.CookieTTL < 0 || !cookieText(h.CookiePath) {
					return nil, fmt.Errorf("hash_policy[%d].cookie: ttl %v or path %q cannot be set on a cookie", i, h.CookieTTL, h.CookiePath)
				}
			}
			for j, a := range s.Cookie.GetAttributes() {
				if a.GetName() == "" || strings.ContainsAny(a.GetName(), "=") || !cookieText(a.GetName()) || !cookieText(a.GetValue()) {
					return nil, fmt.Errorf("hash_policy[%d].cookie.attributes[%d]: %q=%q cannot be set on a cookie", i, j, a.GetName(), a.GetValue())
				}
				h.CookieAttributes = append(h.CookieAttributes, CookieAttribute{Name: a.GetName(), Value: a.GetValue()})
			}
		case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
			h.SourceIP = s.ConnectionProperties.GetSourceIp()
		case *routev3.RouteAction_HashPolicy_QueryParameter_:
			h.Query = s.QueryParameter.GetName()
		case *routev3.RouteAction_HashPolicy_FilterState_:
			return nil, fmt.Errorf("hash_policy[%d]: filter_state not supported", i)
		default:
			return nil, fmt.Errorf("hash_policy[%d]: no policy specifier", i)
		}
		a.Hash = append(a.Hash, h)
	}
	return a, nil
}

func generatedMirror(m *routev3.RouteAction_RequestMirrorPolicy) (MirrorPolicy, error) {
	if m.GetCluster() == "" {
		return MirrorPolicy{}, fmt.Errorf("cluster: empty (cluster_header is not supported)")
	}
	mp := MirrorPolicy{Cluster: m.GetCluster(), Numerator: 100, Denominator: 100}
	if f := m.GetRuntimeFraction(); f != nil {
		// No runtime here: the default value is the fraction.
		d := f.GetDefaultValue()
		mp.Numerator = d.GetNumerator()
		switch d.GetDenominator() {
		case typev3.FractionalPercent_HUNDRED:
			mp.Denominator = 100
		case typev3.FractionalPercent_TEN_THOUSAND:
			mp.Denominator = 10_000
		case typev3.FractionalPercent_MILLION:
			mp.Denominator = 1_000_000
		default:
			return MirrorPolicy{}, fmt.Errorf("runtime_fraction.default_value.denominator %v: unknown", d.GetDenominator())
		}
		mp.Numerator = min(mp.Numerator, mp.Denominator)
	}
	if t := m.GetTraceSampled(); t != nil && !t.GetValue() {
		mp.Unsampled = true
	}
	return mp, nil
}

func generatedRetry(p *routev3.RetryPolicy) (*RetryPolicy, error) {
	r := &RetryPolicy{NumRetries: 1, BackoffBase: 25 * time.Millisecond}
	if err := parseRetryOn(r, p.GetRetryOn()); err != nil {
		return nil, err
	}
	if n := p.GetNumRetries(); n != nil {
		r.NumRetries = int(n.GetValue())
	}
	if t := p.GetPerTryTimeout(); t != nil {
		r.PerTryTimeout = t.AsDuration()
	}
	for _, c := range p.GetRetriableStatusCodes() {
		r.StatusCodes = append(r.StatusCodes, int(c))
	}
	if b := p.GetRetryBackOff(); b != nil {
		if d := b.GetBaseInterval(); d != nil {
			r.BackoffBase = d.AsDuration()
		}
		if r.BackoffBase <= 0 {
			return nil, fmt.Errorf("retry_back_off.base_interval: must be > 0")
		}
		r.BackoffMax = 10 * r.BackoffBase
		if d := b.GetMaxInterval(); d != nil {
			r.BackoffMax = d.AsDuration()
		}
		if r.BackoffMax < r.BackoffBase {
			return nil, fmt.Errorf("retry_back_off.max_interval: less than base_interval")
		}
	} else {
		r.BackoffMax = 10 * r.BackoffBase
	}
	for _, hp := range p.GetRetryHostPredicate() {
		switch hp.GetName() {
		case "envoy.retry_host_predicates.previous_hosts":
			r.PreviousHosts = true
		case "envoy.retry_host_predicates.omit_canary_hosts", "envoy.retry_host_predicates.omit_host_metadata":
		default:
			return nil, fmt.Errorf("retry_host_predicate %q: not supported", hp.GetName())
		}
	}
	r.HostSelectionMax = int(p.GetHostSelectionRetryMaxAttempts())
	if rp := p.GetRetryPriority(); rp != nil {
		if rp.GetName() != "envoy.retry_priorities.previous_priorities" {
			return nil, fmt.Errorf("retry_priority %q: not supported", rp.GetName())
		}
		var c prevprio.PreviousPrioritiesConfig
		if err := rp.GetTypedConfig().UnmarshalTo(&c); err != nil {
			return nil, fmt.Errorf("retry_priority %q: %w", rp.GetName(), err)
		}
		if c.GetUpdateFrequency() <= 0 {
			return nil, fmt.Errorf("retry_priority %q: update_frequency must be > 0", rp.GetName())
		}
		r.PriorityUpdateFrequency = int(c.GetUpdateFrequency())
	}
	return r, nil
}

func generatedRedirect(p *routev3.RedirectAction) (*Redirect, error) {
	rd := &Redirect{Host: p.GetHostRedirect(), Port: p.GetPortRedirect(), StripQuery: p.GetStripQuery()}
	switch s := p.GetSchemeRewriteSpecifier().(type) {
	case *routev3.RedirectAction_HttpsRedirect:
		if s.HttpsRedirect {
			rd.Scheme = "https"
		}
	case *routev3.RedirectAction_SchemeRedirect:
		rd.Scheme = s.SchemeRedirect
	}
	switch s := p.GetPathRewriteSpecifier().(type) {
	case *routev3.RedirectAction_PathRedirect:
		rd.Path = s.PathRedirect
	case *routev3.RedirectAction_PrefixRewrite:
		rd.PrefixRewrite = s.PrefixRewrite
	case nil:
	default:
		return nil, fmt.Errorf("path rewrite %T not supported", s)
	}
	switch p.GetResponseCode() {
	case routev3.RedirectAction_MOVED_PERMANENTLY:
		rd.Code = 301
	case routev3.RedirectAction_FOUND:
		rd.Code = 302
	case routev3.RedirectAction_SEE_OTHER:
		rd.Code = 303
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		rd.Code = 307
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		rd.Code = 308
	default:
		return nil, fmt.Errorf("response_code %v: unknown", p.GetResponseCode())
	}
	return rd, nil
}

// generatedHeaderValueOps is headerValueOpsWire over generated types.
func generatedHeaderValueOps(ops []*corev3.HeaderValueOption, field string) ([]HeaderValueOp, error) {
	var out []HeaderValueOp
	for i, o := range ops {
		h := o.GetHeader()
		v := h.GetValue()
		if v == "" && len(h.GetRawValue()) > 0 {
			v = string(h.GetRawValue())
		}
		op, err := headerValueOp(h.GetKey(), v, field, i)
		if err != nil {
			return nil, err
		}
		if o.GetAppend() != nil {
			op.Append = o.GetAppend().GetValue()
		}
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			if o.GetAppend() == nil {
				op.Append = true
			}
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			op.Append, op.IfAbsent = false, true
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			op.Append = false
		}
		out = append(out, op)
	}
	return out, nil
}
