package xdsparse

import (
	"github.com/mast-mesh/mast/internal/proxy/filter/fault"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	httpfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/mixer/api/clientpb"
	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

func TestParseListenerErrors(t *testing.T) {
	withHCM := func(mut func(h *hcmv3.HttpConnectionManager)) *listenerv3.Listener {
		h := xdstest.HCM("r")
		mut(h)
		return xdstest.ListenerWith("l1", "127.0.0.1:8080", h)
	}
	for _, tc := range []struct {
		name string
		l    *listenerv3.Listener
		want string
	}{
		{"ok", xdstest.HTTPListener("l1", "127.0.0.1:8080", "r"), ""},
		{"no name", xdstest.HTTPListener("", "127.0.0.1:8080", "r"), "name is empty"},
		{"unknown http filter", withHCM(func(h *hcmv3.HttpConnectionManager) {
			h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "envoy.filters.http.lua"}}, h.HttpFilters...)
		}), `listener "l1": filter_chains[0] "": filters[0] "envoy.filters.network.http_connection_manager": http_filters[0] "envoy.filters.http.lua": not supported`},
		{"optional unknown filter skipped", withHCM(func(h *hcmv3.HttpConnectionManager) {
			h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "envoy.filters.http.lua", IsOptional: true}}, h.HttpFilters...)
		}), ""},
		{"router not last", withHCM(func(h *hcmv3.HttpConnectionManager) { h.HttpFilters = h.HttpFilters[:1] }), "last filter must be envoy.filters.http.router"},
		{"huge headers kb", withHCM(func(h *hcmv3.HttpConnectionManager) { h.MaxRequestHeadersKb = wrapperspb.UInt32(9000) }), "max_request_headers_kb 9000"},
		{"no chains", &listenerv3.Listener{Name: "l2", Address: xdstest.SocketAddress("127.0.0.1:1")}, "filter_chains: empty"},
		{"upgrade without type", withHCM(func(h *hcmv3.HttpConnectionManager) {
			h.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}, {}}
		}), "upgrade_configs[1].upgrade_type: empty"},
		{"upgrade with its own filter", withHCM(func(h *hcmv3.HttpConnectionManager) {
			h.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket", Filters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.lua"}}}}
		}), `upgrade_configs[0] "websocket": filters[0] "envoy.filters.http.lua": not supported`},
		// Fields nobody parses are refused by name, not silently dropped.
		{"unhonoured listener field", func() *listenerv3.Listener {
			l := xdstest.HTTPListener("l1", "127.0.0.1:8080", "r")
			l.Transparent = wrapperspb.Bool(true)
			l.Address.GetSocketAddress().Ipv4Compat = true
			return l
		}(), `listener "l1": not supported by mast-proxy: address.socket_address.ipv4_compat, transparent`},
		{"unhonoured connection manager field", withHCM(func(h *hcmv3.HttpConnectionManager) {
			h.DelayedCloseTimeout = durationpb.New(time.Second)
			h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(time.Minute), MaxStreamDuration: durationpb.New(time.Second)}
		}), `not supported by mast-proxy: common_http_protocol_options.max_stream_duration, delayed_close_timeout`},
		{"unhonoured tcp_proxy field", func() *listenerv3.Listener {
			l := xdstest.TCPListener("t1", "127.0.0.1:9000", "c")
			var tp tcpv3.TcpProxy
			if err := l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&tp); err != nil {
				t.Fatal(err)
			}
			tp.TunnelingConfig = &tcpv3.TcpProxy_TunnelingConfig{Hostname: "egress:443", PropagateResponseHeaders: true}
			a, _ := anypb.New(&tp)
			l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
			return l
		}(), `not supported by mast-proxy: tunneling_config.propagate_response_headers`},
		{"unix socket", pipeListener("/run/gw.sock", 0), ""},
		{"abstract unix socket", pipeListener("@gw", 0), ""},
		{"relative unix socket", pipeListener("gw.sock", 0), `address.pipe.path "gw.sock": not an absolute path`},
		{"unix socket mode", pipeListener("/run/gw.sock", 0o600), "not supported by mast-proxy: address.pipe.mode"},
		{"connection reporter before the HTTP connection manager", func() *listenerv3.Listener {
			l := xdstest.HTTPListener("l1", "127.0.0.1:8080", "r")
			tcpMixer, _ := anypb.New(&clientpb.TcpClientConfig{Transport: &clientpb.TransportConfig{CheckCluster: "127.0.0.1:9091"}})
			fc := l.FilterChains[0]
			fc.Filters = append([]*listenerv3.Filter{{Name: "mixer", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tcpMixer}}}, fc.Filters...)
			return l
		}(), `filters[0] "mixer": a network filter that reports connections goes only before envoy.filters.network.tcp_proxy`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseListener(tc.l)
			checkErr(t, err, tc.want)
		})
	}
}

