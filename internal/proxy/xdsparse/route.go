package xdsparse

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// RouteTable is a compiled RouteConfiguration.
type RouteTable struct {
	Name         string
	VirtualHosts []*VirtualHost
	Headers      HeaderOps // route-configuration level
	exact        map[string]*VirtualHost
	suffix       []domainEntry // "*.example.com", longest first
	prefix       []domainEntry // "example.*", longest first
	any          *VirtualHost
}

type domainEntry struct {
	fix string // the part without '*', lower-case
	vh  *VirtualHost
}

// VirtualHost is a compiled virtual host.
type VirtualHost struct {
	Name    string
	Domains []string
	Routes  []*Route
	Headers HeaderOps
	Retry   *RetryPolicy
	// RequireTLS redirects plaintext requests to https (301).
	RequireTLS bool
}

// HeaderOps are the header additions and removals of one level (route,
// virtual host, route configuration).
type HeaderOps struct {
	RequestAdd     []HeaderValueOp
	RequestRemove  []string
	ResponseAdd    []HeaderValueOp
	ResponseRemove []string
}

// HeaderValueOp adds or sets one header.
type HeaderValueOp struct {
	Name   string // lower-case
	Value  string
	Append bool // true: add another value; false: overwrite
	// IfAbsent only adds the header when it is not already present.
	IfAbsent bool
}

// Empty reports whether the operations do nothing.
func (h *HeaderOps) Empty() bool {
	return len(h.RequestAdd) == 0 && len(h.RequestRemove) == 0 && len(h.ResponseAdd) == 0 && len(h.ResponseRemove) == 0
}

// PathKind says how a route matches the path.
type PathKind uint8

// Path match kinds.
const (
	PathPrefix PathKind = iota
	PathExact
	PathRegex
	PathSeparatedPrefix
)

// StringKind says how a string matcher compares.
type StringKind uint8

// String matcher kinds.
const (
	StrExact StringKind = iota
	StrPrefix
	StrSuffix
	StrContains
	StrRegex
	StrPresent
)

// StringMatcher is a compiled envoy.type.matcher.v3.StringMatcher.
type StringMatcher struct {
	Kind       StringKind
	Value      string
	IgnoreCase bool
	Regex      *regexp.Regexp
}

// Match reports whether s matches.
func (m *StringMatcher) Match(s string) bool {
	switch m.Kind {
	case StrExact:
		if m.IgnoreCase {
			return headers.EqualFold(s, m.Value)
		}
		return s == m.Value
	case StrPrefix:
		if m.IgnoreCase {
			return headers.HasPrefixFold(s, m.Value)
		}
		return strings.HasPrefix(s, m.Value)
	case StrSuffix:
		if m.IgnoreCase {
			return headers.HasSuffixFold(s, m.Value)
		}
		return strings.HasSuffix(s, m.Value)
	case StrContains:
		if m.IgnoreCase {
			return headers.ContainsFold(s, m.Value)
		}
		return strings.Contains(s, m.Value)
	case StrRegex:
		return m.Regex.MatchString(s)
	case StrPresent:
		return true
	}
	return false
}

// HeaderMatcher is a compiled route header matcher.
type HeaderMatcher struct {
	Name                 string // lower-case
	Str                  StringMatcher
	Present              bool // present_match (value in PresentValue)
	PresentValue         bool
	RangeStart, RangeEnd int64
	IsRange              bool
	Invert               bool
	TreatMissingAsEmpty  bool
}

// QueryMatcher is a compiled query parameter matcher.
type QueryMatcher struct {
	Name    string
	Str     StringMatcher
	Present bool
}

// Route is one compiled route.
type Route struct {
	Name          string
	Kind          PathKind
	Path          string // exact/prefix value; lower-case when CaseInsensitive
	Regex         *regexp.Regexp
	CaseSensitive bool
	Headers       []HeaderMatcher
	Query         []QueryMatcher

	Action   *RouteAction
	Redirect *Redirect
	Direct   *DirectResponse

	HeaderOps HeaderOps
	Fault     *Fault
	// VHost is the virtual host the route belongs to.
	VHost *VirtualHost
}

