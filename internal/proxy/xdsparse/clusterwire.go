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

	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// CDS resources are decoded from the wire (wire.go, pbwire), so that neither
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
func lbPolicyName(v int32) string { return descEnumName(&wireTable[descCluster], clLbPolicy, v) }

// DecodeCluster decodes and parses an encoded Cluster, as a CDS response
// carries it. It returns the cluster name whenever the message could be
// decoded, so that a refused cluster keeps its previous version.
func DecodeCluster(b []byte) (string, *Cluster, error) {
	if err := validateWire(descCluster, b); err != nil {
		return "", nil, fmt.Errorf("cluster: decode: %w", err)
	}
	c := decodeWire(descCluster, b)
	name := c.Str(clName)
	if name == "" {
		return "", nil, fmt.Errorf("cluster: name is empty")
	}
	out, err := parseClusterWire(c)
	if err != nil {
		return name, nil, fmt.Errorf("cluster %q: %w", name, err)
	}
	return name, out, nil
}

func parseClusterWire(c *pbwire.Msg) (*Cluster, error) {
	if err := checkWire(c, clusterRules); err != nil {
		return nil, err
	}
	out := &Cluster{Name: c.Str(clName), ConnectTimeout: 5 * time.Second, IdleTimeout: time.Hour, PanicThreshold: 50,
		MaxConnections: 1024, MaxPending: 1024, MaxRequests: 1024, MaxRetries: 3}
	out.Services = istioServices(c)
	switch {
	case c.Has(clType):
		switch t := int32(c.U64(clType)); t {
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
	case c.Has(clClusterType):
		return nil, fmt.Errorf("cluster_type: custom cluster types are not supported")
	default:
		out.Type = Static
	}
	if out.Type == EDS {
		ec := c.Sub(clEDS)
		out.EDSName = ec.Str(edsServiceName)
		if out.EDSName == "" {
			out.EDSName = out.Name
		}
		if cs := ec.Sub(edsConfig); ec.Has(edsConfig) && !cs.Has(csADS) &&
			(cs.Has(csPath) || cs.Has(csAPIConfigSource) || cs.Has(csSelf) || cs.Has(csPathConfigSource)) {
			return nil, fmt.Errorf("eds_cluster_config.eds_config: only ADS is supported")
		}
	}
	if c.Has(clConnectTimeout) {
		out.ConnectTimeout = wireDuration(c.Bytes(clConnectTimeout))
		if out.ConnectTimeout <= 0 {
			return nil, fmt.Errorf("connect_timeout: must be > 0")
		}
	}
	if c.Has(clLoadBalancingPolicy) {
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
	cb := c.Sub(clCircuitBreakers)
	for _, th := range cb.Subs(cbThresholds) {
		if th.U64(thPriority) != 0 { // RoutingPriority DEFAULT
			continue
		}
		out.MaxConnections = wrapperU32(th, thMaxConnections, out.MaxConnections)
		out.MaxPending = wrapperU32(th, thMaxPending, out.MaxPending)
		out.MaxRequests = wrapperU32(th, thMaxRequests, out.MaxRequests)
		out.MaxRetries = wrapperU32(th, thMaxRetries, out.MaxRetries)
		if th.Has(thRetryBudget) {
			if out.RetryBudget, err = parseRetryBudget(th.Sub(thRetryBudget)); err != nil {
				return nil, err
			}
		}
	}
	if c.Has(clHTTP2) {
		out.HTTP2 = true
		h2, err := parseH2Wire(c.Sub(clHTTP2))
		if err != nil {
			return nil, err
		}
		out.H2 = h2
	}
	common := c.Sub(clCommonHTTP)
	if common.Has(hpoIdleTimeout) {
		out.IdleTimeout = wireDuration(common.Bytes(hpoIdleTimeout))
	}
	if common.Has(hpoMaxConnectionDuration) {
		out.MaxConnectionDuration = wireDuration(common.Bytes(hpoMaxConnectionDuration))
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
	var matchSockets []*pbwire.Msg
	for _, m := range c.Subs(clTLSMatches) {
		matchSockets = append(matchSockets, transportSocket(m, tsmTransportSocket))
	}
	if out.ProxyProtocol, err = clusterProxyProtocolWire(ts, matchSockets); err != nil {
		return nil, err
	}
	out.TLS = tc
	if ms := c.Subs(clTLSMatches); len(ms) > 0 {
		if out.TLSMatches, err = parseTransportSocketMatchesWire(ms); err != nil {
			return nil, err
		}
	}
	if c.Has(clCommonLb) {
		lc := c.Sub(clCommonLb)
		if lc.Has(lbPanicThreshold) {
			p := lc.Sub(lbPanicThreshold)
			v := math.Float64frombits(p.U64(percentValue))
			if !(v >= 0 && v <= 100) {
				return nil, fmt.Errorf("common_lb_config.healthy_panic_threshold %v: want 0-100", v)
			}
			out.PanicThreshold = v
		}
		switch {
		case lc.Has(lbLocalityWeighted):
			out.LocalityWeighted = true
		case lc.Has(lbZoneAware):
			return nil, fmt.Errorf("common_lb_config: zone_aware_lb_config is not supported (locality_weighted_lb_config is)")
		}
	}
	if uc := c.Sub(clUpstreamConn); uc.Has(ucoTCPKeepalive) {
		ka := uc.Sub(ucoTCPKeepalive)
		out.Keepalive = &TCPKeepalive{Probes: int(wrapperU32(ka, tkaProbes, 0)),
			Idle:     time.Duration(wrapperU32(ka, tkaTime, 0)) * time.Second,
			Interval: time.Duration(wrapperU32(ka, tkaInterval, 0)) * time.Second}
	}
	lat, err := parseLatencyOutlier(c)
	if err != nil {
		return nil, err
	}
	if c.Has(clOutlier) {
		if out.Outlier, err = parseOutlierWire(c.Sub(clOutlier)); err != nil {
			return nil, err
		}
		out.Outlier.Latency = lat
	}
	if c.Has(clLoadAssignment) {
		es, err := decodeEndpointSet(c.Bytes(clLoadAssignment))
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

func parseLbPolicyWire(c *pbwire.Msg, out *Cluster) error {
	switch p := int32(c.U64(clLbPolicy)); p {
	case lbpRoundRobin:
		out.LB = RoundRobin
	case lbpLeastRequest:
		out.LB = LeastRequest
	case lbpRandom:
		out.LB = Random
	case lbpRingHash:
		out.LB = RingHash
		ring := c.Sub(clRingHash)
		out.RingSize = wrapperU64(ring, ringMinimumSize, 1024)
		if out.RingSize == 0 || out.RingSize > 1<<23 {
			return fmt.Errorf("ring_hash_lb_config.minimum_ring_size %d: want 1-8388608", out.RingSize)
		}
	case lbpMaglev:
		out.LB = Maglev
		mg := c.Sub(clMaglev)
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
func parseProtocolOptionsWire(c *pbwire.Msg, out *Cluster) error {
	keys, values := mapEntries(c, clTypedExtOptions)
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
	explicit := m.Sub(upoExplicit)
	h2 := explicit.Has(upoHTTP2)
	h2opts := explicit.Sub(upoHTTP2)
	if m.Has(upoExplicit) {
		out.HTTP2 = h2
	}
	for _, alt := range []protowire.Number{upoUseDownstream, upoAuto} {
		if !h2 && m.Has(alt) {
			cfg := m.Sub(alt)
			if h2 = cfg.Has(upoHTTP2); h2 {
				h2opts = cfg.Sub(upoHTTP2)
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
	if m.Has(upoUseDownstream) || m.Has(upoAuto) {
		out.UseDownstreamProtocol = true
	}
	common := m.Sub(upoCommon)
	if common.Has(hpoIdleTimeout) {
		out.IdleTimeout = wireDuration(common.Bytes(hpoIdleTimeout))
	}
	if common.Has(hpoMaxConnectionDuration) {
		out.MaxConnectionDuration = wireDuration(common.Bytes(hpoMaxConnectionDuration))
	}
	out.MaxRequestsPerConn = wrapperU32(common, hpoMaxRequestsPerConn, out.MaxRequestsPerConn)
	if od := m.Sub(upoOutlier); od.Has(uodErrorMatcher) {
		codes, err := parseOutlierErrorMatcher(od.Sub(uodErrorMatcher))
		if err != nil {
			return fmt.Errorf("typed_extension_protocol_options[%s]: %v", httpProtocolOptionsName, err)
		}
		out.OutlierErrorCodes = codes
	}
	return nil
}

// parseRetryBudget reads a circuit breaker threshold's retry_budget with
// Envoy's defaults (20 %, at least 3).
func parseRetryBudget(rb *pbwire.Msg) (*RetryBudget, error) {
	b := &RetryBudget{Percent: 20, MinConcurrency: 3}
	if rb.Has(rbPercent) {
		p := rb.Sub(rbPercent)
		b.Percent = math.Float64frombits(p.U64(percentValue))
	}
	if !(b.Percent >= 0 && b.Percent <= 100) {
		return nil, fmt.Errorf("circuit_breakers retry_budget.budget_percent %v: must be in 0..100", b.Percent)
	}
	b.MinConcurrency = wrapperU32(rb, rbMinConcurrency, b.MinConcurrency)
	if rb.Has(rbInterval) {
		if b.Interval = wireDuration(rb.Bytes(rbInterval)); b.Interval < 0 {
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
func parseH2Wire(o *pbwire.Msg) (H2Options, error) {
	var out H2Options
	out.MaxConcurrentStreams = wrapperU32(o, h2oMaxConcurrentStreams, 0)
	if o.Has(h2oConnectionKeepalive) {
		ka := o.Sub(h2oConnectionKeepalive)
		out.KeepaliveInterval = wireDuration(ka.Bytes(kaInterval))
		out.KeepaliveTimeout = wireDuration(ka.Bytes(kaTimeout))
		if !ka.Has(kaTimeout) || out.KeepaliveTimeout < time.Millisecond {
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
func parseOutlierWire(od *pbwire.Msg) (*OutlierDetection, error) {
	out := &OutlierDetection{
		Consecutive5xx:     wrapperU32(od, odConsecutive5xx, 5),
		Enforcing5xx:       wrapperU32(od, odEnforcing5xx, 100),
		ConsecutiveGateway: wrapperU32(od, odConsecutiveGateway, 5),
		EnforcingGateway:   wrapperU32(od, odEnforcingGateway, 0),
		MaxEjectionPercent: wrapperU32(od, odMaxEjectionPercent, 10),
		BaseEjectionTime:   30 * time.Second,
		MaxEjectionTime:    300 * time.Second,
	}
	if od.U64(odSplitLocal) != 0 {
		// The local-origin counters take effect only when split.
		out.SplitLocalOrigin = true
		out.ConsecutiveLocal = wrapperU32(od, odConsecutiveLO, 5)
		out.EnforcingLocal = wrapperU32(od, odEnforcingLO, 100)
	}
	if v := wrapperU32(od, odEnforcingSuccessRate, 0); v != 0 {
		return nil, fmt.Errorf("outlier_detection.enforcing_success_rate %d: success-rate ejection is not supported by mast-proxy; set 0", v)
	}
	if od.Has(odInterval) {
		if out.Interval = wireDuration(od.Bytes(odInterval)); out.Interval <= 0 {
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
	if od.Has(odBaseEjection) {
		if out.BaseEjectionTime = wireDuration(od.Bytes(odBaseEjection)); out.BaseEjectionTime <= 0 {
			return nil, fmt.Errorf("outlier_detection.base_ejection_time: must be > 0")
		}
	}
	if od.Has(odMaxEjectionTime) {
		if out.MaxEjectionTime = wireDuration(od.Bytes(odMaxEjectionTime)); out.MaxEjectionTime <= 0 {
			return nil, fmt.Errorf("outlier_detection.max_ejection_time: must be > 0")
		}
	}
	out.MaxEjectionTime = max(out.MaxEjectionTime, out.BaseEjectionTime)
	return out, nil
}

// parseTransportSocketMatchesWire parses a cluster's transport_socket_matches.
func parseTransportSocketMatchesWire(ms []*pbwire.Msg) ([]TransportSocketMatch, error) {
	out := make([]TransportSocketMatch, 0, len(ms))
	for i, m := range ms {
		name := m.Str(tsmName)
		tm := TransportSocketMatch{Name: name, Match: map[string]string{}}
		var match structpb.Struct
		if err := proto.Unmarshal(m.Bytes(tsmMatch), &match); err != nil {
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
func istioServices(c *pbwire.Msg) []string {
	if !c.Has(clMetadata) {
		return nil
	}
	istio := mapMsg(c.Sub(clMetadata), mdFilterMetadata, "istio")
	if istio == nil {
		return nil
	}
	services := mapMsg(istio, structFields, "services")
	if services == nil || !services.Has(valueList) {
		return nil
	}
	var out []string
	for _, v := range services.Sub(valueList).Subs(listValues) {
		if !v.Has(valueStruct) {
			continue
		}
		if h := mapMsg(v.Sub(valueStruct), structFields, "host"); h != nil && h.Str(valueStr) != "" {
			out = append(out, h.Str(valueStr))
		}
	}
	return out
}

// filterMetadata returns the cluster's metadata.filter_metadata[key]
// (false when absent).
func filterMetadata(c *pbwire.Msg, key string) (*structpb.Struct, bool, error) {
	if !c.Has(clMetadata) {
		return nil, false, nil
	}
	md := c.Sub(clMetadata)
	keys, values := mapEntries(md, mdFilterMetadata)
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
func wrapperU64(m *pbwire.Msg, num protowire.Number, def uint64) uint64 {
	if !m.Has(num) {
		return def
	}
	var v uint64
	eachField(m.Bytes(num), func(f wireField) error {
		if f.num == wrapperValue && f.typ == protowire.VarintType {
			v = f.v
		}
		return nil
	})
	return v
}

// wrapperU32 returns a google.protobuf.UInt32Value field's value, def when absent.
func wrapperU32(m *pbwire.Msg, num protowire.Number, def uint32) uint32 {
	return uint32(wrapperU64(m, num, uint64(def)))
}
