package xdsparse

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/filter/builtin"
	"github.com/mast-mesh/mast/internal/proxy/pathnorm"
	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
	"github.com/mast-mesh/mast/internal/telemetry/metrics"
	"github.com/mast-mesh/mast/internal/telemetry/tracing"

	// Registered so config dumps can render the router's typed config.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
)

// Listener is a parsed Listener.
type Listener struct {
	Name    string
	Address string // host:port, or a unix socket's path when Network is "unix"
	// Network is "tcp", or "unix" for a pipe address (a path, or "@name"
	// in Linux's abstract namespace).
	Network        string
	BindToPort     bool
	UseOriginalDst bool
	// Filters is what the listener filters ask for (listenerfilters.go).
	Filters ListenerFilters
	Chains  []*FilterChain
	Default *FilterChain
	// Warnings lists parts that were skipped but did not make the resource invalid.
	Warnings []string
}

// FilterChain is one parsed filter chain: exactly one of HTTP and TCP is set.
type FilterChain struct {
	Name  string
	Match ChainMatch
	HTTP  *HTTPManager
	TCP   *TCPProxy
	// Network are the network filters before the terminal one (RBAC on
	// connections), in order.
	Network []filter.NetworkFilter
	// TLS, when set, terminates TLS before the filters (see tls.go).
	TLS *TLSContext
}

// ChainMatch is the subset of FilterChainMatch the proxy evaluates (see
// SelectChain in chainmatch.go).
type ChainMatch struct {
	DestinationPort uint32 // 0: any
	// ServerNames (SNI, "*.suffix" wildcards), TransportProtocol ("tls",
	// "raw_buffer" or "" for any) and ApplicationProtocols (ALPN) match what
	// the proxy saw of the connection's first bytes.
	ServerNames          []string
	TransportProtocol    string
	ApplicationProtocols []string
	// PrefixRanges match the connection's (original) destination address,
	// SourcePrefixRanges its source address; the longest match wins.
	PrefixRanges, SourcePrefixRanges []netip.Prefix
}

// HTTPManager is a parsed HttpConnectionManager.
type HTTPManager struct {
	StatPrefix string
	// RDSName names the route configuration to use; Routes is set instead
	// when the route configuration is inline.
	RDSName string
	Routes  *RouteTable
	// PathNorm is normalize_path, merge_slashes and
	// path_with_escaped_slashes_action: how paths are normalized once,
	// before routing and the filters.
	PathNorm pathnorm.Options
	// Filters is the HTTP filter chain built from http_filters (the
	// router, always last, is the proxy itself); nil when empty.
	Filters *filter.Chain

	CodecHTTP1Only, CodecHTTP2Only bool

	MaxRequestHeadersBytes int
	MaxHeadersCount        int
	MaxConcurrentStreams   uint32
	IdleTimeout            time.Duration
	StreamIdleTimeout      time.Duration
	RequestTimeout         time.Duration
	RequestHeadersTimeout  time.Duration
	DrainTimeout           time.Duration
	// MaxConnectionDuration is common_http_protocol_options'
	// max_connection_duration: a connection older than it is drained (0:
	// no limit).
	MaxConnectionDuration time.Duration
	// ConnBufferLimit is the listener's per_connection_buffer_limit_bytes
	// (1 MiB by default, as Envoy): the most request bytes the proxy holds
	// for one connection.
	ConnBufferLimit int

	UseRemoteAddress bool
	XffTrustedHops   uint32
	// InternalCIDRs are internal_address_config's ranges: requests from
	// them (by Envoy's rules) are internal. None by default, as in Envoy
	// since 1.33.
	InternalCIDRs     []netip.Prefix
	SkipXffAppend     bool
	GenerateRequestID bool
	// Tracing is the connection manager's tracing, nil when off.
	Tracing           *tracing.Config
	PreserveRequestID bool
	ServerName        string
	// ForwardClientCert and ClientCertDetails say how x-forwarded-client-cert
	// is handled (forward_client_cert_details, set_current_client_cert_details).
	ForwardClientCert ForwardClientCert
	ClientCertDetails ClientCertDetails
	// Inbound says the listener receives traffic for this proxy's own
	// workload (traffic_direction INBOUND): telemetry reports as the
	// destination; else as the source (sidecar outbound, gateways).
	Inbound bool
	// AccessLogs are the connection manager's access_log.
	AccessLogs []accesslog.Config
	// Stats is the istio.stats filter's metrics configuration, nil when
	// the listener has none.
	Stats *metrics.Config
	// Internal reports whether the listener faces the mesh inside (sidecar
	// inbound) rather than clients; x-envoy-* headers are stripped on
	// external edges only.
	Internal bool
	// Upgrades holds the upgrade_configs by lower-case upgrade type
	// ("websocket", "connect") and whether each is enabled by default;
	// routes may override. Requests asking for any other upgrade get 403.
	Upgrades map[string]bool
}

