package xdsparse

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"sort"
	"strings"
	"time"

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
	// IgnorePort is ignore_port_in_host_matching: virtual hosts are
	// selected by the authority without its port (hostport.WithoutPort).
	IgnorePort bool
	inline     []*VirtualHost // the route configuration's own virtual hosts
	filters    map[string]any // route-configuration level per-filter configs
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
// hosts and vhs, the ones received on demand for it (encoded, validated).
// A virtual host that does not parse or whose domain is taken is left
// out, and named in the error. Virtual hosts are kept by name, as Envoy
// keeps them: of two with one name (two resources "RC/svc:8080" and
// "RC/svc" both answered with virtual host "RC/svc" when the port is
// ignored), the later one is the one kept.
func (t *RouteTable) WithOnDemand(vhs [][]byte) (*RouteTable, error) {
	n := &RouteTable{Name: t.Name, Headers: t.Headers, VHDS: t.VHDS, IgnorePort: t.IgnorePort, inline: t.inline, filters: t.filters, exact: map[string]*VirtualHost{}}
	for _, vh := range t.inline {
		if err := n.add(vh); err != nil {
			return nil, err // parsed together before: cannot clash
		}
	}
	reg := builtin.Registry()
	var errs []error
	decoded := make([]*VirtualHost, 0, len(vhs))
	last := make(map[string]int, len(vhs)) // name -> index of its last virtual host in decoded
	for _, b := range vhs {
		vh, err := decodeVirtualHost(b, reg, t.filters)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		last[vh.Name] = len(decoded)
		decoded = append(decoded, vh)
	}
	for i, vh := range decoded {
		if last[vh.Name] != i {
			continue
		}
		if err := n.add(vh); err != nil {
			errs = append(errs, fmt.Errorf("virtual host %q: %w", vh.Name, err))
			continue
		}
		n.OnDemand++
	}
	n.sortWildcards()
	return n, errors.Join(errs...)
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
