package xdsparse

import (
	"fmt"
	"math"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// CDS resources are decoded from the wire (wiredesc.go), so that neither
// envoy.config.cluster.v3 nor envoy.config.endpoint.v3 nor
// envoy.extensions.upstreams.http.v3 is linked into mast-proxy. The
// generated path it replaced is kept in the tests as the oracle
// (TestDecodeClusterMatchesGenerated, FuzzDecodeCluster).

// Field numbers of envoy.config.cluster.v3.Cluster and the messages inside.
const (
	clName, clType, clEDS, clConnectTimeout, clLbPolicy, clMaxRequestsPerConn = 1, 2, 3, 4, 6, 9
	clCircuitBreakers, clHTTP2, clOutlier, clRingHash, clTransportSocket      = 10, 14, 19, 23, 24
	clMetadata, clCommonLb, clCommonHTTP, clUpstreamConn, clLoadAssignment    = 25, 27, 29, 30, 33
	clTypedExtOptions, clClusterType, clLoadBalancingPolicy, clTLSMatches     = 36, 38, 41, 43
	clMaglev                                                                  = 52

	edsConfig, edsServiceName = 1, 2
	// ConfigSource's config_source_specifier members.
	csPath, csAPIConfigSource, csADS, csSelf, csPathConfigSource = 1, 2, 3, 5, 8

	ringMinimumSize, maglevTableSize = 1, 1

	cbThresholds                                                            = 1
	thPriority, thMaxConnections, thMaxPending, thMaxRequests, thMaxRetries = 1, 2, 3, 4, 5
	thRetryBudget                                                           = 8
	rbPercent, rbMinConcurrency, rbInterval                                 = 1, 2, 3

	// envoy.config.core.v3.HttpProtocolOptions, Http2ProtocolOptions, KeepaliveSettings.
	hpoIdleTimeout, hpoMaxConnectionDuration, hpoMaxRequestsPerConn = 1, 3, 6
	h2oMaxConcurrentStreams, h2oConnectionKeepalive                 = 2, 15
	kaInterval, kaTimeout                                           = 1, 2

	// envoy.extensions.upstreams.http.v3.HttpProtocolOptions.
	upoCommon, upoExplicit, upoUseDownstream, upoAuto = 1, 3, 4, 5
	upoOutlier, uodErrorMatcher                       = 8, 1
	upoHTTP2                                          = 2 // http2_protocol_options in each of the three configs

	lbPanicThreshold, lbZoneAware, lbLocalityWeighted = 1, 2, 3
	percentValue                                      = 1

	ucoTCPKeepalive                                   = 1
	tkaProbes, tkaTime, tkaInterval                   = 1, 2, 3
	tsmName, tsmMatch, tsmTransportSocket             = 1, 2, 3
	durSeconds, durNanos                              = 1, 2
	odConsecutive5xx, odInterval, odBaseEjection      = 1, 2, 3
	odMaxEjectionPercent, odEnforcing5xx              = 4, 5
	odEnforcingSuccessRate, odConsecutiveGateway      = 6, 10
	odEnforcingGateway, odSplitLocal, odConsecutiveLO = 11, 12, 13
	odEnforcingLO, odMaxEjectionTime                  = 14, 21
)

// Cluster.DiscoveryType and Cluster.LbPolicy values.
const (
	cdtStatic, cdtStrictDNS, cdtLogicalDNS, cdtEDS, cdtOriginalDst = 0, 1, 2, 3, 4

	lbpRoundRobin, lbpLeastRequest, lbpRingHash, lbpRandom, lbpMaglev, lbpClusterProvided = 0, 1, 2, 3, 5, 6
)

// lbPolicyName prints a Cluster.LbPolicy as the generated enum does.
func lbPolicyName(v int32) string {
	d := &wireDescs[descCluster]
	for _, e := range wireEnums[d.fields[d.find(clLbPolicy)].msg].values {
		if e.num == v {
			return e.name
		}
	}
	return fmt.Sprint(v)
}

// DecodeCluster decodes and parses an encoded Cluster, as a CDS response
// carries it. It returns the cluster name whenever the message could be
// decoded, so that a refused cluster keeps its previous version.
func DecodeCluster(b []byte) (string, *Cluster, error) {
	if err := validateWire(descCluster, b); err != nil {
		return "", nil, fmt.Errorf("cluster: decode: %w", err)
	}
	c := decodeWire(descCluster, b)
	name := c.str(clName)
	if name == "" {
		return "", nil, fmt.Errorf("cluster: name is empty")
	}
	out, err := parseClusterWire(c)
	if err != nil {
		return name, nil, fmt.Errorf("cluster %q: %w", name, err)
	}
	return name, out, nil
}

func parseClusterWire(c *wireMsg) (*Cluster, error) {
	if err := checkWire(c, clusterRules); err != nil {
		return nil, err
	}
	out := &Cluster{Name: c.str(clName), ConnectTimeout: 5 * time.Second, IdleTimeout: time.Hour, PanicThreshold: 50,
		MaxConnections: 1024, MaxPending: 1024, MaxRequests: 1024, MaxRetries: 3}
	out.Services = istioServices(c)
	switch {
	case c.has(clType):
		switch t := int32(c.u64(clType)); t {
		case cdtStatic:
			out.Type = Static
		case cdtStrictDNS:
			out.Type = StrictDNS
		case cdtLogicalDNS:
			out.Type = LogicalDNS
		case cdtEDS:
			out.Type = EDS
		case cdtOriginalDst:
			out.Type = OriginalDst
		default:
			return nil, fmt.Errorf("type %d: not supported", t)
		}
	case c.has(clClusterType):
		return nil, fmt.Errorf("cluster_type: custom cluster types are not supported")
	default:
		out.Type = Static
	}
	if out.Type == EDS {
		ec := c.sub(clEDS)
		out.EDSName = ec.str(edsServiceName)
		if out.EDSName == "" {
			out.EDSName = out.Name
		}
		if cs := ec.sub(edsConfig); ec.has(edsConfig) && !cs.has(csADS) &&
			(cs.has(csPath) || cs.has(csAPIConfigSource) || cs.has(csSelf) || cs.has(csPathConfigSource)) {
			return nil, fmt.Errorf("eds_cluster_config.eds_config: only ADS is supported")
		}
	}
	if c.has(clConnectTimeout) {
		out.ConnectTimeout = wireDuration(c.msg(clConnectTimeout))
		if out.ConnectTimeout <= 0 {
			return nil, fmt.Errorf("connect_timeout: must be > 0")
		}
	}
	if c.has(clLoadBalancingPolicy) {
		return nil, fmt.Errorf("load_balancing_policy: typed policies are not supported; use lb_policy")
	}
	if err := parseLbPolicyWire(c, out); err != nil {
		return nil, err
	}
	ss, err := parseSlowStart(c)
	if err != nil {
		return nil, err
	}
	out.SlowStart = ss
	cb := c.sub(clCircuitBreakers)
	for _, th := range cb.subs(cbThresholds) {
		if th.u64(thPriority) != 0 { // RoutingPriority DEFAULT
			continue
		}
		out.MaxConnections = wrapperU32(th, thMaxConnections, out.MaxConnections)
		out.MaxPending = wrapperU32(th, thMaxPending, out.MaxPending)
		out.MaxRequests = wrapperU32(th, thMaxRequests, out.MaxRequests)
		out.MaxRetries = wrapperU32(th, thMaxRetries, out.MaxRetries)
		if th.has(thRetryBudget) {
			if out.RetryBudget, err = parseRetryBudget(th.sub(thRetryBudget)); err != nil {
				return nil, err
			}
		}
	}
	if c.has(clHTTP2) {
		out.HTTP2 = true
		h2, err := parseH2Wire(c.sub(clHTTP2))
		if err != nil {
			return nil, err
		}
		out.H2 = h2
	}
	common := c.sub(clCommonHTTP)
	if common.has(hpoIdleTimeout) {
		out.IdleTimeout = wireDuration(common.msg(hpoIdleTimeout))
	}
	if common.has(hpoMaxConnectionDuration) {
		out.MaxConnectionDuration = wireDuration(common.msg(hpoMaxConnectionDuration))
	}
	// common_http_protocol_options.max_requests_per_connection takes
	// precedence over the deprecated Cluster field, as in Envoy.
	out.MaxRequestsPerConn = wrapperU32(c, clMaxRequestsPerConn, out.MaxRequestsPerConn)
	out.MaxRequestsPerConn = wrapperU32(common, hpoMaxRequestsPerConn, out.MaxRequestsPerConn)
	if err := parseProtocolOptionsWire(c, out); err != nil {
		return nil, err
	}
	ts := transportSocket(c, clTransportSocket)
	tc, err := parseTransportSocketWire(ts, true)
	if err != nil {
		return nil, err
	}
	var matchSockets []*wireMsg
	for _, m := range c.subs(clTLSMatches) {
		matchSockets = append(matchSockets, transportSocket(m, tsmTransportSocket))
	}
	if out.ProxyProtocol, err = clusterProxyProtocolWire(ts, matchSockets); err != nil {
		return nil, err
	}
	out.TLS = tc
	if ms := c.subs(clTLSMatches); len(ms) > 0 {
		if out.TLSMatches, err = parseTransportSocketMatchesWire(ms); err != nil {
			return nil, err
		}
	}
	if c.has(clCommonLb) {
		lc := c.sub(clCommonLb)
		if lc.has(lbPanicThreshold) {
			p := lc.sub(lbPanicThreshold)
			v := math.Float64frombits(p.u64(percentValue))
			if !(v >= 0 && v <= 100) {
				return nil, fmt.Errorf("common_lb_config.healthy_panic_threshold %v: want 0-100", v)
			}
			out.PanicThreshold = v
		}
		switch {
		case lc.has(lbLocalityWeighted):
			out.LocalityWeighted = true
		case lc.has(lbZoneAware):
			return nil, fmt.Errorf("common_lb_config: zone_aware_lb_config is not supported (locality_weighted_lb_config is)")
		}
	}
	if uc := c.sub(clUpstreamConn); uc.has(ucoTCPKeepalive) {
		ka := uc.sub(ucoTCPKeepalive)
		out.Keepalive = &TCPKeepalive{Probes: int(wrapperU32(ka, tkaProbes, 0)),
			Idle:     time.Duration(wrapperU32(ka, tkaTime, 0)) * time.Second,
			Interval: time.Duration(wrapperU32(ka, tkaInterval, 0)) * time.Second}
	}
	lat, err := parseLatencyOutlier(c)
	if err != nil {
		return nil, err
	}
	if c.has(clOutlier) {
		if out.Outlier, err = parseOutlierWire(c.sub(clOutlier)); err != nil {
			return nil, err
		}
		out.Outlier.Latency = lat
	}
	if c.has(clLoadAssignment) {
		es, err := decodeEndpointSet(c.msg(clLoadAssignment))
		if err != nil {
			return nil, fmt.Errorf("load_assignment: %v", err)
		}
		out.Endpoints = es
	}
	if (out.Type == StrictDNS || out.Type == LogicalDNS) && out.Endpoints == nil {
		return nil, fmt.Errorf("load_assignment: required for %v clusters", out.Type)
	}
	if out.Type == Static && out.Endpoints == nil {
		// A static cluster without hosts (Istio's BlackHoleCluster) is valid:
		// every request to it fails with "no healthy upstream".
		out.Endpoints = &EndpointSet{Name: out.Name}
	}
	return out, nil
}

func parseLbPolicyWire(c *wireMsg, out *Cluster) error {
	switch p := int32(c.u64(clLbPolicy)); p {
	case lbpRoundRobin:
		out.LB = RoundRobin
	case lbpLeastRequest:
		out.LB = LeastRequest
	case lbpRandom:
		out.LB = Random
	case lbpRingHash:
		out.LB = RingHash
		ring := c.sub(clRingHash)
		out.RingSize = wrapperU64(ring, ringMinimumSize, 1024)
		if out.RingSize == 0 || out.RingSize > 1<<23 {
			return fmt.Errorf("ring_hash_lb_config.minimum_ring_size %d: want 1-8388608", out.RingSize)
		}
	case lbpMaglev:
		out.LB = Maglev
		mg := c.sub(clMaglev)
		out.RingSize = wrapperU64(mg, maglevTableSize, 65537)
		if !isPrime(out.RingSize) || out.RingSize > 5000011 {
			return fmt.Errorf("maglev_lb_config.table_size %d: must be a prime <= 5000011", out.RingSize)
		}
	case lbpClusterProvided:
		out.LB = ClusterProvided
	default:
		return fmt.Errorf("lb_policy %s: not supported", lbPolicyName(p))
	}
	return nil
}

// parseProtocolOptionsWire reads typed_extension_protocol_options: only
// the upstream HttpProtocolOptions are known.
func parseProtocolOptionsWire(c *wireMsg, out *Cluster) error {
	keys, values := c.mapEntries(clTypedExtOptions)
	var po []byte
	found := false
	for i, k := range keys {
		if k != httpProtocolOptionsName {
			return fmt.Errorf("typed_extension_protocol_options[%s]: not supported by mast-proxy", k)
		}
		po, found = values[i], true
	}
	if !found {
		return nil
	}
	v, err := unpackAny(po, httpProtocolOptionsName)
	if err != nil {
		return fmt.Errorf("typed_extension_protocol_options: %v", err)
	}
	if err := validateWire(descHTTPProtocolOptions, v); err != nil {
		return fmt.Errorf("typed_extension_protocol_options: %v", err)
	}
	m := decodeWire(descHTTPProtocolOptions, v)
	if err := checkWire(m, clusterRules); err != nil {
		return fmt.Errorf("typed_extension_protocol_options[%s]: %v", httpProtocolOptionsName, err)
	}
	explicit := m.sub(upoExplicit)
	h2 := explicit.has(upoHTTP2)
	h2opts := explicit.sub(upoHTTP2)
	if m.has(upoExplicit) {
		out.HTTP2 = h2
	}
	for _, alt := range []protowire.Number{upoUseDownstream, upoAuto} {
		if !h2 && m.has(alt) {
			cfg := m.sub(alt)
			if h2 = cfg.has(upoHTTP2); h2 {
				h2opts = cfg.sub(upoHTTP2)
			}
		}
	}
	if h2 {
		o, err := parseH2Wire(h2opts)
		if err != nil {
			return fmt.Errorf("typed_extension_protocol_options[%s]: %v", httpProtocolOptionsName, err)
		}
		out.H2 = o
	}
	if m.has(upoUseDownstream) || m.has(upoAuto) {
		out.UseDownstreamProtocol = true
	}
	common := m.sub(upoCommon)
	if common.has(hpoIdleTimeout) {
		out.IdleTimeout = wireDuration(common.msg(hpoIdleTimeout))
	}
	if common.has(hpoMaxConnectionDuration) {
		out.MaxConnectionDuration = wireDuration(common.msg(hpoMaxConnectionDuration))
	}
	out.MaxRequestsPerConn = wrapperU32(common, hpoMaxRequestsPerConn, out.MaxRequestsPerConn)
	if od := m.sub(upoOutlier); od.has(uodErrorMatcher) {
		codes, err := parseOutlierErrorMatcher(od.sub(uodErrorMatcher))
		if err != nil {
			return fmt.Errorf("typed_extension_protocol_options[%s]: %v", httpProtocolOptionsName, err)
		}
		out.OutlierErrorCodes = codes
	}
	return nil
}

// parseRetryBudget reads a circuit breaker threshold's retry_budget with
// Envoy's defaults (20 %, at least 3).
func parseRetryBudget(rb *wireMsg) (*RetryBudget, error) {
	b := &RetryBudget{Percent: 20, MinConcurrency: 3}
	if rb.has(rbPercent) {
		p := rb.sub(rbPercent)
		b.Percent = math.Float64frombits(p.u64(percentValue))
	}
	if !(b.Percent >= 0 && b.Percent <= 100) {
		return nil, fmt.Errorf("circuit_breakers retry_budget.budget_percent %v: must be in 0..100", b.Percent)
	}
	b.MinConcurrency = wrapperU32(rb, rbMinConcurrency, b.MinConcurrency)
	if rb.has(rbInterval) {
		if b.Interval = wireDuration(rb.msg(rbInterval)); b.Interval < 0 {
			return nil, fmt.Errorf("circuit_breakers retry_budget.budget_interval: negative")
		}
	}
	return b, nil
}

// unpackAny returns an encoded google.protobuf.Any's value after checking
// that its type is want, as anypb.UnmarshalTo does.
func unpackAny(b []byte, want string) ([]byte, error) {
	var url string
	var value []byte
	eachField(b, func(f wireField) error {
		if f.typ == protowire.BytesType {
			switch f.num {
			case anyTypeURL:
				url = string(f.b)
			case anyValue:
				value = f.b
			}
		}
		return nil
	})
	if !strings.HasSuffix(url, want) || len(url) != len(want) && url[len(url)-len(want)-1] != '/' {
		name := url
		if i := strings.LastIndexByte(url, '/'); i >= 0 {
			name = url[i+1:]
		}
		if !validFullName(name) {
			name = ""
		}
		return nil, fmt.Errorf("proto: mismatched message type: got %q, want %q", want, name)
	}
	return value, nil
}

// validFullName is protoreflect.FullName.IsValid: dot-separated identifiers.
func validFullName(s string) bool {
	if s == "" {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" || part[0] >= '0' && part[0] <= '9' {
			return false
		}
		for _, r := range part {
			if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				return false
			}
		}
	}
	return true
}