// TCPProxy is a parsed tcp_proxy filter.
type TCPProxy struct {
	StatPrefix  string
	Cluster     string
	Weighted    []WeightedCluster
	TotalWeight uint32
	// IdleTimeout closes both connections when no byte has passed either
	// way for that long (0: never).
	IdleTimeout time.Duration
	// MaxConnectionDuration is max_downstream_connection_duration: the
	// connection is closed that long after it opened (0: never).
	MaxConnectionDuration time.Duration
	// Inbound: see HTTPManager.Inbound.
	Inbound bool
	// AccessLogs are the proxy's access_log, one line per connection.
	AccessLogs []accesslog.Config
	// Stats: see HTTPManager.Stats.
	Stats *metrics.Config
	// Tunnel, when set, carries the stream through an HTTP tunnel opened
	// on the upstream connection (tunneling_config).
	Tunnel *Tunnel
}

// Tunnel is a tcp_proxy's tunneling_config: the stream goes through an
// HTTP/1.1 CONNECT (or POST) request for Hostname, made to the chosen
// upstream host.
type Tunnel struct {
	// Hostname is the CONNECT authority, host:port.
	Hostname string
	// Post sends a POST to PostPath ("/" by default) instead of CONNECT.
	Post     bool
	PostPath string
}

// Filter names this proxy understands.
const (
	HCMFilterName      = "envoy.filters.network.http_connection_manager"
	TCPProxyFilterName = "envoy.filters.network.tcp_proxy"
	RouterFilterName   = "envoy.filters.http.router"
)

// DefaultConnBufferLimit is Envoy's default per_connection_buffer_limit_bytes.
const DefaultConnBufferLimit = 1 << 20

