package xdsparse

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/filter/builtin"
	"github.com/mast-mesh/mast/internal/proxy/match"
	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
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
	// VHDS says that virtual hosts missing from the table are asked for on
	// demand over ADS ("NAME/HOST"); OnDemand counts the ones it holds.
	VHDS     bool
	OnDemand int
	inline   []*VirtualHost // the route configuration's own virtual hosts
	filters  map[string]any // route-configuration level per-filter configs
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
	Name  string // lower-case
	Value string
	// Format, when set, computes the value per request from Envoy's
	// command operators (%DOWNSTREAM_REMOTE_ADDRESS%, %REQ(x)%, ...); an
	// empty result adds nothing, as Envoy's keep_empty_value false.
	Format *accesslog.Format
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
	// PathConnect matches CONNECT requests only (connect_matcher); no
	// other kind matches them.
	PathConnect
)

// String matchers are compiled by internal/proxy/match (shared with the
// filters); these names keep the route code readable.
type (
	StringKind    = match.StringKind
	StringMatcher = match.String
	HeaderMatcher = match.Header
)

// String matcher kinds.
const (
	StrExact    = match.StrExact
	StrPrefix   = match.StrPrefix
	StrSuffix   = match.StrSuffix
	StrContains = match.StrContains
	StrRegex    = match.StrRegex
	StrPresent  = match.StrPresent
)

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
	// PerFilter holds the parsed typed_per_filter_config of the route,
	// its virtual host and its route configuration (the most specific
	// wins), by configured filter name.
	PerFilter map[string]any
	// VHost is the virtual host the route belongs to.
	VHost *VirtualHost
	// Operation is decorator.operation: the name of the route's spans.
	Operation string
	// StatPrefix, when set, gives the route its own upstream counters
	// (vhost.<virtual host>.route.<stat_prefix>.upstream_rq_*).
	StatPrefix string
}

// RouteAction forwards to a cluster.
type RouteAction struct {
	Cluster       string
	Weighted      []WeightedCluster
	TotalWeight   uint32
	PrefixRewrite string
	RegexRewrite  *regexp.Regexp
	RegexSubst    string
	HostRewrite   string
	AutoHost      bool
	Timeout       time.Duration // 0: no timeout
	IdleTimeout   time.Duration
	// Upgrades overrides the connection manager's upgrade_configs for this
	// route, by lower-case upgrade type.
	Upgrades map[string]bool
	// ConnectTerminate: a CONNECT request is terminated here (connect_config):
	// the proxy opens a TCP connection to the cluster and answers 200.
	ConnectTerminate bool
	Retry            *RetryPolicy
	// HedgeOnPerTryTimeout: when a try passes the retry policy's per-try
	// timeout, another try starts without cancelling it, and the first
	// good answer wins (hedge_policy.hedge_on_per_try_timeout).
	HedgeOnPerTryTimeout bool
	Hash                 []HashPolicy
	// MaxStreamDuration bounds the whole stream (0: none).
	MaxStreamDuration time.Duration
	// GRPCTimeout: a gRPC request's grpc-timeout header replaces Timeout,
	// capped by GRPCTimeoutMax when that is > 0 (Envoy's
	// grpc_timeout_header_max, or the legacy max_grpc_timeout).
	GRPCTimeout    bool
	GRPCTimeoutMax time.Duration
	// Mirrors are request_mirror_policies: copies of the request sent to
	// other clusters, fire and forget.
	Mirrors []MirrorPolicy
}

// MirrorPolicy is one request_mirror_policies entry: a copy of each
// request, or of Numerator in Denominator of them, goes to Cluster with
// "-shadow" appended to its host; its answer is discarded.
type MirrorPolicy struct {
	Cluster     string
	Numerator   uint32
	Denominator uint32 // 100, 10,000 or 1,000,000
	// Unsampled marks the copy's trace context not sampled (trace_sampled false).
	Unsampled bool
}

// WeightedCluster is one arm of a weighted split.
type WeightedCluster struct {
	Name      string
	Weight    uint32
	HeaderOps HeaderOps
}