// parseH2Wire reads the honoured Http2ProtocolOptions fields.
func parseH2Wire(o *wireMsg) (H2Options, error) {
	var out H2Options
	out.MaxConcurrentStreams = wrapperU32(o, h2oMaxConcurrentStreams, 0)
	if o.has(h2oConnectionKeepalive) {
		ka := o.sub(h2oConnectionKeepalive)
		out.KeepaliveInterval = wireDuration(ka.msg(kaInterval))
		out.KeepaliveTimeout = wireDuration(ka.msg(kaTimeout))
		if !ka.has(kaTimeout) || out.KeepaliveTimeout < time.Millisecond {
			return out, fmt.Errorf("http2_protocol_options.connection_keepalive.timeout: required, at least 1ms")
		}
		if out.KeepaliveInterval < 0 {
			return out, fmt.Errorf("http2_protocol_options.connection_keepalive.interval: negative")
		}
	}
	return out, nil
}

// parseOutlierWire reads outlier_detection with Envoy's defaults.
// Success-rate and failure-percentage ejection are not implemented (Istio
// disables the former and never sets the latter).
func parseOutlierWire(od *wireMsg) (*OutlierDetection, error) {
	out := &OutlierDetection{
		Consecutive5xx:     wrapperU32(od, odConsecutive5xx, 5),
		Enforcing5xx:       wrapperU32(od, odEnforcing5xx, 100),
		ConsecutiveGateway: wrapperU32(od, odConsecutiveGateway, 5),
		EnforcingGateway:   wrapperU32(od, odEnforcingGateway, 0),
		MaxEjectionPercent: wrapperU32(od, odMaxEjectionPercent, 10),
		BaseEjectionTime:   30 * time.Second,
		MaxEjectionTime:    300 * time.Second,
	}
	if od.u64(odSplitLocal) != 0 {
		// The local-origin counters take effect only when split.
		out.SplitLocalOrigin = true
		out.ConsecutiveLocal = wrapperU32(od, odConsecutiveLO, 5)
		out.EnforcingLocal = wrapperU32(od, odEnforcingLO, 100)
	}
	if v := wrapperU32(od, odEnforcingSuccessRate, 0); v != 0 {
		return nil, fmt.Errorf("outlier_detection.enforcing_success_rate %d: success-rate ejection is not supported by mast-proxy; set 0", v)
	}
	if od.has(odInterval) {
		if out.Interval = wireDuration(od.msg(odInterval)); out.Interval <= 0 {
			return nil, fmt.Errorf("outlier_detection.interval: must be > 0")
		}
	}
	for _, p := range []struct {
		name string
		v    uint32
	}{{"enforcing_consecutive_5xx", out.Enforcing5xx}, {"enforcing_consecutive_gateway_failure", out.EnforcingGateway},
		{"max_ejection_percent", out.MaxEjectionPercent}, {"enforcing_consecutive_local_origin_failure", out.EnforcingLocal}} {
		if p.v > 100 {
			return nil, fmt.Errorf("outlier_detection.%s %d: over 100", p.name, p.v)
		}
	}
	if od.has(odBaseEjection) {
		if out.BaseEjectionTime = wireDuration(od.msg(odBaseEjection)); out.BaseEjectionTime <= 0 {
			return nil, fmt.Errorf("outlier_detection.base_ejection_time: must be > 0")
		}
	}
	if od.has(odMaxEjectionTime) {
		if out.MaxEjectionTime = wireDuration(od.msg(odMaxEjectionTime)); out.MaxEjectionTime <= 0 {
			return nil, fmt.Errorf("outlier_detection.max_ejection_time: must be > 0")
		}
	}
	out.MaxEjectionTime = max(out.MaxEjectionTime, out.BaseEjectionTime)
	return out, nil
}

