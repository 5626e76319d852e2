package xdsparse

import (
	"fmt"
	"math"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ParseCluster parses a generated Cluster through the wire decoder, as
// the proxy receives it: the tests build clusters with go-control-plane's
// types, mast-proxy does not link them.
func ParseCluster(c *clusterv3.Cluster) (*Cluster, error) {
	b, err := proto.Marshal(c)
	if err != nil {
		return nil, err
	}
	_, out, err := DecodeCluster(b)
	return out, err
}

// generatedCluster is the CDS path DecodeCluster replaced, kept as the
// oracle: go-control-plane's generated types, checkFields, then the parse.
func generatedCluster(c *clusterv3.Cluster) (*Cluster, error) {
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
	ss, err := genSlowStart(c)
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
			if !(b.Percent >= 0 && b.Percent <= 100) { // fixed with the wire decoder: NaN was accepted
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
		h2, err := genH2Options(c.GetHttp2ProtocolOptions())
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
	// Fixed with the wire decoder: this one was honoured in clusterRules but not read.
	if n := c.GetCommonHttpProtocolOptions().GetMaxRequestsPerConnection(); n != nil {
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
			h2, err := genH2Options(h2opts)
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
			codes, err := genOutlierErrorMatcher(od.GetErrorMatcher())
			if err != nil {
				return nil, fail("typed_extension_protocol_options[%s]: %v", httpProtocolOptionsName, err)
			}
			out.OutlierErrorCodes = codes
		}
	}
	tc, err := generatedTransportSocket(c.GetTransportSocket(), true)
	if err != nil {
		return nil, fail("%v", err)
	}
	var matchSockets []*corev3.TransportSocket
	for _, m := range c.GetTransportSocketMatches() {
		matchSockets = append(matchSockets, m.GetTransportSocket())
	}
	if out.ProxyProtocol, err = generatedClusterProxyProtocol(c.GetTransportSocket(), matchSockets); err != nil {
		return nil, fail("%v", err)
	}
	out.TLS = tc
	if ms := c.GetTransportSocketMatches(); len(ms) > 0 {
		if out.TLSMatches, err = genTransportSocketMatches(ms); err != nil {
			return nil, fail("%v", err)
		}
	}
	if p := c.GetCommonLbConfig().GetHealthyPanicThreshold(); p != nil {
		if !(p.GetValue() >= 0 && p.GetValue() <= 100) { // fixed with the wire decoder: NaN was accepted
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
	od, err := genOutlier(c)
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

// parseH2Options reads the honoured Http2ProtocolOptions fields.
func genH2Options(o *corev3.Http2ProtocolOptions) (H2Options, error) {
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

// parseOutlier reads outlier_detection with Envoy's defaults; nil when the
// cluster has none. Success-rate and failure-percentage ejection are not
// implemented (Istio disables the former and never sets the latter).
func genOutlier(c *clusterv3.Cluster) (*OutlierDetection, error) {
	lat, err := genLatencyOutlier(c)
	if err != nil {
		return nil, err
	}
	od := c.GetOutlierDetection()
	if od == nil {
		return nil, nil
	}
	pct := func(field string, v uint32) error {
		if v > 100 {
			return fmt.Errorf("outlier_detection.%s %d: over 100", field, v)
		}
		return nil
	}
	out := &OutlierDetection{
		Consecutive5xx:     u32or(od.GetConsecutive_5Xx(), 5),
		Enforcing5xx:       u32or(od.GetEnforcingConsecutive_5Xx(), 100),
		ConsecutiveGateway: u32or(od.GetConsecutiveGatewayFailure(), 5),
		EnforcingGateway:   u32or(od.GetEnforcingConsecutiveGatewayFailure(), 0),
		MaxEjectionPercent: u32or(od.GetMaxEjectionPercent(), 10),
		BaseEjectionTime:   30 * time.Second,
		MaxEjectionTime:    300 * time.Second,
		Latency:            lat,
	}
	if od.GetSplitExternalLocalOriginErrors() {
		// The local-origin counters take effect only when split.
		out.SplitLocalOrigin = true
		out.ConsecutiveLocal = u32or(od.GetConsecutiveLocalOriginFailure(), 5)
		out.EnforcingLocal = u32or(od.GetEnforcingConsecutiveLocalOriginFailure(), 100)
	}
	if v := od.GetEnforcingSuccessRate(); v != nil && v.GetValue() != 0 {
		return nil, fmt.Errorf("outlier_detection.enforcing_success_rate %d: success-rate ejection is not supported by mast-proxy; set 0", v.GetValue())
	}
	if d := od.GetInterval(); d != nil {
		if out.Interval = d.AsDuration(); out.Interval <= 0 {
			return nil, fmt.Errorf("outlier_detection.interval: must be > 0")
		}
	}
	for _, p := range []struct {
		name string
		v    uint32
	}{{"enforcing_consecutive_5xx", out.Enforcing5xx}, {"enforcing_consecutive_gateway_failure", out.EnforcingGateway},
		{"max_ejection_percent", out.MaxEjectionPercent}, {"enforcing_consecutive_local_origin_failure", out.EnforcingLocal}} {
		if err := pct(p.name, p.v); err != nil {
			return nil, err
		}
	}
	if d := od.GetBaseEjectionTime(); d != nil {
		if out.BaseEjectionTime = d.AsDuration(); out.BaseEjectionTime <= 0 {
			return nil, fmt.Errorf("outlier_detection.base_ejection_time: must be > 0")
		}
	}
	if d := od.GetMaxEjectionTime(); d != nil {
		if out.MaxEjectionTime = d.AsDuration(); out.MaxEjectionTime <= 0 {
			return nil, fmt.Errorf("outlier_detection.max_ejection_time: must be > 0")
		}
	}
	out.MaxEjectionTime = max(out.MaxEjectionTime, out.BaseEjectionTime)
	return out, nil
}

// parseTransportSocketMatches parses a cluster's transport_socket_matches.
func genTransportSocketMatches(ms []*clusterv3.Cluster_TransportSocketMatch) ([]TransportSocketMatch, error) {
	out := make([]TransportSocketMatch, 0, len(ms))
	for i, m := range ms {
		tm := TransportSocketMatch{Name: m.GetName(), Match: map[string]string{}}
		for k, v := range m.GetMatch().GetFields() {
			if _, ok := v.GetKind().(*structpb.Value_StringValue); !ok {
				return nil, fmt.Errorf("transport_socket_matches[%d] %q: match %q: only string values are supported", i, m.GetName(), k)
			}
			tm.Match[k] = v.GetStringValue()
		}
		tc, err := generatedTransportSocket(m.GetTransportSocket(), true)
		if err != nil {
			return nil, fmt.Errorf("transport_socket_matches[%d] %q: %w", i, m.GetName(), err)
		}
		tm.TLS = tc
		out = append(out, tm)
	}
	return out, nil
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

func u32or(v *wrapperspb.UInt32Value, def uint32) uint32 {
	if v == nil {
		return def
	}
	return v.GetValue()
}

// genSlowStart is parseSlowStart before the wire decoder: reads round_robin_lb_config / least_request_lb_config
// (their other fields are refused by the cluster's field rules); least
// request's choice_count and active_request_bias are refused unless at
// their defaults.
func genSlowStart(c *clusterv3.Cluster) (*SlowStart, error) {
	var sc *clusterv3.Cluster_SlowStartConfig
	switch lc := c.GetLbConfig().(type) {
	case nil:
		return nil, nil
	case *clusterv3.Cluster_RoundRobinLbConfig_:
		if c.GetLbPolicy() != clusterv3.Cluster_ROUND_ROBIN {
			return nil, fmt.Errorf("round_robin_lb_config: lb_policy is %v", c.GetLbPolicy())
		}
		sc = lc.RoundRobinLbConfig.GetSlowStartConfig()
	case *clusterv3.Cluster_LeastRequestLbConfig_:
		if c.GetLbPolicy() != clusterv3.Cluster_LEAST_REQUEST {
			return nil, fmt.Errorf("least_request_lb_config: lb_policy is %v", c.GetLbPolicy())
		}
		lr := lc.LeastRequestLbConfig
		if n := lr.GetChoiceCount(); n != nil && n.GetValue() != 2 {
			return nil, fmt.Errorf("least_request_lb_config.choice_count %d: only 2 is supported", n.GetValue())
		}
		if b := lr.GetActiveRequestBias(); b != nil && b.GetDefaultValue() != 1 {
			return nil, fmt.Errorf("least_request_lb_config.active_request_bias: not supported")
		}
		sc = lr.GetSlowStartConfig()
	default:
		return nil, nil // ring hash and maglev configs are read with their policies
	}
	if sc == nil {
		return nil, nil
	}
	w := sc.GetSlowStartWindow()
	if w == nil || w.AsDuration() <= 0 {
		return nil, fmt.Errorf("slow_start_config.slow_start_window: must be > 0")
	}
	out := &SlowStart{Window: w.AsDuration(), Aggression: 1, MinWeight: 0.1}
	if a := sc.GetAggression(); a != nil {
		// Mast has no runtime: the runtime key (istiod sets "(") is not read.
		// As Envoy: an aggression that is not positive counts as 1.
		if v := a.GetDefaultValue(); v > 0 && !math.IsInf(v, 0) {
			out.Aggression = v
		}
	}
	if p := sc.GetMinWeightPercent(); p != nil {
		if p.GetValue() < 0 || p.GetValue() > 100 || math.IsNaN(p.GetValue()) {
			return nil, fmt.Errorf("slow_start_config.min_weight_percent %v: want 0-100", p.GetValue())
		}
		out.MinWeight = p.GetValue() / 100
	}
	return out, nil
}

// genOutlierErrorMatcher is parseOutlierErrorMatcher before the wire decoder: reads HttpProtocolOptions'
// outlier_detection.error_matcher in the shape istiod and mastd generate
// for outlierDetectionHttpErrorCodes: a response-headers match of one
// :status exact value, or an or_match of such matches. It returns the
// status codes; any other matcher is refused by name.
func genOutlierErrorMatcher(m *matcherv3.MatchPredicate) ([]int, error) {
	const field = "outlier_detection.error_matcher"
	one := func(p *matcherv3.MatchPredicate) (int, error) {
		hm := p.GetHttpResponseHeadersMatch()
		if hm == nil || len(hm.GetHeaders()) != 1 {
			return 0, fmt.Errorf("%s: only http_response_headers_match rules of one :status header (or their or_match) are supported", field)
		}
		h := hm.GetHeaders()[0]
		if h.GetName() != ":status" || h.GetInvertMatch() || h.GetTreatMissingHeaderAsEmpty() {
			return 0, fmt.Errorf("%s: header %q: only a :status exact match is supported", field, h.GetName())
		}
		v := h.GetExactMatch()
		if sm, ok := h.GetHeaderMatchSpecifier().(*routev3.HeaderMatcher_StringMatch); ok {
			if sm.StringMatch.GetIgnoreCase() {
				return 0, fmt.Errorf("%s: :status: ignore_case is not supported", field)
			}
			v = sm.StringMatch.GetExact()
		} else if _, ok := h.GetHeaderMatchSpecifier().(*routev3.HeaderMatcher_ExactMatch); !ok {
			return 0, fmt.Errorf("%s: :status: only an exact match is supported", field)
		}
		code, err := strconv.Atoi(v)
		if err != nil || code < 100 || code > 599 {
			return 0, fmt.Errorf("%s: :status %q: want a status code 100-599", field, v)
		}
		return code, nil
	}
	var rules []*matcherv3.MatchPredicate
	if om := m.GetOrMatch(); om != nil {
		rules = om.GetRules()
	} else {
		rules = []*matcherv3.MatchPredicate{m}
	}
	codes := make([]int, 0, len(rules))
	for _, r := range rules {
		c, err := one(r)
		if err != nil {
			return nil, err
		}
		codes = append(codes, c)
	}
	return codes, nil
}

// genLatencyOutlier is parseLatencyOutlier before the wire decoder: reads cluster metadata mast.latency_outlier (nil when
// absent); every key must be known.
func genLatencyOutlier(c *clusterv3.Cluster) (*LatencyOutlier, error) {
	md := c.GetMetadata().GetFilterMetadata()["mast"]
	if md == nil {
		return nil, nil
	}
	out := &LatencyOutlier{Percentile: 90, Factor: 3, MinimumExcess: 10 * time.Millisecond, RequestVolume: 20, MinimumHosts: 3}
	for k, v := range md.GetFields() {
		if k != "latency_outlier" {
			return nil, fmt.Errorf("metadata.filter_metadata.mast.%s: unknown", k)
		}
		for name, f := range v.GetStructValue().GetFields() {
			num := f.GetNumberValue()
			var err error
			switch name {
			case "percentile":
				if out.Percentile = num; num <= 0 || num > 100 {
					err = fmt.Errorf("must be in (0, 100]")
				}
			case "factor":
				if out.Factor = num; num < 1 {
					err = fmt.Errorf("must be >= 1")
				}
			case "minimum_excess":
				out.MinimumExcess, err = time.ParseDuration(f.GetStringValue())
			case "request_volume":
				if out.RequestVolume = uint32(num); num < 1 {
					err = fmt.Errorf("must be >= 1")
				}
			case "minimum_hosts":
				if out.MinimumHosts = uint32(num); num < 2 {
					err = fmt.Errorf("must be >= 2")
				}
			default:
				err = fmt.Errorf("unknown")
			}
			if err != nil {
				return nil, fmt.Errorf("metadata.filter_metadata.mast.latency_outlier.%s: %w", name, err)
			}
		}
	}
	if c.GetOutlierDetection() == nil {
		return nil, fmt.Errorf("metadata.filter_metadata.mast.latency_outlier: needs outlier_detection")
	}
	return out, nil
}
