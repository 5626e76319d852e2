package xdsparse

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
)

// DiscoveryType is how a cluster finds its endpoints.
type DiscoveryType uint8

// Cluster discovery types.
const (
	Static DiscoveryType = iota
	StrictDNS
	LogicalDNS
	EDS
	OriginalDst
)

var discoveryNames = [...]string{"STATIC", "STRICT_DNS", "LOGICAL_DNS", "EDS", "ORIGINAL_DST"}

func (d DiscoveryType) String() string { return discoveryNames[d] }

// LBPolicy is a load-balancing policy.
type LBPolicy uint8

// Load-balancing policies.
const (
	RoundRobin LBPolicy = iota
	LeastRequest
	Random
	RingHash
	Maglev
	ClusterProvided
)

var lbNames = [...]string{"ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "RING_HASH", "MAGLEV", "CLUSTER_PROVIDED"}

func (p LBPolicy) String() string { return lbNames[p] }

// Cluster is a parsed Cluster.
type Cluster struct {
	Name           string
	Type           DiscoveryType
	EDSName        string // the ClusterLoadAssignment name, for EDS
	ConnectTimeout time.Duration
	LB             LBPolicy
	RingSize       uint64 // ring hash minimum ring size / maglev table size
	// SlowStart ramps up new hosts' weight (slowstart.go); nil for none.
	SlowStart *SlowStart
	HTTP2     bool
	// H2 are the HTTP/2 client options (http2_protocol_options of the
	// cluster or of its HttpProtocolOptions); they apply to every HTTP/2
	// upstream connection of the cluster.
	H2 H2Options
	// UseDownstreamProtocol speaks to the upstream the protocol the client used.
	UseDownstreamProtocol bool
	IdleTimeout           time.Duration
	// MaxConnectionDuration: an upstream HTTP/1 connection that old takes
	// no more requests and closes (common_http_protocol_options; 0: none).
	MaxConnectionDuration time.Duration
	MaxRequestsPerConn    uint32
	// Circuit breaker thresholds (Envoy's defaults are 1024, retries 3).
	MaxConnections, MaxPending, MaxRequests, MaxRetries uint32
	// RetryBudget, when set, replaces MaxRetries (Envoy's retry_budget).
	RetryBudget *RetryBudget
	// PanicThreshold is the percentage of usable hosts under which the
	// balancer ignores outlier ejections (Envoy's healthy_panic_threshold,
	// default 50; 0 never panics: with every host ejected, no host is picked).
	PanicThreshold float64
	// LocalityWeighted picks a locality by its load_balancing_weight (times
	// its availability) before a host within it (common_lb_config
	// locality_weighted_lb_config); otherwise locality weights are unused.
	LocalityWeighted bool
	// Keepalive sets TCP keep-alive on upstream connections; nil keeps the
	// system's default.
	Keepalive *TCPKeepalive
	// Outlier is the outlier detection (outlier.go), nil for none.
	Outlier *OutlierDetection
	// OutlierErrorCodes, when set, are the only HTTP statuses outlier
	// detection counts as errors (HttpProtocolOptions'
	// outlier_detection.error_matcher); nil: every 5xx.
	OutlierErrorCodes []int
	// Endpoints is the inline load_assignment (STATIC and DNS clusters).
	Endpoints *EndpointSet
	// TLS is the transport_socket's TLS context, nil for plaintext;
	// TLSMatches are the transport_socket_matches, which choose per endpoint
	// (see TLSFor).
	TLS        *TLSContext
	TLSMatches []TransportSocketMatch
	// ProxyProtocol is the PROXY protocol version (1 or 2) whose header
	// starts every upstream connection (the upstream_proxy_protocol
	// transport socket); 0 for none.
	ProxyProtocol uint8
	// Services are the hosts of Istio's metadata istio.services[] (inbound
	// clusters: the services of the workload's port), for telemetry.
	Services []string
}

// H2Options are the honoured fields of Http2ProtocolOptions.
type H2Options struct {
	// MaxConcurrentStreams caps the streams per connection (0: the
	// peer's limit only).
	MaxConcurrentStreams uint32
	// KeepaliveInterval and KeepaliveTimeout are connection_keepalive: a
	// PING every interval, the connection closed when its ACK takes longer
	// than the timeout. Zero interval: no interval PINGs.
	KeepaliveInterval, KeepaliveTimeout time.Duration
}

// parseH2Options reads the honoured Http2ProtocolOptions fields.
func parseH2Options(o *corev3.Http2ProtocolOptions) (H2Options, error) {
	var out H2Options
	if o == nil {
		return out, nil
	}
	if n := o.GetMaxConcurrentStreams(); n != nil {
		out.MaxConcurrentStreams = n.GetValue()
	}
	if ka := o.GetConnectionKeepalive(); ka != nil {
		out.KeepaliveInterval = ka.GetInterval().AsDuration()
		out.KeepaliveTimeout = ka.GetTimeout().AsDuration()
		if ka.GetTimeout() == nil || out.KeepaliveTimeout < time.Millisecond {
			return out, fmt.Errorf("http2_protocol_options.connection_keepalive.timeout: required, at least 1ms")
		}
		if out.KeepaliveInterval < 0 {
			return out, fmt.Errorf("http2_protocol_options.connection_keepalive.interval: negative")
		}
	}
	return out, nil
}

// TCPKeepalive is upstream_connection_options.tcp_keepalive; zero fields
// keep the system's values.
type TCPKeepalive struct {
	Probes         int
	Idle, Interval time.Duration
}

const httpProtocolOptionsName = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// Endpoint is one upstream host.
type Endpoint struct {
	Address  string // host:port
	Weight   uint32
	Healthy  bool
	Locality string // region/zone/subzone
	// TLSMatch is the endpoint's envoy.transport_socket_match metadata
	// (Istio's tlsMode), empty when it has none.
	TLSMatch Metadata
}

// LocalityGroup is a locality's endpoints.
type LocalityGroup struct {
	Locality string
	// Weight is the locality's load_balancing_weight, 0 when unset (such a
	// locality gets no traffic under locality-weighted balancing, as in
	// Envoy).
	Weight    uint32
	Priority  uint32
	Endpoints []Endpoint
}

// EndpointSet is a parsed ClusterLoadAssignment.
type EndpointSet struct {
	Name       string
	Localities []LocalityGroup
	// Overprovisioning is policy.overprovisioning_factor in percent
	// (Envoy's default 140): a priority or locality whose healthy share
	// times this factor reaches 100 % takes its whole load.
	Overprovisioning uint32
}

// DefaultOverprovisioning is Envoy's overprovisioning factor, 1.4.
const DefaultOverprovisioning = 140

// ParseCluster parses and validates a Cluster.
func ParseCluster(c *clusterv3.Cluster) (*Cluster, error) {
	if c.GetName() == "" {
		return nil, fmt.Errorf("cluster: name is empty")
	}
	fail := func(format string, a ...any) error {
		return fmt.Errorf("cluster %q: %s", c.GetName(), fmt.Sprintf(format, a...))
	}
	if err := checkFields(c, clusterRules); err != nil {
		return nil, fail("%v", err)
	}
	out := &Cluster{Name: c.GetName(), ConnectTimeout: 5 * time.Second, IdleTimeout: time.Hour, PanicThreshold: 50,
		MaxConnections: 1024, MaxPending: 1024, MaxRequests: 1024, MaxRetries: 3}
	for _, v := range c.GetMetadata().GetFilterMetadata()["istio"].GetFields()["services"].GetListValue().GetValues() {
		if h := v.GetStructValue().GetFields()["host"].GetStringValue(); h != "" {
			out.Services = append(out.Services, h)
		}
	}
	switch t := c.GetClusterDiscoveryType().(type) {
	case *clusterv3.Cluster_Type:
		switch t.Type {
		case clusterv3.Cluster_STATIC:
			out.Type = Static
		case clusterv3.Cluster_STRICT_DNS:
			out.Type = StrictDNS
		case clusterv3.Cluster_LOGICAL_DNS:
			out.Type = LogicalDNS
		case clusterv3.Cluster_EDS:
			out.Type = EDS
		case clusterv3.Cluster_ORIGINAL_DST:
			out.Type = OriginalDst
		default:
			return nil, fail("type %v: not supported", t.Type)
		}
	case nil:
		out.Type = Static
	default:
		return nil, fail("cluster_type: custom cluster types are not supported")
	}
	if out.Type == EDS {
		out.EDSName = c.GetEdsClusterConfig().GetServiceName()
		if out.EDSName == "" {
			out.EDSName = c.GetName()
		}
		if cs := c.GetEdsClusterConfig().GetEdsConfig(); cs != nil && cs.GetAds() == nil && cs.GetConfigSourceSpecifier() != nil {
			return nil, fail("eds_cluster_config.eds_config: only ADS is supported")
		}
	}
	if d := c.GetConnectTimeout(); d != nil {
		out.ConnectTimeout = d.AsDuration()
		if out.ConnectTimeout <= 0 {
			return nil, fail("connect_timeout: must be > 0")
		}
	}
	if c.GetLoadBalancingPolicy() != nil {
		return nil, fail("load_balancing_policy: typed policies are not supported; use lb_policy")
	}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		out.LB = RoundRobin
	case clusterv3.Cluster_LEAST_REQUEST:
		out.LB = LeastRequest
	case clusterv3.Cluster_RANDOM:
		out.LB = Random
	case clusterv3.Cluster_RING_HASH:
		out.LB = RingHash
		out.RingSize = 1024
		if n := c.GetRingHashLbConfig().GetMinimumRingSize(); n != nil {
			out.RingSize = n.GetValue()
		}
		if out.RingSize == 0 || out.RingSize > 1<<23 {
			return nil, fail("ring_hash_lb_config.minimum_ring_size %d: want 1-8388608", out.RingSize)
		}
	case clusterv3.Cluster_MAGLEV:
		out.LB = Maglev
		out.RingSize = 65537
		if n := c.GetMaglevLbConfig().GetTableSize(); n != nil {
			out.RingSize = n.GetValue()
		}
		if !isPrime(out.RingSize) || out.RingSize > 5000011 {
			return nil, fail("maglev_lb_config.table_size %d: must be a prime <= 5000011", out.RingSize)
		}
	case clusterv3.Cluster_CLUSTER_PROVIDED:
		out.LB = ClusterProvided
	default:
		return nil, fail("lb_policy %v: not supported", c.GetLbPolicy())
	}
	ss, err := parseSlowStart(c)
	if err != nil {
		return nil, fail("%v", err)
	}
	out.SlowStart = ss
	for _, th := range c.GetCircuitBreakers().GetThresholds() {
		if th.GetPriority() != corev3.RoutingPriority_DEFAULT {
			continue
		}
		set := func(dst *uint32, v interface{ GetValue() uint32 }) {
			if v != nil {
				*dst = v.GetValue()
			}
		}
		if v := th.GetMaxConnections(); v != nil {
			set(&out.MaxConnections, v)
		}
		if v := th.GetMaxPendingRequests(); v != nil {
			set(&out.MaxPending, v)
		}
		if v := th.GetMaxRequests(); v != nil {
			set(&out.MaxRequests, v)
		}
		if v := th.GetMaxRetries(); v != nil {
			set(&out.MaxRetries, v)
		}
		if rb := th.GetRetryBudget(); rb != nil {
			b := &RetryBudget{Percent: 20, MinConcurrency: 3}
			if p := rb.GetBudgetPercent(); p != nil {
				b.Percent = p.GetValue()
			}
			if b.Percent < 0 || b.Percent > 100 {
				return nil, fail("circuit_breakers retry_budget.budget_percent %v: must be in 0..100", b.Percent)
			}
			if v := rb.GetMinRetryConcurrency(); v != nil {
				b.MinConcurrency = v.GetValue()
			}
			if d := rb.GetBudgetInterval(); d != nil {
				if b.Interval = d.AsDuration(); b.Interval < 0 {
					return nil, fail("circuit_breakers retry_budget.budget_interval: negative")
				}
			}
			out.RetryBudget = b
		}
	}
	if c.GetHttp2ProtocolOptions() != nil {
		out.HTTP2 = true
		h2, err := parseH2Options(c.GetHttp2ProtocolOptions())
		if err != nil {
			return nil, fail("%v", err)
		}
		out.H2 = h2
	}
	if d := c.GetCommonHttpProtocolOptions().GetIdleTimeout(); d != nil {
		out.IdleTimeout = d.AsDuration()
	}
	if d := c.GetCommonHttpProtocolOptions().GetMaxConnectionDuration(); d != nil {
		out.MaxConnectionDuration = d.AsDuration()
	}
	if n := c.GetMaxRequestsPerConnection(); n != nil {
		out.MaxRequestsPerConn = n.GetValue()
	}
	for name := range c.GetTypedExtensionProtocolOptions() {
		if name != httpProtocolOptionsName {
			return nil, fail("typed_extension_protocol_options[%s]: not supported by mast-proxy", name)
		}
	}
	if a, ok := c.GetTypedExtensionProtocolOptions()[httpProtocolOptionsName]; ok {
		var po httpv3.HttpProtocolOptions
		if err := a.UnmarshalTo(&po); err != nil {
			return nil, fail("typed_extension_protocol_options: %v", err)
		}
		if err := checkFields(&po, clusterRules); err != nil {
			return nil, fail("typed_extension_protocol_options[%s]: %v", httpProtocolOptionsName, err)
		}
		h2opts := po.GetExplicitHttpConfig().GetHttp2ProtocolOptions()
		if e := po.GetExplicitHttpConfig(); e != nil {
			out.HTTP2 = h2opts != nil
		}
		if h2opts == nil {
			h2opts = po.GetUseDownstreamProtocolConfig().GetHttp2ProtocolOptions()
		}
		if h2opts == nil {
			h2opts = po.GetAutoConfig().GetHttp2ProtocolOptions()
		}
		if h2opts != nil {
			h2, err := parseH2Options(h2opts)
			if err != nil {
				return nil, fail("typed_extension_protocol_options[%s]: %v", httpProtocolOptionsName, err)
			}
			out.H2 = h2
		}
		if po.GetUseDownstreamProtocolConfig() != nil {
			out.UseDownstreamProtocol = true
		}
		if po.GetAutoConfig() != nil {
			out.UseDownstreamProtocol = true
		}
		if d := po.GetCommonHttpProtocolOptions().GetIdleTimeout(); d != nil {
			out.IdleTimeout = d.AsDuration()
		}
		if d := po.GetCommonHttpProtocolOptions().GetMaxConnectionDuration(); d != nil {
			out.MaxConnectionDuration = d.AsDuration()
		}
		if n := po.GetCommonHttpProtocolOptions().GetMaxRequestsPerConnection(); n != nil {
			out.MaxRequestsPerConn = n.GetValue()
		}
		if od := po.GetOutlierDetection(); od.GetErrorMatcher() != nil {
			codes, err := parseOutlierErrorMatcher(od.GetErrorMatcher())
			if err != nil {
				return nil, fail("typed_extension_protocol_options[%s]: %v", httpProtocolOptionsName, err)
			}
			out.OutlierErrorCodes = codes
		}
	}
	tc, err := parseTransportSocket(c.GetTransportSocket(), true)
	if err != nil {
		return nil, fail("%v", err)
	}
	if out.ProxyProtocol, err = clusterProxyProtocol(c); err != nil {
		return nil, fail("%v", err)
	}
	out.TLS = tc
	if ms := c.GetTransportSocketMatches(); len(ms) > 0 {
		if out.TLSMatches, err = parseTransportSocketMatches(ms); err != nil {
			return nil, fail("%v", err)
		}
	}
	if p := c.GetCommonLbConfig().GetHealthyPanicThreshold(); p != nil {
		if p.GetValue() < 0 || p.GetValue() > 100 {
			return nil, fail("common_lb_config.healthy_panic_threshold %v: want 0-100", p.GetValue())
		}
		out.PanicThreshold = p.GetValue()
	}
	if lc := c.GetCommonLbConfig(); lc != nil {
		switch lc.GetLocalityConfigSpecifier().(type) {
		case nil:
		case *clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_:
			out.LocalityWeighted = true
		default:
			return nil, fail("common_lb_config: zone_aware_lb_config is not supported (locality_weighted_lb_config is)")
		}
	}
	if ka := c.GetUpstreamConnectionOptions().GetTcpKeepalive(); ka != nil {
		out.Keepalive = &TCPKeepalive{Probes: int(u32or(ka.GetKeepaliveProbes(), 0)),
			Idle:     time.Duration(u32or(ka.GetKeepaliveTime(), 0)) * time.Second,
			Interval: time.Duration(u32or(ka.GetKeepaliveInterval(), 0)) * time.Second}
	}
	od, err := parseOutlier(c)
	if err != nil {
		return nil, fail("%v", err)
	}
	out.Outlier = od
	if la := c.GetLoadAssignment(); la != nil {
		es, err := ParseEndpoints(la)
		if err != nil {
			return nil, fail("load_assignment: %v", err)
		}
		out.Endpoints = es
	}
	if (out.Type == StrictDNS || out.Type == LogicalDNS) && out.Endpoints == nil {
		return nil, fail("load_assignment: required for %v clusters", out.Type)
	}
	if out.Type == Static && out.Endpoints == nil {
		// A static cluster without hosts (Istio's BlackHoleCluster) is valid:
		// every request to it fails with "no healthy upstream".
		out.Endpoints = &EndpointSet{Name: out.Name}
	}
	return out, nil
}

func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for i := uint64(2); i*i <= n; i++ {
		if n%i == 0 {
			return false
		}
	}
	return true
}

// ParseEndpoints parses a ClusterLoadAssignment (a Cluster's inline
// load_assignment) with the EDS decoder, DecodeEndpoints.
func ParseEndpoints(la *endpointv3.ClusterLoadAssignment) (*EndpointSet, error) {
	b, err := proto.Marshal(la)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return decodeEndpointSet(b)
}

// RetryBudget is Envoy's retry budget: the retries in flight may be
// Percent of the cluster's active (and pending) requests, never fewer than
// MinConcurrency. With an Interval, requests started within it count too,
// whether or not they ended.
type RetryBudget struct {
	Percent        float64
	MinConcurrency uint32
	Interval       time.Duration
}