// pipeListener is an HTTP listener on a unix socket.
func pipeListener(path string, mode uint32) *listenerv3.Listener {
	l := xdstest.HTTPListener("l1", "127.0.0.1:8080", "r")
	l.Address = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: path, Mode: mode}}}
	return l
}

// TestParsePipeListener: a pipe address is a unix listener on its path.
func TestParsePipeListener(t *testing.T) {
	l, err := ParseListener(pipeListener("/run/gw.sock", 0))
	if err != nil {
		t.Fatal(err)
	}
	if l.Network != "unix" || l.Address != "/run/gw.sock" {
		t.Errorf("network %q address %q, want unix /run/gw.sock", l.Network, l.Address)
	}
	if l, _ := ParseListener(xdstest.HTTPListener("l1", "127.0.0.1:8080", "r")); l.Network != "tcp" {
		t.Errorf("socket address network %q, want tcp", l.Network)
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to contain %q", err, want)
	}
}

func TestParseClusterErrors(t *testing.T) {
	mut := func(f func(c *clusterv3.Cluster)) *clusterv3.Cluster {
		c := xdstest.EDSCluster("c")
		f(c)
		return c
	}
	for _, tc := range []struct {
		name string
		c    *clusterv3.Cluster
		want string
	}{
		{"eds ok", xdstest.EDSCluster("c"), ""},
		{"static ok", xdstest.StaticCluster("s", "127.0.0.1:1"), ""},
		{"static without endpoints (black hole)", &clusterv3.Cluster{Name: "s"}, ""},
		{"dns without endpoints", &clusterv3.Cluster{Name: "d", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}}, `cluster "d": load_assignment: required for STRICT_DNS`},
		{"ring hash too big", mut(func(c *clusterv3.Cluster) {
			c.LbPolicy = clusterv3.Cluster_RING_HASH
			c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(1 << 30)}}
		}), "minimum_ring_size"},
		{"typed lb policy", mut(func(c *clusterv3.Cluster) { c.LoadBalancingPolicy = &clusterv3.LoadBalancingPolicy{} }), "load_balancing_policy"},
		{"negative timeout", mut(func(c *clusterv3.Cluster) { c.ConnectTimeout = durationpb.New(-1) }), "connect_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCluster(tc.c)
			checkErr(t, err, tc.want)
		})
	}
}

