package xdsparse

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	prevpriov3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Fields that change behaviour and that the proxy does not carry out are
// refused by name; cosmetic ones are accepted.
func TestUnsupportedFieldsAreRefusedByName(t *testing.T) {
	base := func() *clusterv3.Cluster {
		return &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}}
	}
	po, err := anypb.New(&upstreamhttpv3.HttpProtocolOptions{CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxHeadersCount: wrapperspb.UInt32(9)}})
	if err != nil {
		t.Fatal(err)
	}
	aged, err := anypb.New(&upstreamhttpv3.HttpProtocolOptions{CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxConnectionDuration: durationpb.New(1)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		modify func(*clusterv3.Cluster)
		want   string // "" accepts
	}{
		{"alt_stat_name is cosmetic", func(c *clusterv3.Cluster) { c.AltStatName = "x" }, ""},
		{"tcp keepalive is honoured", func(c *clusterv3.Cluster) {
			c.UpstreamConnectionOptions = &clusterv3.UpstreamConnectionOptions{TcpKeepalive: &corev3.TcpKeepalive{KeepaliveTime: wrapperspb.UInt32(7)}}
		}, ""},
		{"success-rate ejection", func(c *clusterv3.Cluster) {
			c.OutlierDetection = &clusterv3.OutlierDetection{SuccessRateMinimumHosts: wrapperspb.UInt32(3)}
		}, "outlier_detection.success_rate_minimum_hosts"},
		{"local-origin split is honoured", func(c *clusterv3.Cluster) {
			c.OutlierDetection = &clusterv3.OutlierDetection{SplitExternalLocalOriginErrors: true, ConsecutiveLocalOriginFailure: wrapperspb.UInt32(2),
				EnforcingConsecutiveLocalOriginFailure: wrapperspb.UInt32(100)}
		}, ""},
		{"failure-percentage ejection", func(c *clusterv3.Cluster) {
			c.OutlierDetection = &clusterv3.OutlierDetection{FailurePercentageThreshold: wrapperspb.UInt32(85)}
		}, "outlier_detection.failure_percentage_threshold"},
		{"HTTP/2 stream limit (honoured)", func(c *clusterv3.Cluster) {
			c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{MaxConcurrentStreams: wrapperspb.UInt32(5)}
		}, ""},
		{"HTTP/2 keepalive (honoured)", func(c *clusterv3.Cluster) {
			c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{ConnectionKeepalive: &corev3.KeepaliveSettings{Interval: durationpb.New(time.Second), Timeout: durationpb.New(time.Second)}}
		}, ""},
		{"HTTP/2 keepalive without timeout", func(c *clusterv3.Cluster) {
			c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{ConnectionKeepalive: &corev3.KeepaliveSettings{Interval: durationpb.New(time.Second)}}
		}, "connection_keepalive.timeout"},
		{"HTTP/2 keepalive jitter", func(c *clusterv3.Cluster) {
			c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{ConnectionKeepalive: &corev3.KeepaliveSettings{Timeout: durationpb.New(time.Second), ConnectionIdleInterval: durationpb.New(time.Second)}}
		}, "connection_keepalive.connection_idle_interval"},
		{"HTTP/2 initial window", func(c *clusterv3.Cluster) {
			c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{InitialStreamWindowSize: wrapperspb.UInt32(1 << 20)}
		}, "http2_protocol_options.initial_stream_window_size"},
		{"max connection duration is honoured", func(c *clusterv3.Cluster) {
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsName: aged}
		}, ""},
		{"max headers count", func(c *clusterv3.Cluster) {
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsName: po}
		}, "common_http_protocol_options.max_headers_count"},
		{"unknown protocol options", func(c *clusterv3.Cluster) {
			a, _ := anypb.New(&emptypb.Empty{})
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions": a}
		}, "typed_extension_protocol_options[envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions]"},
		{"locality-weighted balancing (honoured)", func(c *clusterv3.Cluster) {
			c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{LocalityConfigSpecifier: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{}}
		}, ""},
		{"zone-aware balancing", func(c *clusterv3.Cluster) {
			c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{LocalityConfigSpecifier: &clusterv3.Cluster_CommonLbConfig_ZoneAwareLbConfig_{}}
		}, "zone_aware_lb_config"},
		{"success rate enforced", func(c *clusterv3.Cluster) {
			c.OutlierDetection = &clusterv3.OutlierDetection{EnforcingSuccessRate: wrapperspb.UInt32(100)}
		}, "enforcing_success_rate 100"},
	} {
		c := base()
		tc.modify(c)
		_, err := ParseCluster(c)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err %v, want one naming %s", tc.name, err, tc.want)
		}
	}

	rt := func(modify func(*routev3.Route)) error {
		r := &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}}}
		modify(r)
		_, err := ParseRouteConfiguration(&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{r}}}})
		return err
	}
	a, _ := anypb.New(&emptypb.Empty{})
	prevPrio, _ := anypb.New(&prevpriov3.PreviousPrioritiesConfig{UpdateFrequency: 2})
	for _, tc := range []struct {
		name   string
		modify func(*routev3.Route)
		want   string
	}{
		{"mirror is honoured", func(r *routev3.Route) {
			r.GetRoute().RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "m"}}
		}, ""},
		{"mirror by header", func(r *routev3.Route) {
			r.GetRoute().RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{ClusterHeader: "x-m"}}
		}, "routes[0].route.request_mirror_policies[0].cluster_header"},
		{"cookie generation", func(r *routev3.Route) {
			r.GetRoute().HashPolicy = []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: "s", Ttl: durationpb.New(1), Path: "/",
				Attributes: []*routev3.RouteAction_HashPolicy_CookieAttribute{{Name: "SameSite", Value: "Strict"}}}}}}
		}, ""},
		{"cookie attribute that breaks the header", func(r *routev3.Route) {
			r.GetRoute().HashPolicy = []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: "s", Ttl: durationpb.New(1),
				Attributes: []*routev3.RouteAction_HashPolicy_CookieAttribute{{Name: "Domain", Value: "x; Secure"}}}}}}
		}, "hash_policy[0].cookie.attributes[0]"},
		{"cookie path that breaks the header", func(r *routev3.Route) {
			r.GetRoute().HashPolicy = []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: "s", Ttl: durationpb.New(1), Path: "/\r\nx: y"}}}}
		}, "hash_policy[0].cookie"},
		{"retry previous_priorities", func(r *routev3.Route) {
			r.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryPriority: &routev3.RetryPolicy_RetryPriority{Name: "envoy.retry_priorities.previous_priorities",
				ConfigType: &routev3.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: prevPrio}}}
		}, ""},
		{"another retry priority", func(r *routev3.Route) {
			r.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryPriority: &routev3.RetryPolicy_RetryPriority{Name: "envoy.retry_priorities.other",
				ConfigType: &routev3.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: prevPrio}}}
		}, "retry_priority \"envoy.retry_priorities.other\""},
		{"unknown per-route filter", func(r *routev3.Route) {
			r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.lua": a}
		}, "envoy.filters.http.lua"},
		{"header command operator", func(r *routev3.Route) {
			r.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-ip", Value: "%DOWNSTREAM_REMOTE_ADDRESS%"}}}
		}, ""},
		{"unsupported header command operator", func(r *routev3.Route) {
			r.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-v", Value: "%UPSTREAM_METADATA(istio:version)%"}}}
		}, "command operator %UPSTREAM_METADATA%: not supported"},
		{"escaped percent", func(r *routev3.Route) {
			r.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-p", Value: "100%%"}}}
		}, ""},
		{"stat prefix is cosmetic", func(r *routev3.Route) { r.StatPrefix = "x" }, ""},
	} {
		err := rt(tc.modify)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err %v, want one naming %s", tc.name, err, tc.want)
		}
	}
}

