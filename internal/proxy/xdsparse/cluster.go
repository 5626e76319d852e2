package xdsparse

import (
	"time"
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

// RetryBudget is Envoy's retry budget: the retries in flight may be
// Percent of the cluster's active (and pending) requests, never fewer than
// MinConcurrency. With an Interval, requests started within it count too,
// whether or not they ended.
type RetryBudget struct {
	Percent        float64
	MinConcurrency uint32
	Interval       time.Duration
}