// RouteAction forwards to a cluster.
type RouteAction struct {
	Cluster        string
	Weighted       []WeightedCluster
	TotalWeight    uint32
	PrefixRewrite  string
	RegexRewrite   *regexp.Regexp
	RegexSubst     string
	HostRewrite    string
	AutoHost       bool
	Timeout        time.Duration // 0: no timeout
	IdleTimeout    time.Duration
	Retry          *RetryPolicy
	Hash           []HashPolicy
	MaxGRPCTimeout time.Duration
}

// WeightedCluster is one arm of a weighted split.
type WeightedCluster struct {
	Name      string
	Weight    uint32
	HeaderOps HeaderOps
}

// HashPolicy names one input to a consistent-hash load balancer.
type HashPolicy struct {
	Header   string // lower-case header name
	Cookie   string
	SourceIP bool
	Query    string
	Terminal bool
}

// Retry condition bits.
const (
	Retry5xx uint32 = 1 << iota
	RetryGatewayError
	RetryConnectFailure
	RetryRefusedStream
	RetryReset
	RetryRetriableStatusCodes
	RetryRetriable4xx
)

// RetryPolicy is a compiled retry policy.
type RetryPolicy struct {
	On               uint32
	NumRetries       int
	PerTryTimeout    time.Duration
	StatusCodes      []int
	BackoffBase      time.Duration
	BackoffMax       time.Duration
	PreviousHosts    bool
	HostSelectionMax int
}

// Redirect is a compiled redirect action.
type Redirect struct {
	Scheme        string
	Host          string
	Port          uint32
	Path          string
	PrefixRewrite string
	Code          int
	StripQuery    bool
}

// DirectResponse answers without an upstream.
type DirectResponse struct {
	Status int
	Body   string
}

// Fault is a compiled envoy.filters.http.fault configuration.
type Fault struct {
	Delay        time.Duration
	DelayPerMill uint32 // per million
	AbortStatus  int
	AbortGRPC    int
	AbortPerMill uint32
}

// ParseRouteConfiguration compiles a RouteConfiguration.
func ParseRouteConfiguration(rc *routev3.RouteConfiguration) (*RouteTable, error) {
	if rc.GetName() == "" {
		return nil, fmt.Errorf("route configuration: name is empty")
	}
	t := &RouteTable{Name: rc.GetName(), exact: map[string]*VirtualHost{}}
	var err error
	t.Headers, err = parseHeaderOps(rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove(), rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove())
	if err != nil {
		return nil, fmt.Errorf("route configuration %q: %w", rc.GetName(), err)
	}
	for i, pvh := range rc.GetVirtualHosts() {
		vh, err := parseVirtualHost(pvh)
		if err != nil {
			return nil, fmt.Errorf("route configuration %q: virtual_hosts[%d] %q: %w", rc.GetName(), i, pvh.GetName(), err)
		}
		t.VirtualHosts = append(t.VirtualHosts, vh)
		for _, d := range vh.Domains {
			d = strings.ToLower(d)
			switch {
			case d == "*":
				if t.any != nil {
					return nil, fmt.Errorf("route configuration %q: virtual host %q: domain \"*\" already used by %q", rc.GetName(), vh.Name, t.any.Name)
				}
				t.any = vh
			case strings.HasPrefix(d, "*"):
				t.suffix = append(t.suffix, domainEntry{fix: d[1:], vh: vh})
			case strings.HasSuffix(d, "*"):
				t.prefix = append(t.prefix, domainEntry{fix: d[:len(d)-1], vh: vh})
			default:
				if o, dup := t.exact[d]; dup {
					return nil, fmt.Errorf("route configuration %q: virtual host %q: domain %q already used by %q", rc.GetName(), vh.Name, d, o.Name)
				}
				t.exact[d] = vh
			}
		}
	}
	byLen := func(s []domainEntry) {
		sort.SliceStable(s, func(i, j int) bool { return len(s[i].fix) > len(s[j].fix) })
	}
	byLen(t.suffix)
	byLen(t.prefix)
	return t, nil
}

