package generate

import (
	"cmp"
	"math"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matchv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

const (
	defaultConnectTimeout  = 10 * time.Second
	httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	tlsTransportSocketName = "envoy.transport_sockets.tls"
	sdsClusterName         = "sds-grpc"
	sdsDefaultSecret       = "default"
	sdsRootSecret          = "ROOTCA"
)

// policy is a DestinationRule traffic policy resolved for one port and subset.
type policy struct {
	lb  *networking.LoadBalancerSettings
	cp  *networking.ConnectionPoolSettings
	od  *networking.OutlierDetection
	tls *networking.ClientTLSSettings
	// pp and tunnel have no port-level form; a subset's replace the rule's.
	pp     *networking.TrafficPolicy_ProxyProtocol
	tunnel *networking.TrafficPolicy_TunnelSettings
	rb     *networking.TrafficPolicy_RetryBudget
}

func (p *policy) merge(tp *networking.TrafficPolicy, port uint32) {
	if tp == nil {
		return
	}
	if tp.GetLoadBalancer() != nil {
		p.lb = tp.GetLoadBalancer()
	}
	if tp.GetConnectionPool() != nil {
		p.cp = tp.GetConnectionPool()
	}
	if tp.GetOutlierDetection() != nil {
		p.od = tp.GetOutlierDetection()
	}
	if tp.GetTls() != nil {
		p.tls = tp.GetTls()
	}
	if tp.GetProxyProtocol() != nil {
		p.pp = tp.GetProxyProtocol()
	}
	if tp.GetTunnel() != nil {
		p.tunnel = tp.GetTunnel()
	}
	if tp.GetRetryBudget() != nil {
		p.rb = tp.GetRetryBudget()
	}
	for _, pl := range tp.GetPortLevelSettings() {
		if pl.GetPort().GetNumber() != port {
			continue
		}
		if pl.GetLoadBalancer() != nil {
			p.lb = pl.GetLoadBalancer()
		}
		if pl.GetConnectionPool() != nil {
			p.cp = pl.GetConnectionPool()
		}
		if pl.GetOutlierDetection() != nil {
			p.od = pl.GetOutlierDetection()
		}
		if pl.GetTls() != nil {
			p.tls = pl.GetTls()
		}
	}
}

// effectivePolicy merges, field by field as Istio does, the top-level policy,
// its port-level settings, the subset's policy and the subset's port-level settings.
func effectivePolicy(dr *model.DestinationRule, port uint32, subset string) policy {
	var p policy
	if dr == nil {
		return p
	}
	p.merge(dr.Spec.GetTrafficPolicy(), port)
	if subset != "" {
		if s := findSubset(dr, subset); s != nil {
			p.merge(s.GetTrafficPolicy(), port)
		}
	}
	return p
}

func findSubset(dr *model.DestinationRule, name string) *networking.Subset {
	if dr == nil {
		return nil
	}
	for _, s := range dr.Spec.GetSubsets() {
		if s.GetName() == name {
			return s
		}
	}
	return nil
}

// hashPolicy is the route hash policy for a destination whose DestinationRule asks for consistent hashing.
func (g *gen) hashPolicy(d *networking.Destination, ns string, port uint32) []*routev3.RouteAction_HashPolicy {
	host, p := g.destinationHostPort(d, ns, port)
	return g.hashPolicyFor(host, p, d.GetSubset())
}

// hashPolicyFor is the route hash policy for outbound|port|subset|host.
func (g *gen) hashPolicyFor(host string, p uint32, subset string) []*routev3.RouteAction_HashPolicy {
	ch := effectivePolicy(g.pc.DestinationRule(g.p, host), p, subset).lb.GetConsistentHash()
	if ch == nil {
		return nil
	}
	var hp *routev3.RouteAction_HashPolicy
	switch k := ch.GetHashKey().(type) {
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
		hp = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: strings.ToLower(k.HttpHeaderName)}}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
		if g.grpc {
			return nil
		}
		// As istiod: the ttl (a cookie is generated when it is set), path
		// and attributes go to Envoy as they are.
		c := &routev3.RouteAction_HashPolicy_Cookie{Name: k.HttpCookie.GetName(), Ttl: k.HttpCookie.GetTtl(), Path: k.HttpCookie.GetPath()}
		for _, a := range k.HttpCookie.GetAttributes() {
			c.Attributes = append(c.Attributes, &routev3.RouteAction_HashPolicy_CookieAttribute{Name: a.GetName(), Value: a.GetValue()})
		}
		hp = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: c}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp:
		if g.grpc {
			return nil
		}
		hp = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
		if g.grpc {
			return nil
		}
		hp = &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: k.HttpQueryParameterName}}}
	default:
		return nil
	}
	return []*routev3.RouteAction_HashPolicy{hp}
}