// HashPolicy names one input to a consistent-hash load balancer.
type HashPolicy struct {
	Header string // lower-case header name
	Cookie string
	// GenerateCookie: a request without the cookie gets one (Envoy's
	// cookie ttl set): its value is hashed and set on the response with
	// CookiePath, CookieAttributes and, when CookieTTL is a second or
	// more, Max-Age (less: a session cookie).
	GenerateCookie   bool
	CookieTTL        time.Duration
	CookiePath       string
	CookieAttributes []CookieAttribute
	SourceIP         bool
	Query            string
	Terminal         bool
}

// CookieAttribute is one attribute of a generated cookie ("Secure",
// "SameSite=Lax"); an empty Value writes the name alone.
type CookieAttribute struct{ Name, Value string }

// Retry condition bits.
const (
	Retry5xx uint32 = 1 << iota
	RetryGatewayError
	RetryConnectFailure
	RetryRefusedStream
	RetryReset
	RetryRetriableStatusCodes
	RetryRetriable4xx
	RetryEnvoyRateLimited
	// gRPC conditions, on the grpc-status of a trailers-only response.
	RetryGRPCCancelled
	RetryGRPCDeadlineExceeded
	RetryGRPCResourceExhausted
	RetryGRPCInternal
	RetryGRPCUnavailable

	// RetryGRPCMask has every gRPC condition.
	RetryGRPCMask = RetryGRPCCancelled | RetryGRPCDeadlineExceeded | RetryGRPCResourceExhausted | RetryGRPCInternal | RetryGRPCUnavailable
)

// GRPCRetryBit is the retry condition of gRPC status code, 0 for a code no condition names.
func GRPCRetryBit(code int) uint32 {
	switch code {
	case 1:
		return RetryGRPCCancelled
	case 4:
		return RetryGRPCDeadlineExceeded
	case 8:
		return RetryGRPCResourceExhausted
	case 13:
		return RetryGRPCInternal
	case 14:
		return RetryGRPCUnavailable
	}
	return 0
}

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
	// PriorityUpdateFrequency is Envoy's previous_priorities retry
	// priority (0: none): every that many attempts, the priorities the
	// earlier attempts went to are left out of the priority load.
	PriorityUpdateFrequency int
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