// parseTransportSocketMatchesWire parses a cluster's transport_socket_matches.
func parseTransportSocketMatchesWire(ms []*wireMsg) ([]TransportSocketMatch, error) {
	out := make([]TransportSocketMatch, 0, len(ms))
	for i, m := range ms {
		name := m.str(tsmName)
		tm := TransportSocketMatch{Name: name, Match: map[string]string{}}
		var match structpb.Struct
		if err := proto.Unmarshal(m.msg(tsmMatch), &match); err != nil {
			return nil, fmt.Errorf("transport_socket_matches[%d] %q: match: %w", i, name, err)
		}
		for k, v := range match.GetFields() {
			if _, ok := v.GetKind().(*structpb.Value_StringValue); !ok {
				return nil, fmt.Errorf("transport_socket_matches[%d] %q: match %q: only string values are supported", i, name, k)
			}
			tm.Match[k] = v.GetStringValue()
		}
		tc, err := parseTransportSocketWire(transportSocket(m, tsmTransportSocket), true)
		if err != nil {
			return nil, fmt.Errorf("transport_socket_matches[%d] %q: %w", i, name, err)
		}
		tm.TLS = tc
		out = append(out, tm)
	}
	return out, nil
}

// istioServices reads the hosts of metadata istio.services[].
func istioServices(c *wireMsg) []string {
	if !c.has(clMetadata) {
		return nil
	}
	istio := c.sub(clMetadata).mapValue(mdFilterMetadata, "istio")
	if istio == nil {
		return nil
	}
	services := istio.mapValue(structFields, "services")
	if services == nil || !services.has(valueList) {
		return nil
	}
	var out []string
	for _, v := range services.sub(valueList).subs(listValues) {
		if !v.has(valueStruct) {
			continue
		}
		if h := v.sub(valueStruct).mapValue(structFields, "host"); h != nil && h.str(valueStr) != "" {
			out = append(out, h.str(valueStr))
		}
	}
	return out
}