// applyLB sets the cluster's load-balancing policy. It returns false when
// the policy is PASSTHROUGH: the cluster must then be ORIGINAL_DST.
func applyLB(c *clusterv3.Cluster, lb *networking.LoadBalancerSettings, grpc bool) bool {
	if ch := lb.GetConsistentHash(); ch != nil {
		if mg := ch.GetMaglev(); mg != nil && !grpc {
			c.LbPolicy = clusterv3.Cluster_MAGLEV
			if mg.GetTableSize() > 0 {
				c.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(mg.GetTableSize())}}
			}
			return true
		}
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		size := ch.GetRingHash().GetMinimumRingSize()
		if size == 0 {
			size = ch.GetMinimumRingSize()
		}
		if size > 0 {
			c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(min(size, 8<<20))}}
		}
		return true
	}
	switch lb.GetSimple() {
	case networking.LoadBalancerSettings_ROUND_ROBIN:
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
		if ss := slowStart(lb); ss != nil {
			c.LbConfig = &clusterv3.Cluster_RoundRobinLbConfig_{RoundRobinLbConfig: &clusterv3.Cluster_RoundRobinLbConfig{SlowStartConfig: ss}}
		}
	case networking.LoadBalancerSettings_LEAST_REQUEST:
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		if ss := slowStart(lb); ss != nil {
			c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{SlowStartConfig: ss}}
		}
	case networking.LoadBalancerSettings_RANDOM:
		if grpc {
			c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
		} else {
			c.LbPolicy = clusterv3.Cluster_RANDOM
		}
	case networking.LoadBalancerSettings_PASSTHROUGH:
		return false
	default:
		// Istio's default since 1.14 is LEAST_REQUEST; grpc-go's is round robin.
		if !grpc {
			c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
			if ss := slowStart(lb); ss != nil {
				c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{SlowStartConfig: ss}}
			}
		}
	}
	return true
}

// slowStart is Envoy's slow start for warmup (istiod's setWarmup: a runtime
// key of "(", aggression default 1, minimum weight 10%) or the deprecated
// warmupDurationSecs (the window alone); nil for neither.
func slowStart(lb *networking.LoadBalancerSettings) *clusterv3.Cluster_SlowStartConfig {
	if w := lb.GetWarmup(); w != nil {
		aggression, minPercent := 1.0, 10.0
		if a := w.GetAggression(); a != nil {
			aggression = a.GetValue()
		}
		if m := w.GetMinimumPercent(); m != nil {
			minPercent = m.GetValue()
		}
		return &clusterv3.Cluster_SlowStartConfig{SlowStartWindow: w.GetDuration(),
			Aggression:       &corev3.RuntimeDouble{DefaultValue: aggression, RuntimeKey: "("},
			MinWeightPercent: &typev3.Percent{Value: minPercent}}
	}
	if d := lb.GetWarmupDurationSecs(); d != nil {
		return &clusterv3.Cluster_SlowStartConfig{SlowStartWindow: d}
	}
	return nil
}

func maxUint32Threshold(v int32) *wrapperspb.UInt32Value {
	if v > 0 {
		return u32(uint32(v))
	}
	return u32(math.MaxUint32)
}

// applyRetryBudget puts a DestinationRule's retryBudget into the cluster's
// default-priority thresholds, as istiod does: Envoy then ignores
// max_retries. Percent and minRetryConcurrency keep Envoy's defaults (20%,
// 3) when unset.
func applyRetryBudget(c *clusterv3.Cluster, rb *networking.TrafficPolicy_RetryBudget) {
	if rb == nil {
		return
	}
	b := &clusterv3.CircuitBreakers_Thresholds_RetryBudget{}
	if p := rb.GetPercent(); p != nil {
		b.BudgetPercent = &typev3.Percent{Value: p.GetValue()}
	}
	if n := rb.GetMinRetryConcurrency(); n > 0 {
		b.MinRetryConcurrency = u32(n)
	}
	if d := rb.GetBudgetInterval(); d != nil && d.AsDuration() > 0 {
		b.BudgetInterval = d
	}
	if c.CircuitBreakers == nil || len(c.CircuitBreakers.Thresholds) == 0 {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{}}}
	}
	c.CircuitBreakers.Thresholds[0].RetryBudget = b
}