// ParseRouteConfiguration compiles a RouteConfiguration.
func ParseRouteConfiguration(rc *routev3.RouteConfiguration) (*RouteTable, error) {
	if rc.GetName() == "" {
		return nil, fmt.Errorf("route configuration: name is empty")
	}
	if err := checkFields(rc, routeRules); err != nil {
		return nil, fmt.Errorf("route configuration %q: %w", rc.GetName(), err)
	}
	t := &RouteTable{Name: rc.GetName(), exact: map[string]*VirtualHost{}}
	var err error
	t.Headers, err = parseHeaderOps(rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove(), rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove())
	if err != nil {
		return nil, fmt.Errorf("route configuration %q: %w", rc.GetName(), err)
	}
	if v := rc.GetVhds(); v != nil {
		if v.GetConfigSource().GetAds() == nil {
			return nil, fmt.Errorf("route configuration %q: vhds.config_source: only ads is supported", rc.GetName())
		}
		t.VHDS = true
	}
	reg := builtin.Registry()
	tableFilters, err := reg.PerRoute(rc.GetTypedPerFilterConfig())
	if err != nil {
		return nil, fmt.Errorf("route configuration %q: %w", rc.GetName(), err)
	}
	t.filters = tableFilters
	for i, pvh := range rc.GetVirtualHosts() {
		vh, err := parseVirtualHost(pvh, reg, tableFilters)
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

// add indexes vh's domains.
func (t *RouteTable) add(vh *VirtualHost) error {
	own := map[string]bool{}
	for _, d := range vh.Domains {
		d = strings.ToLower(d)
		switch {
		case d == "*":
			if t.any != nil || own[d] {
				by := vh.Name
				if t.any != nil {
					by = t.any.Name
				}
				return fmt.Errorf("route configuration %q: virtual host %q: domain \"*\" already used by %q", t.Name, vh.Name, by)
			}
		case strings.HasPrefix(d, "*"), strings.HasSuffix(d, "*"):
		default:
			if o, dup := t.exact[d]; dup {
				return fmt.Errorf("route configuration %q: virtual host %q: domain %q already used by %q", t.Name, vh.Name, d, o.Name)
			}
			if own[d] {
				return fmt.Errorf("route configuration %q: virtual host %q: domain %q already used by %q", t.Name, vh.Name, d, vh.Name)
			}
		}
		own[d] = true
	}
	t.VirtualHosts = append(t.VirtualHosts, vh)
	for _, d := range vh.Domains {
		d = strings.ToLower(d)
		switch {
		case d == "*":
			t.any = vh
		case strings.HasPrefix(d, "*"):
			t.suffix = append(t.suffix, domainEntry{fix: d[1:], vh: vh})
		case strings.HasSuffix(d, "*"):
			t.prefix = append(t.prefix, domainEntry{fix: d[:len(d)-1], vh: vh})
		default:
			t.exact[d] = vh
		}
	}
	return nil
}

func (t *RouteTable) sortWildcards() {
	byLen := func(s []domainEntry) {
		sort.SliceStable(s, func(i, j int) bool { return len(s[i].fix) > len(s[j].fix) })
	}
	byLen(t.suffix)
	byLen(t.prefix)
}

// WithOnDemand returns a copy of the VHDS table t holding its own virtual
// hosts and vhs, the ones received on demand for it. A virtual host that
// does not parse or whose domain is taken is left out, and named in the
// error.
func (t *RouteTable) WithOnDemand(vhs []*routev3.VirtualHost) (*RouteTable, error) {
	n := &RouteTable{Name: t.Name, Headers: t.Headers, VHDS: t.VHDS, inline: t.inline, filters: t.filters, exact: map[string]*VirtualHost{}}
	for _, vh := range t.inline {
		if err := n.add(vh); err != nil {
			return nil, err // parsed together before: cannot clash
		}
	}
	reg := builtin.Registry()
	var errs []error
	for _, pvh := range vhs {
		if err := checkFields(pvh, routeRules); err != nil {
			errs = append(errs, fmt.Errorf("virtual host %q: %w", pvh.GetName(), err))
			continue
		}
		vh, err := parseVirtualHost(pvh, reg, t.filters)
		if err == nil {
			err = n.add(vh)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("virtual host %q: %w", pvh.GetName(), err))
			continue
		}
		n.OnDemand++
	}
	n.sortWildcards()
	return n, errors.Join(errs...)
}

func parseVirtualHost(p *routev3.VirtualHost, reg *filter.Registry, tableFilters map[string]any) (*VirtualHost, error) {
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
	vhFilters, err := reg.PerRoute(p.GetTypedPerFilterConfig())
	if err != nil {
		return nil, err
	}
	vhFilters = mergePerFilter(tableFilters, vhFilters)
	for i, pr := range p.GetRoutes() {
		r, err := parseRoute(pr, vh)
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

func parseRoute(p *routev3.Route, vh *VirtualHost) (*Route, error) {
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

func parseHeaderMatcher(h *routev3.HeaderMatcher) (HeaderMatcher, error) { return match.ParseHeader(h) }

func parseStringMatcher(s *matcherv3.StringMatcher) (StringMatcher, error) {
	return match.ParseString(s)
}

func compileRegex(expr string, anchored bool) (*regexp.Regexp, error) {
	return match.CompileRegex(expr, anchored)
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

// PerFilterConfig returns the route's parsed per-filter configuration for
// the filter configured as name (filter.RouteConfig).
func (r *Route) PerFilterConfig(name string) any { return r.PerFilter[name] }

// mergePerFilter overlays the more specific per-filter configs on the less
// specific ones.
func mergePerFilter(outer, inner map[string]any) map[string]any {
	if len(inner) == 0 {
		return outer
	}
	if len(outer) == 0 {
		return inner
	}
	m := make(map[string]any, len(outer)+len(inner))
	maps.Copy(m, outer)
	maps.Copy(m, inner)
	return m
}