// ParseHTTPManager parses an HttpConnectionManager.
func ParseHTTPManager(h *hcmv3.HttpConnectionManager) (*HTTPManager, error) {
	if err := checkFields(h, hcmRules); err != nil {
		return nil, err
	}
	m := &HTTPManager{
		StatPrefix:             h.GetStatPrefix(),
		MaxRequestHeadersBytes: 60 * 1024,
		MaxHeadersCount:        100,
		MaxConcurrentStreams:   100,
		IdleTimeout:            time.Hour,
		StreamIdleTimeout:      5 * time.Minute,
		RequestHeadersTimeout:  10 * time.Second,
		DrainTimeout:           5 * time.Second,
		ConnBufferLimit:        DefaultConnBufferLimit,
		GenerateRequestID:      true,
		UseRemoteAddress:       h.GetUseRemoteAddress().GetValue(),
		XffTrustedHops:         h.GetXffNumTrustedHops(),
		SkipXffAppend:          h.GetSkipXffAppend(),
		PreserveRequestID:      h.GetPreserveExternalRequestId(),
		ServerName:             h.GetServerName(),
	}
	m.PathNorm.NormalizePath = h.GetNormalizePath().GetValue()
	m.PathNorm.MergeSlashes = h.GetMergeSlashes()
	switch a := h.GetPathWithEscapedSlashesAction(); a {
	case hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT, hcmv3.HttpConnectionManager_KEEP_UNCHANGED:
	case hcmv3.HttpConnectionManager_REJECT_REQUEST:
		m.PathNorm.EscapedSlashes = pathnorm.RejectEscapedSlashes
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
		m.PathNorm.EscapedSlashes = pathnorm.UnescapeAndRedirect
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		m.PathNorm.EscapedSlashes = pathnorm.UnescapeAndForward
	default:
		return nil, fmt.Errorf("path_with_escaped_slashes_action %v: unknown", a)
	}
	if h.GetPathNormalizationOptions() != nil {
		return nil, fmt.Errorf("path_normalization_options: not supported")
	}
	if err := parseXFCC(h, m); err != nil {
		return nil, err
	}
	for i, c := range h.GetInternalAddressConfig().GetCidrRanges() {
		p, err := parseCIDR(c.GetAddressPrefix(), c.GetPrefixLen())
		if err != nil {
			return nil, fmt.Errorf("internal_address_config.cidr_ranges[%d]: %w", i, err)
		}
		m.InternalCIDRs = append(m.InternalCIDRs, p)
	}
	switch h.GetCodecType() {
	case hcmv3.HttpConnectionManager_HTTP1:
		m.CodecHTTP1Only = true
	case hcmv3.HttpConnectionManager_HTTP2:
		m.CodecHTTP2Only = true
	case hcmv3.HttpConnectionManager_AUTO:
	default:
		return nil, fmt.Errorf("codec_type %v: not supported", h.GetCodecType())
	}
	switch rs := h.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		if rs.Rds.GetRouteConfigName() == "" {
			return nil, fmt.Errorf("rds.route_config_name: empty")
		}
		m.RDSName = rs.Rds.GetRouteConfigName()
	case *hcmv3.HttpConnectionManager_RouteConfig:
		b, err := proto.Marshal(rs.RouteConfig)
		if err != nil {
			return nil, fmt.Errorf("route_config: %w", err)
		}
		_, t, err := DecodeRouteConfiguration(b)
		if err != nil {
			return nil, fmt.Errorf("route_config: %w", err)
		}
		m.Routes = t
	default:
		return nil, fmt.Errorf("route specifier %T not supported", rs)
	}
	if v := h.GetMaxRequestHeadersKb(); v != nil {
		if v.GetValue() == 0 || v.GetValue() > 8192 {
			return nil, fmt.Errorf("max_request_headers_kb %d: want 1-8192", v.GetValue())
		}
		m.MaxRequestHeadersBytes = int(v.GetValue()) * 1024
	}
	if o := h.GetCommonHttpProtocolOptions(); o != nil {
		if d := o.GetIdleTimeout(); d != nil {
			m.IdleTimeout = d.AsDuration()
		}
		if n := o.GetMaxHeadersCount(); n != nil && n.GetValue() > 0 {
			m.MaxHeadersCount = int(n.GetValue())
		}
		if d := o.GetMaxConnectionDuration(); d != nil {
			m.MaxConnectionDuration = d.AsDuration()
		}
	}
	if n := h.GetHttp2ProtocolOptions().GetMaxConcurrentStreams(); n != nil && n.GetValue() > 0 && n.GetValue() < m.MaxConcurrentStreams {
		m.MaxConcurrentStreams = n.GetValue()
	}
	if d := h.GetStreamIdleTimeout(); d != nil {
		m.StreamIdleTimeout = d.AsDuration()
	}
	if d := h.GetRequestTimeout(); d != nil {
		m.RequestTimeout = d.AsDuration()
	}
	if d := h.GetRequestHeadersTimeout(); d != nil && d.AsDuration() > 0 {
		m.RequestHeadersTimeout = d.AsDuration()
	}
	if d := h.GetDrainTimeout(); d != nil {
		m.DrainTimeout = d.AsDuration()
	}
	if g := h.GetGenerateRequestId(); g != nil {
		m.GenerateRequestID = g.GetValue()
	}
	for i, u := range h.GetUpgradeConfigs() {
		t := strings.ToLower(u.GetUpgradeType())
		if t == "" {
			return nil, fmt.Errorf("upgrade_configs[%d].upgrade_type: empty", i)
		}
		for j, f := range u.GetFilters() {
			if !isRouter(f) && !f.GetIsOptional() {
				return nil, fmt.Errorf("upgrade_configs[%d] %q: filters[%d] %q: not supported", i, t, j, f.GetName())
			}
		}
		if m.Upgrades == nil {
			m.Upgrades = map[string]bool{}
		}
		m.Upgrades[t] = u.GetEnabled() == nil || u.GetEnabled().GetValue()
	}
	filters := h.GetHttpFilters()
	if len(filters) == 0 || !isRouter(filters[len(filters)-1]) {
		return nil, fmt.Errorf("http_filters: the last filter must be %s", RouterFilterName)
	}
	for i, f := range filters[:len(filters)-1] {
		if isRouter(f) {
			return nil, fmt.Errorf("http_filters[%d] %q: the router must be the last filter", i, f.GetName())
		}
	}
	// Istio's stats filter configures this proxy's metrics, not the chain.
	var rest []*hcmv3.HttpFilter
	for i, f := range filters {
		if f.GetName() != StatsFilterName {
			rest = append(rest, f)
			continue
		}
		st, err := ParseStats(f.GetTypedConfig())
		if err != nil {
			return nil, fmt.Errorf("http_filters[%d] %q: %w", i, f.GetName(), err)
		}
		m.Stats = st
	}
	chain, err := builtin.Registry().BuildHTTP(rest, isRouter)
	if err != nil {
		return nil, err
	}
	m.Filters = chain
	if m.AccessLogs, err = parseAccessLogs(h.GetAccessLog()); err != nil {
		return nil, err
	}
	if m.Tracing, err = parseTracing(h.GetTracing()); err != nil {
		return nil, err
	}
	return m, nil
}