func TestParseRouteErrorsAndFeatures(t *testing.T) {
	badRegex := xdstest.RouteConfig("r", []string{"*"}, &routev3.Route{Match: &routev3.RouteMatch{
		PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "(("}}}, Action: act("c")})
	_, err := ParseRouteConfiguration(badRegex)
	checkErr(t, err, `route configuration "r": virtual_hosts[0] "r-vh": routes[0] "": match.safe_regex: regex`)

	dup := xdstest.RouteConfig("r", []string{"a", "A"}, xdstest.RouteTo("/", "c"))
	_, err = ParseRouteConfiguration(dup)
	checkErr(t, err, `domain "a" already used`)

	badRetry := xdstest.RouteTo("/", "c")
	badRetry.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx,sometimes"}
	_, err = ParseRouteConfiguration(xdstest.RouteConfig("r", []string{"*"}, badRetry))
	checkErr(t, err, `retry_on "sometimes": unknown condition`)

	f := xdstest.RouteTo("/", "c")
	f.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": xdstest.Any(&httpfaultv3.HTTPFault{
		Delay: &faultv3.FaultDelay{FaultDelaySecifier: &faultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(7e9)},
			Percentage: &typev3.FractionalPercent{Numerator: 50, Denominator: typev3.FractionalPercent_HUNDRED}},
		Abort: &httpfaultv3.FaultAbort{ErrorType: &httpfaultv3.FaultAbort_HttpStatus{HttpStatus: 500},
			Percentage: &typev3.FractionalPercent{Numerator: 10, Denominator: typev3.FractionalPercent_MILLION}},
	})}
	f.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "gateway-error,connect-failure,refused-stream", NumRetries: wrapperspb.UInt32(3),
		PerTryTimeout: durationpb.New(2e9), RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts"}}}
	tab, err := ParseRouteConfiguration(xdstest.RouteConfig("r", []string{"*"}, f))
	if err != nil {
		t.Fatal(err)
	}
	r := tab.VirtualHosts[0].Routes[0]
	if fc, _ := r.PerFilterConfig("envoy.filters.http.fault").(*fault.Config); fc == nil || fc.Delay != 7e9 || fc.DelayPerMill != 500000 || fc.AbortStatus != 500 || fc.AbortPerMill != 10 {
		t.Errorf("fault = %+v", fc)
	}
	rp := r.Action.Retry
	if rp.On != RetryGatewayError|RetryConnectFailure|RetryRefusedStream || rp.NumRetries != 3 || rp.PerTryTimeout != 2e9 || !rp.PreviousHosts {
		t.Errorf("retry = %+v", rp)
	}
	if r.Action.Timeout != 15e9 {
		t.Errorf("default timeout %v, want Envoy's 15s", r.Action.Timeout)
	}
}

func TestUpgradeAllowed(t *testing.T) {
	h := xdstest.HCM("r")
	h.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "WebSocket"}, {UpgradeType: "CONNECT", Enabled: wrapperspb.Bool(false)}}
	m, err := parseHCM(h)
	if err != nil {
		t.Fatal(err)
	}
	on := &RouteAction{Upgrades: map[string]bool{"connect": true}}
	off := &RouteAction{Upgrades: map[string]bool{"websocket": false, "foo": true}}
	for _, tc := range []struct {
		typ  string
		act  *RouteAction
		want bool
	}{
		{"websocket", nil, true}, {"websocket", on, true}, {"websocket", off, false},
		{"connect", nil, false}, {"connect", on, true},
		{"foo", off, false}, // a route cannot enable what the connection manager does not list
	} {
		if got := m.UpgradeAllowed(tc.typ, tc.act); got != tc.want {
			t.Errorf("UpgradeAllowed(%q, %v) = %v, want %v", tc.typ, tc.act, got, tc.want)
		}
	}
	bad := xdstest.RouteTo("/", "c")
	bad.GetRoute().UpgradeConfigs = []*routev3.RouteAction_UpgradeConfig{{UpgradeType: "websocket", ConnectConfig: &routev3.RouteAction_UpgradeConfig_ConnectConfig{}}}
	_, err = ParseRouteConfiguration(xdstest.RouteConfig("r", []string{"*"}, bad))
	checkErr(t, err, `upgrade_configs[0] "websocket": connect_config is only valid for CONNECT`)
}