// filterMetadata returns the cluster's metadata.filter_metadata[key]
// (false when absent).
func filterMetadata(c *wireMsg, key string) (*structpb.Struct, bool, error) {
	if !c.has(clMetadata) {
		return nil, false, nil
	}
	md := c.sub(clMetadata)
	keys, values := md.mapEntries(mdFilterMetadata)
	for i, k := range keys {
		if k == key {
			var s structpb.Struct
			if err := proto.Unmarshal(values[i], &s); err != nil {
				return nil, false, fmt.Errorf("metadata.filter_metadata[%s]: %w", key, err)
			}
			return &s, true, nil
		}
	}
	return nil, false, nil
}

// wireDuration decodes a google.protobuf.Duration as AsDuration does.
func wireDuration(b []byte) time.Duration {
	var d durationpb.Duration
	eachField(b, func(f wireField) error {
		if f.typ == protowire.VarintType {
			switch f.num {
			case durSeconds:
				d.Seconds = int64(f.v)
			case durNanos:
				d.Nanos = int32(f.v)
			}
		}
		return nil
	})
	return d.AsDuration()
}

// wrapperU64 returns a google.protobuf.UInt64Value field's value, def when absent.
func wrapperU64(m *wireMsg, num protowire.Number, def uint64) uint64 {
	if !m.has(num) {
		return def
	}
	var v uint64
	eachField(m.msg(num), func(f wireField) error {
		if f.num == wrapperValue && f.typ == protowire.VarintType {
			v = f.v
		}
		return nil
	})
	return v
}

// wrapperU32 returns a google.protobuf.UInt32Value field's value, def when absent.
func wrapperU32(m *wireMsg, num protowire.Number, def uint32) uint32 {
	return uint32(wrapperU64(m, num, uint64(def)))
}