// applyConnectionPool sets circuit breakers, timeouts and HTTP protocol
// options; http2 says the upstream speaks HTTP/2 (HTTP2 and GRPC ports);
// od's outlierDetectionHttpErrorCodes go into the HTTP protocol options.
func applyConnectionPool(c *clusterv3.Cluster, cp *networking.ConnectionPoolSettings, od *networking.OutlierDetection, http, http2, grpc bool) {
	tcp, h := cp.GetTcp(), cp.GetHttp()
	c.ConnectTimeout = dur(defaultConnectTimeout)
	if t := tcp.GetConnectTimeout(); t != nil && t.AsDuration() > 0 {
		c.ConnectTimeout = t
	}
	if grpc {
		if h.GetHttp2MaxRequests() > 0 {
			c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxRequests: u32(uint32(h.GetHttp2MaxRequests()))}}}
		}
		return
	}
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections:     maxUint32Threshold(tcp.GetMaxConnections()),
		MaxPendingRequests: maxUint32Threshold(h.GetHttp1MaxPendingRequests()),
		MaxRequests:        maxUint32Threshold(h.GetHttp2MaxRequests()),
		MaxRetries:         maxUint32Threshold(h.GetMaxRetries()),
		TrackRemaining:     true,
	}}}
	if ka := tcp.GetTcpKeepalive(); ka != nil {
		k := &corev3.TcpKeepalive{}
		if ka.GetProbes() > 0 {
			k.KeepaliveProbes = u32(ka.GetProbes())
		}
		if ka.GetTime() != nil {
			k.KeepaliveTime = u32(uint32(ka.GetTime().AsDuration() / time.Second))
		}
		if ka.GetInterval() != nil {
			k.KeepaliveInterval = u32(uint32(ka.GetInterval().AsDuration() / time.Second))
		}
		c.UpstreamConnectionOptions = &clusterv3.UpstreamConnectionOptions{TcpKeepalive: k}
	}
	if !http {
		return
	}
	// As istiod: the stream limit and keepalive go into the HTTP/2
	// options of a cluster that is HTTP/2 by its port's protocol (built
	// before the traffic policy is applied), not into those that an
	// h2UpgradePolicy upgrade or useClientProtocol add afterwards.
	portH2 := http2
	if h.GetH2UpgradePolicy() == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE {
		http2 = true
	}
	opts := &upstreamhttpv3.HttpProtocolOptions{}
	common := &corev3.HttpProtocolOptions{}
	useCommon := false
	if h.GetMaxRequestsPerConnection() > 0 {
		common.MaxRequestsPerConnection = u32(uint32(h.GetMaxRequestsPerConnection()))
		useCommon = true
	}
	// As istiod: http.idleTimeout, else tcp.idleTimeout; and
	// tcp.maxConnectionDuration.
	if t := cmp.Or(h.GetIdleTimeout(), tcp.GetIdleTimeout()); t != nil {
		common.IdleTimeout = t
		useCommon = true
	}
	if t := tcp.GetMaxConnectionDuration(); t != nil {
		common.MaxConnectionDuration = t
		useCommon = true
	}
	if useCommon {
		opts.CommonHttpProtocolOptions = common
	}
	if m := outlierErrorMatcher(od.GetOutlierDetectionHttpErrorCodes()); m != nil {
		opts.OutlierDetection = &upstreamhttpv3.HttpProtocolOptions_OutlierDetection{ErrorMatcher: m}
	}
	switch {
	case h.GetUseClientProtocol():
		opts.UpstreamProtocolOptions = &upstreamhttpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{UseDownstreamProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
			HttpProtocolOptions: &corev3.Http1ProtocolOptions{}, Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
		}}
	case http2:
		h2 := &corev3.Http2ProtocolOptions{}
		if portH2 && h.GetMaxConcurrentStreams() > 0 {
			h2.MaxConcurrentStreams = u32(uint32(h.GetMaxConcurrentStreams()))
		}
		if ka := h.GetHttp2KeepAlive(); portH2 && ka != nil {
			h2.ConnectionKeepalive = &corev3.KeepaliveSettings{Interval: ka.GetInterval(), Timeout: ka.GetTimeout()}
		}
		opts.UpstreamProtocolOptions = &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: h2},
		}}
	case useCommon || opts.OutlierDetection != nil:
		opts.UpstreamProtocolOptions = &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
		}}
	default:
		return
	}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: toAny(opts)}
}

