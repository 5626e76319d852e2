package xdsparse

import (
	"fmt"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	prevprio "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

func parseRouteAction(p *routev3.RouteAction) (*RouteAction, error) {
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
			ops, err := parseHeaderOps(w.GetRequestHeadersToAdd(), w.GetRequestHeadersToRemove(), w.GetResponseHeadersToAdd(), w.GetResponseHeadersToRemove())
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
	default:
		return nil, fmt.Errorf("cluster specifier %T not supported", c)
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
		if a.Retry, err = parseRetry(rp); err != nil {
			return nil, fmt.Errorf("retry_policy: %w", err)
		}
	}
	if hp := p.GetHedgePolicy(); hp != nil {
		// initial_requests and additional_request_chance are refused by
		// the field rules (Envoy does not implement them either).
		a.HedgeOnPerTryTimeout = hp.GetHedgeOnPerTryTimeout()
	}
	for i, m := range p.GetRequestMirrorPolicies() {
		mp, err := parseMirror(m)
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
		default:
			return nil, fmt.Errorf("hash_policy[%d]: %T not supported", i, s)
		}
		a.Hash = append(a.Hash, h)
	}
	return a, nil
}

func parseMirror(m *routev3.RouteAction_RequestMirrorPolicy) (MirrorPolicy, error) {
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

// convertSubst turns RE2 \1 references into Go's ${1}.
func convertSubst(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
			b.WriteString("${")
			b.WriteByte(s[i+1])
			b.WriteByte('}')
			i++
			continue
		}
		if c == '$' {
			b.WriteString("$$")
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func parseRetry(p *routev3.RetryPolicy) (*RetryPolicy, error) {
	r := &RetryPolicy{NumRetries: 1, BackoffBase: 25 * time.Millisecond}
	for _, on := range strings.Split(p.GetRetryOn(), ",") {
		switch strings.TrimSpace(on) {
		case "":
		case "5xx":
			r.On |= Retry5xx
		case "gateway-error":
			r.On |= RetryGatewayError
		case "connect-failure":
			r.On |= RetryConnectFailure
		case "refused-stream":
			r.On |= RetryRefusedStream
		case "reset", "reset-before-request":
			r.On |= RetryReset
		case "retriable-status-codes":
			r.On |= RetryRetriableStatusCodes
		case "retriable-4xx":
			r.On |= RetryRetriable4xx
		case "envoy-ratelimited":
			r.On |= RetryEnvoyRateLimited
		case "cancelled":
			r.On |= RetryGRPCCancelled
		case "deadline-exceeded":
			r.On |= RetryGRPCDeadlineExceeded
		case "internal":
			r.On |= RetryGRPCInternal
		case "resource-exhausted":
			r.On |= RetryGRPCResourceExhausted
		case "unavailable":
			r.On |= RetryGRPCUnavailable
		case "retriable-headers", "http3-post-connect-failure":
			// retriable-headers matches retriable_headers, which the rules refuse;
			// there is no HTTP/3 upstream: both are, as in Envoy, never triggered here.
		default:
			return nil, fmt.Errorf("retry_on %q: unknown condition", on)
		}
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

func parseRedirect(p *routev3.RedirectAction) (*Redirect, error) {
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

// cookieText reports whether s can stand in a Set-Cookie attribute: no
// separator, control character or non-ASCII byte.
func cookieText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == ';' {
			return false
		}
	}
	return true
}