// Chains matching destination and source prefixes: the longest destination
// prefix first, then the source; a connection no chain matches gets the default.
func TestSelectChainByPrefixes(t *testing.T) {
	p := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	wide := &FilterChain{Name: "wide", Match: ChainMatch{PrefixRanges: []netip.Prefix{p("10.0.0.0/8")}}}
	narrowSrc := &FilterChain{Name: "narrow-src", Match: ChainMatch{PrefixRanges: []netip.Prefix{p("10.1.0.0/16")}, SourcePrefixRanges: []netip.Prefix{p("192.168.0.0/24")}}}
	narrow := &FilterChain{Name: "narrow", Match: ChainMatch{PrefixRanges: []netip.Prefix{p("10.1.0.0/16")}}}
	def := &FilterChain{Name: "default"}
	l := &Listener{Chains: []*FilterChain{wide, narrowSrc, narrow}, Default: def}
	if !l.NeedsAddresses() {
		t.Fatal("NeedsAddresses false")
	}
	for _, tc := range []struct{ dst, src, want string }{
		{"10.2.3.4", "1.1.1.1", "wide"},
		{"10.1.3.4", "192.168.0.9", "narrow-src"},
		{"10.1.3.4", "1.1.1.1", "narrow"},
		{"11.0.0.1", "192.168.0.9", "default"},
	} {
		if got := l.SelectChain(0, ConnInfo{Dst: a(tc.dst), Src: a(tc.src)}); got.Name != tc.want {
			t.Errorf("%s from %s: chain %s, want %s", tc.dst, tc.src, got.Name, tc.want)
		}
	}
}