// outlierErrorMatcher matches responses whose :status is one of codes
// (outlierDetectionHttpErrorCodes): only those count as errors for
// outlier detection. One code is one response-headers match; several are
// their or_match. nil without codes.
func outlierErrorMatcher(codes []uint32) *matcherv3.MatchPredicate {
	if len(codes) == 0 {
		return nil
	}
	rules := make([]*matcherv3.MatchPredicate, 0, len(codes))
	for _, code := range codes {
		rules = append(rules, &matcherv3.MatchPredicate{Rule: &matcherv3.MatchPredicate_HttpResponseHeadersMatch{
			HttpResponseHeadersMatch: &matcherv3.HttpHeadersMatch{Headers: []*routev3.HeaderMatcher{{
				Name: ":status",
				HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matchv3.StringMatcher{
					MatchPattern: &matchv3.StringMatcher_Exact{Exact: strconv.FormatUint(uint64(code), 10)}}},
			}}},
		}})
	}
	if len(rules) == 1 {
		return rules[0]
	}
	return &matcherv3.MatchPredicate{Rule: &matcherv3.MatchPredicate_OrMatch{OrMatch: &matcherv3.MatchPredicate_MatchSet{Rules: rules}}}
}

func enforcing(v uint32) *wrapperspb.UInt32Value {
	if v == 0 {
		return u32(0)
	}
	return u32(100)
}

func applyOutlier(c *clusterv3.Cluster, od *networking.OutlierDetection) {
	if od == nil {
		return
	}
	out := &clusterv3.OutlierDetection{EnforcingSuccessRate: u32(0)}
	if v := od.GetConsecutive_5XxErrors(); v != nil {
		out.Consecutive_5Xx = u32(v.GetValue())
		out.EnforcingConsecutive_5Xx = enforcing(v.GetValue())
	} else if od.GetConsecutiveErrors() > 0 {
		out.Consecutive_5Xx = u32(uint32(od.GetConsecutiveErrors()))
		out.EnforcingConsecutive_5Xx = u32(100)
	}
	if v := od.GetConsecutiveGatewayErrors(); v != nil {
		out.ConsecutiveGatewayFailure = u32(v.GetValue())
		out.EnforcingConsecutiveGatewayFailure = enforcing(v.GetValue())
	}
	if od.GetSplitExternalLocalOriginErrors() {
		out.SplitExternalLocalOriginErrors = true
		if v := od.GetConsecutiveLocalOriginFailures(); v != nil {
			out.ConsecutiveLocalOriginFailure = u32(v.GetValue())
			out.EnforcingConsecutiveLocalOriginFailure = enforcing(v.GetValue())
		}
	}
	if od.GetInterval() != nil {
		out.Interval = od.GetInterval()
	}
	if od.GetBaseEjectionTime() != nil {
		out.BaseEjectionTime = od.GetBaseEjectionTime()
	}
	if v := od.GetMaxEjectionPercent(); v > 0 {
		out.MaxEjectionPercent = u32(uint32(min(v, 100)))
	}
	c.OutlierDetection = out
	if v := od.GetMinHealthPercent(); v >= 0 {
		c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: float64(min(v, 100))}}
	}
}

// sdsSource is Istio's SDS config source: the agent's SDS server behind the "sds-grpc" cluster.
func sdsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion: corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
			ApiType:                   corev3.ApiConfigSource_GRPC,
			SetNodeOnFirstMessageOnly: true,
			TransportApiVersion:       corev3.ApiVersion_V3,
			GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: sdsClusterName},
			}}},
		}},
	}
}

func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: sdsSource()}
}

func fileSource(path string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: path}}
}

func sanMatchers(sans []string) []*tlsv3.SubjectAltNameMatcher {
	var out []*tlsv3.SubjectAltNameMatcher
	for _, s := range sans {
		t := tlsv3.SubjectAltNameMatcher_DNS
		if strings.HasPrefix(s, "spiffe://") {
			t = tlsv3.SubjectAltNameMatcher_URI
		}
		out = append(out, &tlsv3.SubjectAltNameMatcher{SanType: t, Matcher: exactMatcher(s)})
	}
	return out
}

