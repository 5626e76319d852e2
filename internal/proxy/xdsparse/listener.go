package xdsparse

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/pathnorm"
	"github.com/mast-mesh/mast/internal/proxy/pbwire"
	"github.com/mast-mesh/mast/internal/telemetry/accesslog"
	"github.com/mast-mesh/mast/internal/telemetry/metrics"
	"github.com/mast-mesh/mast/internal/telemetry/tracing"
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

// Field numbers of envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
// and the messages inside it.
const (
	tpStatPrefix, tpCluster, tpAccessLog, tpIdleTimeout = 1, 2, 5, 8
	tpWeighted, tpTunnel, tpMaxConnDuration             = 10, 12, 13

	tpwClusters, tpwName, tpwWeight = 1, 1, 2

	tunHostname, tunUsePost, tunPostPath = 1, 2, 5
)

// tcpProxyConfigName is tcp_proxy's typed_config message.
const tcpProxyConfigName = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"

func parseTCPProxyWire(t *pbwire.Msg) (*TCPProxy, error) {
	if err := checkWire(t, tcpProxyRules); err != nil {
		return nil, err
	}
	p := &TCPProxy{StatPrefix: t.Str(tpStatPrefix), IdleTimeout: time.Hour}
	switch {
	case t.Has(tpCluster):
		if t.Str(tpCluster) == "" {
			return nil, fmt.Errorf("cluster: empty")
		}
		p.Cluster = t.Str(tpCluster)
	case t.Has(tpWeighted):
		for i, w := range t.Sub(tpWeighted).Subs(tpwClusters) {
			if w.Str(tpwName) == "" {
				return nil, fmt.Errorf("weighted_clusters.clusters[%d]: name is empty", i)
			}
			weight := uint32(w.U64(tpwWeight))
			p.Weighted = append(p.Weighted, WeightedCluster{Name: w.Str(tpwName), Weight: weight})
			p.TotalWeight += weight
		}
		if p.TotalWeight == 0 {
			return nil, fmt.Errorf("weighted_clusters: total weight is 0")
		}
	default:
		return nil, fmt.Errorf("cluster or weighted_clusters: missing")
	}
	if t.Has(tpIdleTimeout) {
		p.IdleTimeout = wireDuration(t.Bytes(tpIdleTimeout))
	}
	if t.Has(tpMaxConnDuration) {
		p.MaxConnectionDuration = wireDuration(t.Bytes(tpMaxConnDuration))
	}
	if p.IdleTimeout < 0 || p.MaxConnectionDuration < 0 {
		return nil, fmt.Errorf("idle_timeout %v, max_downstream_connection_duration %v: negative", p.IdleTimeout, p.MaxConnectionDuration)
	}
	if t.Has(tpTunnel) {
		tc := t.Sub(tpTunnel)
		tun, err := parseTunnel(tc.Str(tunHostname), tc.U64(tunUsePost) != 0, tc.Str(tunPostPath))
		if err != nil {
			return nil, err
		}
		p.Tunnel = tun
	}
	logs, err := parseAccessLogsWire(t.Subs(tpAccessLog))
	if err != nil {
		return nil, err
	}
	p.AccessLogs = logs
	return p, nil
}

// parseTunnel checks a tunneling_config. The hostname must be a literal
// host:port: Envoy's command operators in it are not carried out.
func parseTunnel(h string, usePost bool, postPath string) (*Tunnel, error) {
	if strings.Contains(h, "%") {
		return nil, fmt.Errorf("tunneling_config.hostname %q: command operators are not supported", h)
	}
	if host, port, err := net.SplitHostPort(h); err != nil || host == "" || port == "" || strings.ContainsAny(h, " \r\n\t") {
		return nil, fmt.Errorf("tunneling_config.hostname %q: want host:port", h)
	}
	t := &Tunnel{Hostname: h, Post: usePost, PostPath: postPath}
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