func parseVirtualHost(p *routev3.VirtualHost) (*VirtualHost, error) {
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
	vh.Headers, err = parseHeaderOps(p.GetRequestHeadersToAdd(), p.GetRequestHeadersToRemove(), p.GetResponseHeadersToAdd(), p.GetResponseHeadersToRemove())
	if err != nil {
		return nil, err
	}
	if rp := p.GetRetryPolicy(); rp != nil {
		if vh.Retry, err = parseRetry(rp); err != nil {
			return nil, fmt.Errorf("retry_policy: %w", err)
		}
	}
	vhFault, err := parseFaultPerFilter(p.GetTypedPerFilterConfig())
	if err != nil {
		return nil, err
	}
	for i, pr := range p.GetRoutes() {
		r, err := parseRoute(pr, vh)
		if err != nil {
			return nil, fmt.Errorf("routes[%d] %q: %w", i, pr.GetName(), err)
		}
		if r.Fault == nil {
			r.Fault = vhFault
		}
		vh.Routes = append(vh.Routes, r)
	}
	return vh, nil
}

func parseRoute(p *routev3.Route, vh *VirtualHost) (*Route, error) {
	r := &Route{Name: p.GetName(), VHost: vh, CaseSensitive: true}
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
	case nil:
		return nil, fmt.Errorf("match: no path specifier")
	default:
		return nil, fmt.Errorf("match: path specifier %T not supported", ps)
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
		hm, err := parseHeaderMatcher(h)
		if err != nil {
			return nil, fmt.Errorf("match.headers[%d] %q: %w", i, h.GetName(), err)
		}
		r.Headers = append(r.Headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qm := QueryMatcher{Name: q.GetName()}
		switch qs := q.GetQueryParameterMatchSpecifier().(type) {
		case *routev3.QueryParameterMatcher_StringMatch:
			sm, err := parseStringMatcher(qs.StringMatch)
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
	r.HeaderOps, err = parseHeaderOps(p.GetRequestHeadersToAdd(), p.GetRequestHeadersToRemove(), p.GetResponseHeadersToAdd(), p.GetResponseHeadersToRemove())
	if err != nil {
		return nil, err
	}
	if r.Fault, err = parseFaultPerFilter(p.GetTypedPerFilterConfig()); err != nil {
		return nil, err
	}
	switch a := p.GetAction().(type) {
	case *routev3.Route_Route:
		ra, err := parseRouteAction(a.Route)
		if err != nil {
			return nil, fmt.Errorf("route: %w", err)
		}
		if ra.Retry == nil {
			ra.Retry = vh.Retry
		}
		r.Action = ra
	case *routev3.Route_Redirect:
		rd, err := parseRedirect(a.Redirect)
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
	default:
		return nil, fmt.Errorf("action %T not supported", a)
	}
	return r, nil
}

func parseHeaderMatcher(h *routev3.HeaderMatcher) (HeaderMatcher, error) {
	if h.GetName() == "" {
		return HeaderMatcher{}, fmt.Errorf("name is empty")
	}
	hm := HeaderMatcher{Name: strings.ToLower(h.GetName()), Invert: h.GetInvertMatch(), TreatMissingAsEmpty: h.GetTreatMissingHeaderAsEmpty()}
	if hm.Name == ":authority" {
		hm.Name = "host"
	}
	var err error
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_ExactMatch:
		hm.Str = StringMatcher{Kind: StrExact, Value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		hm.Str = StringMatcher{Kind: StrPrefix, Value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		hm.Str = StringMatcher{Kind: StrSuffix, Value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		hm.Str = StringMatcher{Kind: StrContains, Value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		re, err := compileRegex(s.SafeRegexMatch.GetRegex(), true)
		if err != nil {
			return hm, err
		}
		hm.Str = StringMatcher{Kind: StrRegex, Regex: re}
	case *routev3.HeaderMatcher_PresentMatch:
		hm.Present, hm.PresentValue = true, s.PresentMatch
	case *routev3.HeaderMatcher_RangeMatch:
		hm.IsRange, hm.RangeStart, hm.RangeEnd = true, s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
	case *routev3.HeaderMatcher_StringMatch:
		if hm.Str, err = parseStringMatcher(s.StringMatch); err != nil {
			return hm, err
		}
	case nil:
		hm.Present, hm.PresentValue = true, true
	default:
		return hm, fmt.Errorf("matcher %T not supported", s)
	}
	return hm, nil
}

func parseStringMatcher(s *matcherv3.StringMatcher) (StringMatcher, error) {
	m := StringMatcher{IgnoreCase: s.GetIgnoreCase()}
	switch p := s.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		m.Kind, m.Value = StrExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		m.Kind, m.Value = StrPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		m.Kind, m.Value = StrSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		m.Kind, m.Value = StrContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		expr := p.SafeRegex.GetRegex()
		if m.IgnoreCase {
			expr = "(?i)" + expr
		}
		re, err := compileRegex(expr, true)
		if err != nil {
			return m, err
		}
		m.Kind, m.Regex = StrRegex, re
	default:
		return m, fmt.Errorf("string matcher: pattern %T not supported", p)
	}
	return m, nil
}

// compileRegex compiles an RE2 expression; anchored makes it match the whole
// input as Envoy's safe_regex does.
func compileRegex(expr string, anchored bool) (*regexp.Regexp, error) {
	if len(expr) > 4096 {
		return nil, fmt.Errorf("regex: longer than 4096 bytes")
	}
	if anchored {
		expr = `^(?:` + expr + `)$`
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("regex: %w", err)
	}
	return re, nil
}

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
		a.MaxGRPCTimeout = t.AsDuration()
	}
	if rp := p.GetRetryPolicy(); rp != nil {
		var err error
		if a.Retry, err = parseRetry(rp); err != nil {
			return nil, fmt.Errorf("retry_policy: %w", err)
		}
	}
	for i, hp := range p.GetHashPolicy() {
		h := HashPolicy{Terminal: hp.GetTerminal()}
		switch s := hp.GetPolicySpecifier().(type) {
		case *routev3.RouteAction_HashPolicy_Header_:
			h.Header = strings.ToLower(s.Header.GetHeaderName())
		case *routev3.RouteAction_HashPolicy_Cookie_:
			h.Cookie = s.Cookie.GetName()
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
		case "envoy-ratelimited", "retriable-headers", "http3-post-connect-failure",
			"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable":
			// gRPC and rate-limit conditions: accepted, never triggered by this proxy.
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

// FaultFilterName is the fault filter's well-known name.
const FaultFilterName = "envoy.filters.http.fault"

func parseFaultPerFilter(m map[string]*anypb.Any) (*Fault, error) {
	a, ok := m[FaultFilterName]
	if !ok {
		return nil, nil
	}
	f, err := parseFaultAny(a)
	if err != nil {
		return nil, fmt.Errorf("typed_per_filter_config[%s]: %w", FaultFilterName, err)
	}
	return f, nil
}

func parseFaultAny(a *anypb.Any) (*Fault, error) {
	var hf faultv3.HTTPFault
	if err := a.UnmarshalTo(&hf); err != nil {
		return nil, fmt.Errorf("decode %s: %w", a.GetTypeUrl(), err)
	}
	return ParseFault(&hf)
}

// ParseFault compiles an HTTPFault.
func ParseFault(hf *faultv3.HTTPFault) (*Fault, error) {
	f := &Fault{}
	if d := hf.GetDelay(); d != nil {
		fd := d.GetFixedDelay()
		if fd == nil {
			return nil, fmt.Errorf("delay: only fixed_delay is supported")
		}
		f.Delay = fd.AsDuration()
		pm, err := perMillion(d.GetPercentage())
		if err != nil {
			return nil, fmt.Errorf("delay.percentage: %w", err)
		}
		f.DelayPerMill = pm
	}
	if ab := hf.GetAbort(); ab != nil {
		switch e := ab.GetErrorType().(type) {
		case *faultv3.FaultAbort_HttpStatus:
			if e.HttpStatus < 200 || e.HttpStatus >= 600 {
				return nil, fmt.Errorf("abort.http_status %d: want 200-599", e.HttpStatus)
			}
			f.AbortStatus = int(e.HttpStatus)
		case *faultv3.FaultAbort_GrpcStatus:
			f.AbortGRPC, f.AbortStatus = int(e.GrpcStatus), 200
		default:
			return nil, fmt.Errorf("abort: %T not supported", e)
		}
		pm, err := perMillion(ab.GetPercentage())
		if err != nil {
			return nil, fmt.Errorf("abort.percentage: %w", err)
		}
		f.AbortPerMill = pm
	}
	return f, nil
}

func parseHeaderOps(reqAdd []*corev3.HeaderValueOption, reqRm []string, respAdd []*corev3.HeaderValueOption, respRm []string) (HeaderOps, error) {
	var h HeaderOps
	var err error
	if h.RequestAdd, err = parseHeaderValueOps(reqAdd, "request_headers_to_add"); err != nil {
		return h, err
	}
	if h.ResponseAdd, err = parseHeaderValueOps(respAdd, "response_headers_to_add"); err != nil {
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