// istioSNI is the SNI Istio sets for ISTIO_MUTUAL: outbound_.PORT_.SUBSET_.HOST.
func istioSNI(port uint32, subset, host string) string {
	return "outbound_." + itoa(port) + "_." + subset + "_." + host
}

// upstreamTLS builds the cluster's TLS transport socket; nil for DISABLE or no TLS.
func (g *gen) upstreamTLS(t *networking.ClientTLSSettings, port uint32, subset, host string, sans []string) *corev3.TransportSocket {
	if t == nil {
		return nil
	}
	ctx := &tlsv3.UpstreamTlsContext{Sni: t.GetSni(), CommonTlsContext: &tlsv3.CommonTlsContext{}}
	cc := ctx.CommonTlsContext
	if len(t.GetSubjectAltNames()) > 0 {
		sans = t.GetSubjectAltNames()
	}
	skipVerify := t.GetInsecureSkipVerify().GetValue()
	switch t.GetMode() {
	case networking.ClientTLSSettings_DISABLE:
		return nil
	case networking.ClientTLSSettings_ISTIO_MUTUAL:
		if ctx.Sni == "" {
			ctx.Sni = istioSNI(port, subset, host)
		}
		cc.AlpnProtocols = []string{"istio-peer-exchange", "istio"}
		if g.grpc {
			cc.AlpnProtocols = nil
			cc.TlsCertificateProviderInstance = &tlsv3.CertificateProviderPluginInstance{InstanceName: sdsDefaultSecret, CertificateName: sdsDefaultSecret}
			cc.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				CaCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{InstanceName: sdsDefaultSecret, CertificateName: sdsRootSecret},
				MatchTypedSubjectAltNames:     sanMatchers(sans),
			}}
			break
		}
		cc.TlsParams = tlsParams13()
		cc.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsSecret(sdsDefaultSecret)}
		cc.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         g.withCRL(&tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sanMatchers(sans)}),
			ValidationContextSdsSecretConfig: sdsSecret(sdsRootSecret),
		}}
	case networking.ClientTLSSettings_SIMPLE, networking.ClientTLSSettings_MUTUAL:
		if g.grpc {
			return nil // grpc-go only takes certificate provider instances
		}
		if t.GetMode() == networking.ClientTLSSettings_MUTUAL {
			switch {
			case t.GetCredentialName() != "":
				cc.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsSecret(credentialSecret(t.GetCredentialName()))}
			case t.GetClientCertificate() != "" && t.GetPrivateKey() != "":
				cc.TlsCertificates = []*tlsv3.TlsCertificate{{CertificateChain: fileSource(t.GetClientCertificate()), PrivateKey: fileSource(t.GetPrivateKey())}}
			}
		}
		if ctx.Sni == "" && !strings.HasPrefix(host, "*") {
			// Istio's auto SNI sends the request's host; a cluster serves one host, so send it.
			ctx.Sni = host
		}
		if skipVerify {
			break
		}
		switch {
		case t.GetCredentialName() != "":
			cc.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sanMatchers(t.GetSubjectAltNames())},
				ValidationContextSdsSecretConfig: sdsSecret(credentialSecret(t.GetCredentialName() + "-cacert")),
			}}
		case t.GetCaCertificates() != "":
			vc := &tlsv3.CertificateValidationContext{TrustedCa: fileSource(t.GetCaCertificates()), MatchTypedSubjectAltNames: sanMatchers(t.GetSubjectAltNames())}
			if t.GetCaCrl() != "" {
				vc.Crl = fileSource(t.GetCaCrl())
			}
			cc.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		default:
			// No caCertificates: verify against the system's roots, as Istio
			// does; never accept any certificate unless insecureSkipVerify says so.
			vc := &tlsv3.CertificateValidationContext{SystemRootCerts: &tlsv3.CertificateValidationContext_SystemRootCerts{},
				MatchTypedSubjectAltNames: sanMatchers(t.GetSubjectAltNames())}
			if t.GetCaCrl() != "" {
				vc.Crl = fileSource(t.GetCaCrl())
			}
			cc.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		}
	default:
		return nil
	}
	return &corev3.TransportSocket{Name: tlsTransportSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(ctx)}}
}