func TestConvertSubst(t *testing.T) {
	for in, want := range map[string]string{`/v2/\1`: `/v2/${1}`, `a$b`: `a$$b`, `\2x\1`: `${2}x${1}`} {
		if got := convertSubst(in); got != want {
			t.Errorf("convertSubst(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestApplyKeepsLastGoodAndPrunes(t *testing.T) {
	s := EmptySnapshot()
	l1 := xdstest.Any(xdstest.HTTPListener("a", "127.0.0.1:1", "ra"))
	l2 := xdstest.Any(xdstest.HTTPListener("b", "127.0.0.1:2", "rb"))
	s, err := Apply(s, ListenerType, "1", []*anypb.Any{l1, l2})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.RouteNames(), ","); got != "ra,rb" {
		t.Fatalf("route names %q", got)
	}
	s, err = Apply(s, RouteType, "1", []*anypb.Any{xdstest.Any(xdstest.RouteConfig("ra", []string{"*"}, xdstest.RouteTo("/", "c"))),
		xdstest.Any(xdstest.RouteConfig("rb", []string{"*"}, xdstest.RouteTo("/", "c")))})
	if err != nil {
		t.Fatal(err)
	}
	// v2: listener b becomes invalid, a disappears, c is new.
	badB := xdstest.HTTPListener("b", "127.0.0.1:2", "rb2")
	badB.FilterChains[0].Filters[0].ConfigType = nil
	l3 := xdstest.Any(xdstest.HTTPListener("c", "127.0.0.1:3", "rb"))
	prev := s
	s, err = Apply(s, ListenerType, "2", []*anypb.Any{xdstest.Any(badB), l3})
	checkErr(t, err, `listener "b": filter_chains[0] "": filters[0] "envoy.filters.network.http_connection_manager": typed_config missing`)
	if s.Listeners["a"] != nil || s.Listeners["b"] != prev.Listeners["b"] || s.Listeners["c"] == nil {
		t.Errorf("listeners after partial NACK: %v", s.Listeners)
	}
	if s.Versions[ListenerType] != "1" {
		t.Errorf("version %q after NACK, want 1", s.Versions[ListenerType])
	}
	if s.Routes["ra"] != nil || s.Routes["rb"] == nil {
		t.Errorf("routes not pruned to referenced ones: %v", s.Routes)
	}
	if prev.Listeners["a"] == nil || prev.Routes["ra"] == nil {
		t.Error("Apply modified the previous snapshot")
	}
}

func seeds() (ls, rs, cs [][]byte) {
	m := func(p proto.Message) []byte { b, _ := proto.Marshal(p); return b }
	ls = [][]byte{m(xdstest.HTTPListener("l", "127.0.0.1:80", "r")), m(xdstest.TCPListener("t", "0.0.0.0:9000", "c"))}
	rs = [][]byte{m(bookinfoTableProto())}
	cs = [][]byte{m(xdstest.EDSCluster("c")), m(xdstest.StaticCluster("s", "127.0.0.1:1")), m(xdstest.CLA("c", "1.2.3.4:5"))}
	return
}

func bookinfoTableProto() *routev3.RouteConfiguration {
	r := xdstest.RouteTo("/", "c")
	r.Match.Headers = []*routev3.HeaderMatcher{exactHeader("end-user", "jason")}
	return xdstest.RouteConfig("r", []string{"reviews:9080", "*.x"}, r)
}

func FuzzParseListener(f *testing.F) {
	ls, _, _ := seeds()
	for _, b := range ls {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var l listenerv3.Listener
		if proto.Unmarshal(b, &l) != nil {
			return
		}
		if p, err := ParseListener(&l); err == nil && p.Name == "" {
			t.Fatal("accepted a listener without name")
		}
	})
}

func FuzzParseCluster(f *testing.F) {
	_, _, cs := seeds()
	for _, b := range cs {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c clusterv3.Cluster
		if proto.Unmarshal(b, &c) == nil {
			ParseCluster(&c)
		}
		var la endpointv3.ClusterLoadAssignment
		if proto.Unmarshal(b, &la) == nil {
			ParseEndpoints(&la)
		}
	})
}