// IsInternalAddress reports whether ip is in the internal address ranges.
func (m *HTTPManager) IsInternalAddress(ip string) bool {
	if len(m.InternalCIDRs) == 0 {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range m.InternalCIDRs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseCIDR parses a CidrRange; a missing prefix_len is the whole address.
func parseCIDR(prefix string, length *wrapperspb.UInt32Value) (netip.Prefix, error) {
	a, err := netip.ParseAddr(prefix)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("address_prefix %q: not an IP address", prefix)
	}
	a = a.Unmap()
	bits := uint32(a.BitLen())
	if length != nil {
		if length.GetValue() > bits {
			return netip.Prefix{}, fmt.Errorf("prefix_len %d: longer than the address", length.GetValue())
		}
		bits = length.GetValue()
	}
	return netip.PrefixFrom(a, int(bits)).Masked(), nil
}

func isRouterAny(a *anypb.Any) bool {
	return a != nil && strings.HasSuffix(a.GetTypeUrl(), "envoy.extensions.filters.http.router.v3.Router")
}

func isRouter(f *hcmv3.HttpFilter) bool {
	if a := f.GetTypedConfig(); a != nil {
		return isRouterAny(a)
	}
	return f.GetName() == RouterFilterName
}

func parseTCPProxy(t *tcpv3.TcpProxy) (*TCPProxy, error) {
	if err := checkFields(t, tcpProxyRules); err != nil {
		return nil, err
	}
	p := &TCPProxy{StatPrefix: t.GetStatPrefix(), IdleTimeout: time.Hour}
	switch c := t.GetClusterSpecifier().(type) {
	case *tcpv3.TcpProxy_Cluster:
		if c.Cluster == "" {
			return nil, fmt.Errorf("cluster: empty")
		}
		p.Cluster = c.Cluster
	case *tcpv3.TcpProxy_WeightedClusters:
		for i, w := range c.WeightedClusters.GetClusters() {
			if w.GetName() == "" {
				return nil, fmt.Errorf("weighted_clusters.clusters[%d]: name is empty", i)
			}
			p.Weighted = append(p.Weighted, WeightedCluster{Name: w.GetName(), Weight: w.GetWeight()})
			p.TotalWeight += w.GetWeight()
		}
		if p.TotalWeight == 0 {
			return nil, fmt.Errorf("weighted_clusters: total weight is 0")
		}
	default:
		return nil, fmt.Errorf("cluster specifier %T not supported", c)
	}
	if d := t.GetIdleTimeout(); d != nil {
		p.IdleTimeout = d.AsDuration()
	}
	if d := t.GetMaxDownstreamConnectionDuration(); d != nil {
		p.MaxConnectionDuration = d.AsDuration()
	}
	if p.IdleTimeout < 0 || p.MaxConnectionDuration < 0 {
		return nil, fmt.Errorf("idle_timeout %v, max_downstream_connection_duration %v: negative", p.IdleTimeout, p.MaxConnectionDuration)
	}
	if tc := t.GetTunnelingConfig(); tc != nil {
		tun, err := parseTunnel(tc)
		if err != nil {
			return nil, err
		}
		p.Tunnel = tun
	}
	logs, err := parseAccessLogs(t.GetAccessLog())
	if err != nil {
		return nil, err
	}
	p.AccessLogs = logs
	return p, nil
}

// parseTunnel checks a tunneling_config. The hostname must be a literal
// host:port: Envoy's command operators in it are not carried out.
func parseTunnel(tc *tcpv3.TcpProxy_TunnelingConfig) (*Tunnel, error) {
	h := tc.GetHostname()
	if strings.Contains(h, "%") {
		return nil, fmt.Errorf("tunneling_config.hostname %q: command operators are not supported", h)
	}
	if host, port, err := net.SplitHostPort(h); err != nil || host == "" || port == "" || strings.ContainsAny(h, " \r\n\t") {
		return nil, fmt.Errorf("tunneling_config.hostname %q: want host:port", h)
	}
	t := &Tunnel{Hostname: h, Post: tc.GetUsePost(), PostPath: tc.GetPostPath()}
	if t.PostPath != "" && !t.Post {
		return nil, fmt.Errorf("tunneling_config.post_path %q: set without use_post", t.PostPath)
	}
	if t.Post && t.PostPath == "" {
		t.PostPath = "/"
	}
	if t.PostPath != "" && (!strings.HasPrefix(t.PostPath, "/") || strings.ContainsAny(t.PostPath, " \r\n\t")) {
		return nil, fmt.Errorf("tunneling_config.post_path %q: want an absolute path", t.PostPath)
	}
	return t, nil
}

// UpgradeAllowed reports whether an upgrade of type t (lower-case, e.g.
// "websocket" or "connect") may pass on route action a, as Envoy decides it:
// the connection manager must list the type, and the route may turn it on or
// off.
func (m *HTTPManager) UpgradeAllowed(t string, a *RouteAction) bool {
	enabled, ok := m.Upgrades[t]
	if !ok {
		return false
	}
	if a != nil {
		if v, ok := a.Upgrades[t]; ok {
			return v
		}
	}
	return enabled
}
