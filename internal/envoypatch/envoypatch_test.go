package envoypatch

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
	"sigs.k8s.io/yaml"
)

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// hcmFilter is an HTTP connection manager with the fault and router
// filters and either an inline route configuration or RDS name rds.
func hcmFilter(t testing.TB, inline *routev3.RouteConfiguration, rds string) *listenerv3.Filter {
	h := &hcmv3.HttpConnectionManager{StatPrefix: "s", HttpFilters: []*hcmv3.HttpFilter{
		{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &faultv3.HTTPFault{MaxActiveFaults: wrapperspb.UInt32(5)})}},
		{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}},
	}}
	if inline != nil {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: inline}
	} else {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: rds}}
	}
	return &listenerv3.Filter{Name: HCMName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, h)}}
}

func routeConfig(name string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{
		Name: "a.default.svc.cluster.local:8080", Domains: []string{"a.default.svc.cluster.local", "a"},
		Routes: []*routev3.Route{
			{Name: "r1", Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}}},
			{Name: "r2", Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{HostRedirect: "x"}}},
		},
	}, {Name: "allow_any", Domains: []string{"*"}}}}
}

func socket(port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

// outboundListeners: 0.0.0.0_8080 (HCM, RDS "8080"), 0.0.0.0_5432 (tcp_proxy).
func outboundListeners(t testing.TB) []*listenerv3.Listener {
	return []*listenerv3.Listener{
		{Name: "0.0.0.0_8080", Address: socket(8080), FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcmFilter(t, nil, "8080")}}}},
		{Name: "0.0.0.0_5432", Address: socket(5432), FilterChains: []*listenerv3.FilterChain{{Name: "tcp",
			Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy"}}}}},
	}
}

// inboundListener: virtualInbound with a chain per destination port (9080 HTTP with an inline route configuration, 3306 TCP).
func inboundListener(t testing.TB) *listenerv3.Listener {
	return &listenerv3.Listener{Name: VirtualInbound, Address: socket(15006),
		ListenerFilters: []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.original_dst"}, {Name: "envoy.filters.listener.tls_inspector"}},
		FilterChains: []*listenerv3.FilterChain{
			{Name: "inbound|9080||", FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(9080), TransportProtocol: "tls",
				ApplicationProtocols: []string{"istio-peer-exchange", "istio"}, ServerNames: []string{"a.example"}},
				Filters: []*listenerv3.Filter{hcmFilter(t, routeConfig("inbound|9080||"), "")}},
			{Name: "inbound|3306||", FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(3306)},
				Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy"}}},
		}}
}

func clusters() []*clusterv3.Cluster {
	return []*clusterv3.Cluster{
		{Name: "outbound|8080||a.default.svc.cluster.local", ConnectTimeout: durationpb.New(10e9)},
		{Name: "outbound|8080|v1|a.default.svc.cluster.local", ConnectTimeout: durationpb.New(10e9)},
		{Name: "outbound|9090||b.default.svc.cluster.local"},
		{Name: "inbound|9080||"},
	}
}

// compileYAML compiles the configPatches of an EnvoyFilter spec in YAML.
func compileYAML(t testing.TB, spec string) []*Patch {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	ef := &networking.EnvoyFilter{}
	if err := protojson.Unmarshal(js, ef); err != nil {
		t.Fatal(err)
	}
	ps, probs := Compile("default/ef", ef)
	if len(probs) > 0 {
		t.Fatalf("compile: %v", probs)
	}
	return ps
}

func httpFilters(t testing.TB, f *listenerv3.Filter) []string {
	h := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range h.HttpFilters {
		out = append(out, x.Name)
	}
	return out
}

func hcmOf(t testing.TB, f *listenerv3.Filter) *hcmv3.HttpConnectionManager {
	h := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
		t.Fatal(err)
	}
	return h
}

func names[T interface{ GetName() string }](xs []T) string {
	var out []string
	for _, x := range xs {
		out = append(out, x.GetName())
	}
	return strings.Join(out, ",")
}

// world is every resource kind, patched in its usual context.
type world struct {
	out, in []*listenerv3.Listener
	rc      *routev3.RouteConfiguration
	cs      []*clusterv3.Cluster
	rec     *Record
	patches []*Patch
}

func (w *world) patch(i int) *Patch { return w.patches[i] }

func apply(t *testing.T, spec string) *world {
	t.Helper()
	ps := compileYAML(t, spec)
	s := NewSet(ps)
	w := &world{rec: NewRecord(), patches: ps}
	w.out = Listeners(s, SidecarOutbound, outboundListeners(t), false, w.rec)
	w.in = Listeners(s, SidecarInbound, []*listenerv3.Listener{inboundListener(t)}, true, w.rec)
	w.rc = routeConfig("8080")
	RouteConfig(s, SidecarOutbound, w.rc, w.rec)
	ctxOf := func(c *clusterv3.Cluster) networking.EnvoyFilter_PatchContext {
		if strings.HasPrefix(c.Name, "inbound|") {
			return SidecarInbound
		}
		return SidecarOutbound
	}
	w.cs = Clusters(s, ctxOf, SidecarOutbound, clusters(), w.rec)
	return w
}

func (w *world) applied(t *testing.T, want bool) {
	t.Helper()
	if len(w.rec.Failed) > 0 {
		t.Fatalf("failed: %v", w.rec.Failed)
	}
	if got := len(w.rec.Applied) > 0; got != want {
		t.Fatalf("applied = %v, want %v", got, want)
	}
}

func TestPatches(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		applied    bool
		check      func(t *testing.T, w *world)
	}{{
		name: "LISTENER MERGE by port",
		spec: `configPatches:
- applyTo: LISTENER
  match: {context: SIDECAR_OUTBOUND, listener: {portNumber: 8080}}
  patch: {operation: MERGE, value: {per_connection_buffer_limit_bytes: 1024}}`,
		applied: true,
		check: func(t *testing.T, w *world) {
			if w.out[0].GetPerConnectionBufferLimitBytes().GetValue() != 1024 || w.out[1].GetPerConnectionBufferLimitBytes() != nil {
				t.Fatal(w.out)
			}
		},
	}, {
		name: "LISTENER REMOVE by name",
		spec: `configPatches:
- applyTo: LISTENER
  match: {listener: {name: 0.0.0.0_5432}}
  patch: {operation: REMOVE}`,
		applied: true,
		check: func(t *testing.T, w *world) {
			if got := names(w.out); got != "0.0.0.0_8080" {
				t.Fatal(got)
			}
		},
	}, {
		name: "LISTENER ADD in outbound only when context ANY",
		spec: `configPatches:
- applyTo: LISTENER
  patch: {operation: ADD, value: {name: extra, address: {socket_address: {address: 127.0.0.1, port_value: 7000}}}}`,
		applied: true,
		check: func(t *testing.T, w *world) {
			if got := names(w.out); got != "0.0.0.0_8080,0.0.0.0_5432,extra" {
				t.Fatal(got)
			}
			if got := names(w.in); got != VirtualInbound {
				t.Fatal(got)
			}
		},
	}, {
		name: "context mismatch applies nothing",
		spec: `configPatches:
- applyTo: LISTENER
  match: {context: GATEWAY}
  patch: {operation: REMOVE}`,
		applied: false,
	}, {
		name: "LISTENER_FILTER INSERT_BEFORE, REPLACE, REMOVE",
		spec: `configPatches:
- applyTo: LISTENER_FILTER
  match: {context: SIDECAR_INBOUND, listener: {listenerFilter: envoy.filters.listener.tls_inspector}}
  patch: {operation: INSERT_BEFORE, value: {name: first}}
- applyTo: LISTENER_FILTER
  match: {context: SIDECAR_INBOUND, listener: {listenerFilter: first}}
  patch: {operation: REPLACE, value: {name: second}}
- applyTo: LISTENER_FILTER
  match: {context: SIDECAR_INBOUND, listener: {listenerFilter: envoy.filters.listener.original_dst}}
  patch: {operation: REMOVE}`,
		applied: true,
		check: func(t *testing.T, w *world) {
			if got := names(w.in[0].ListenerFilters); got != "second,envoy.filters.listener.tls_inspector" {
				t.Fatal(got)
			}
		},
	}, {
		name: "FILTER_CHAIN REMOVE by destination port on virtualInbound",
		spec: `configPatches:
- applyTo: FILTER_CHAIN
  match: {context: SIDECAR_INBOUND, listener: {portNumber: 3306}}
  patch: {operation: REMOVE}`,
		applied: true,
		check: func(t *testing.T, w *world) {
			if got := names(w.in[0].FilterChains); got != "inbound|9080||" {
				t.Fatal(got)
			}
		},
	}, {
		name: "FILTER_CHAIN MERGE by sni, transportProtocol, applicationProtocols",
		spec: `configPatches:
- applyTo: FILTER_CHAIN
  match: {listener: {filterChain: {sni: a.example, transportProtocol: tls, applicationProtocols: "istio,istio-peer-exchange"}}}
  patch: {operation: MERGE, value: {transport_socket_connect_timeout: 3s}}
- applyTo: FILTER_CHAIN
  match: {listener: {filterChain: {sni: b.example}}}
  patch: {operation: MERGE, value: {transport_socket_connect_timeout: 4s}}`,
		applied: true,
		check: func(t *testing.T, w *world) {
			fc := w.in[0].FilterChains
			if fc[0].GetTransportSocketConnectTimeout().AsDuration().Seconds() != 3 || fc[1].GetTransportSocketConnectTimeout() != nil {
				t.Fatal(fc)
			}
			if w.rec.Applied[w.patch(1)] {
				t.Fatal("sni b.example matched")
			}
		},
	}, {
		name: "FILTER_CHAIN ADD",
		spec: `configPatches:
- applyTo: FILTER_CHAIN
  match: {listener: {name: 0.0.0.0_5432}}
  patch: {operation: ADD, value: {name: added, filters: [{name: envoy.filters.network.tcp_proxy}]}}`,
		applied: true,
		check: func(t *testing.T, w *world) {
			if got := names(w.out[1].FilterChains); got != "tcp,added" {
				t.Fatal(got)
			}
		},
	}, {
		name: "NETWORK_FILTER INSERT_FIRST, INSERT_AFTER, REPLACE, REMOVE",
		spec: `configPatches:
- applyTo: NETWORK_FILTER
  match: {listener: {filterChain: {name: tcp}}}
  patch: {operation: INSERT_FIRST, value: {name: one}}
- applyTo: NETWORK_FILTER
  match: {listener: {filterChain: {name: tcp, filter: {name: one}}}}
  patch: {operation: INSERT_AFTER, value: {name: two}}
- applyTo: NETWORK_FILTER
  match: {listener: {filterChain: {name: tcp, filter: {name: two}}}}
  patch: {operation: REPLACE, value: {name: three}}
- applyTo: NETWORK_FILTER
  match: {listener: {filterChain: {name: tcp, filter: {name: one}}}}
  patch: {operation: REMOVE}`,
		applied: true,
		check: func(t *testing.T, w *world) {
			if got := names(w.out[1].FilterChains[0].Filters); got != "three,envoy.filters.network.tcp_proxy" {
				t.Fatal(got)
			}
		},
	}, {
		name: "NETWORK_FILTER MERGE into the HCM's typed_config",
		spec: `configPatches:
- applyTo: NETWORK_FILTER
  match: {listener: {portNumber: 8080, filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}}}
  patch:
    operation: MERGE
    value:
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        server_name: patched`,
		applied: true,
		check: func(t *testing.T, w *world) {
			h := hcmOf(t, w.out[0].FilterChains[0].Filters[0])
			if h.ServerName != "patched" || h.StatPrefix != "s" || h.GetRds().GetRouteConfigName() != "8080" {
				t.Fatal(h)
			}
		},
	}, {
		name: "HTTP_FILTER INSERT_BEFORE router, REMOVE fault",
		spec: `configPatches:
- applyTo: HTTP_FILTER
  match: {context: SIDECAR_OUTBOUND, listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}}}}
  patch:
    operation: INSERT_BEFORE
    value:
      name: envoy.filters.http.lua
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua, default_source_code: {inline_string: "x"}}
- applyTo: HTTP_FILTER
  match: {listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.fault}}}}}
  patch: {operation: REMOVE}`,
		applied: true,
		check: func(t *testing.T, w *world) {
			if got := strings.Join(httpFilters(t, w.out[0].FilterChains[0].Filters[0]), ","); got != "envoy.filters.http.lua,envoy.filters.http.router" {
				t.Fatal(got)
			}
			if got := strings.Join(httpFilters(t, w.in[0].FilterChains[0].Filters[0]), ","); got != "envoy.filters.http.router" {
				t.Fatal(got) // REMOVE had context ANY
			}
		},
	}, {
		name: "HTTP_FILTER INSERT_FIRST, ADD, REPLACE",
		spec: `configPatches:
- applyTo: HTTP_FILTER
  match: {context: SIDECAR_INBOUND}
  patch: {operation: INSERT_FIRST, value: {name: a}}
- applyTo: HTTP_FILTER
  match: {context: SIDECAR_INBOUND}
  patch: {operation: ADD, value: {name: z}}
- applyTo: HTTP_FILTER
  match: {context: SIDECAR_INBOUND, listener: {filterChain: {filter: {subFilter: {name: a}}}}}
  patch: {operation: REPLACE, value: {name: b}}`,
		applied: true,
		check: func(t *testing.T, w *world) {
			if got := strings.Join(httpFilters(t, w.in[0].FilterChains[0].Filters[0]), ","); got != "b,envoy.filters.http.fault,envoy.filters.http.router,z" {
				t.Fatal(got)
			}
		},
	}, {
		name: "HTTP_FILTER MERGE unpacks typed_config",
		spec: `configPatches:
- applyTo: HTTP_FILTER
  match: {listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.fault}}}}}
  patch:
    operation: MERGE
    value:
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
        abort: {http_status: 418, percentage: {numerator: 100}}`,
		applied: true,
		check: func(t *testing.T, w *world) {
			h := hcmOf(t, w.out[0].FilterChains[0].Filters[0])
			f := &faultv3.HTTPFault{}
			if err := h.HttpFilters[0].GetTypedConfig().UnmarshalTo(f); err != nil {
				t.Fatal(err)
			}
			if f.GetAbort().GetHttpStatus() != 418 || f.GetMaxActiveFaults().GetValue() != 5 {
				t.Fatal(f)
			}
		},
	}, {
		name: "HTTP_FILTER MERGE of another type fails",
		spec: `configPatches:
- applyTo: HTTP_FILTER
  match: {listener: {portNumber: 8080, filterChain: {filter: {subFilter: {name: envoy.filters.http.fault}}}}}
  patch:
    operation: MERGE
    value: {typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}`,
		check: func(t *testing.T, w *world) {
			if len(w.rec.Failed) != 1 || len(w.rec.Applied) != 0 {
				t.Fatal(w.rec)
			}
		},
	}, {
		name: "ROUTE_CONFIGURATION MERGE by port; inbound inline by name",
		spec: `configPatches:
- applyTo: ROUTE_CONFIGURATION
  match: {context: SIDECAR_OUTBOUND, routeConfiguration: {portNumber: 8080}}
  patch: {operation: MERGE, value: {max_direct_response_body_size_bytes: 10}}
- applyTo: ROUTE_CONFIGURATION
  match: {context: SIDECAR_INBOUND, routeConfiguration: {portNumber: 9080}}
  patch: {operation: MERGE, value: {request_headers_to_remove: [x-in]}}`,
		applied: true,
		check: func(t *testing.T, w *world) {
			if w.rc.GetMaxDirectResponseBodySizeBytes().GetValue() != 10 || len(w.rc.RequestHeadersToRemove) != 0 {
				t.Fatal(w.rc)
			}
			in := hcmOf(t, w.in[0].FilterChains[0].Filters[0]).GetRouteConfig()
			if len(in.RequestHeadersToRemove) != 1 {
				t.Fatal(in)
			}
		},
	}, {
		name: "VIRTUAL_HOST MERGE by domainName, ADD, REMOVE by name",
		spec: `configPatches:
- applyTo: VIRTUAL_HOST
  match: {context: SIDECAR_OUTBOUND, routeConfiguration: {vhost: {domainName: a}}}
  patch:
    operation: MERGE
    value: {response_headers_to_add: [{header: {key: x-patched, value: "1"}}]}
- applyTo: VIRTUAL_HOST
  match: {context: SIDECAR_OUTBOUND, routeConfiguration: {vhost: {name: allow_any}}}
  patch: {operation: REMOVE}
- applyTo: VIRTUAL_HOST
  match: {context: SIDECAR_OUTBOUND, routeConfiguration: {name: "8080"}}
  patch: {operation: ADD, value: {name: new, domains: [new.example]}}`,
		applied: true,
		check: func(t *testing.T, w *world) {
			if got := names(w.rc.VirtualHosts); got != "a.default.svc.cluster.local:8080,new" {
				t.Fatal(got)
			}
			if h := w.rc.VirtualHosts[0].ResponseHeadersToAdd; len(h) != 1 || h[0].Header.Key != "x-patched" {
				t.Fatal(h)
			}
		},
	}, {
		name: "VIRTUAL_HOST REPLACE",
		spec: `configPatches:
- applyTo: VIRTUAL_HOST
  match: {routeConfiguration: {vhost: {name: allow_any}}}
  patch: {operation: REPLACE, value: {name: replaced, domains: ["*"]}}`,
		applied: true,
		check: func(t *testing.T, w *world) {
			if got := names(w.rc.VirtualHosts); got != "a.default.svc.cluster.local:8080,replaced" {
				t.Fatal(got)
			}
		},
	}, {
		name: "HTTP_ROUTE MERGE by action, REMOVE by name, INSERT_BEFORE, INSERT_AFTER, INSERT_FIRST, ADD",
		spec: `configPatches:
- applyTo: HTTP_ROUTE
  match: {context: SIDECAR_OUTBOUND, routeConfiguration: {vhost: {name: a.default.svc.cluster.local:8080, route: {action: ROUTE}}}}
  patch: {operation: MERGE, value: {route: {timeout: 7s}}}
- applyTo: HTTP_ROUTE
  match: {context: SIDECAR_OUTBOUND, routeConfiguration: {vhost: {route: {name: r2}}}}
  patch: {operation: REMOVE}
- applyTo: HTTP_ROUTE
  match: {context: SIDECAR_OUTBOUND, routeConfiguration: {vhost: {name: a.default.svc.cluster.local:8080, route: {name: r1}}}}
  patch: {operation: INSERT_BEFORE, value: {name: before, match: {prefix: /b}, direct_response: {status: 204}}}
- applyTo: HTTP_ROUTE
  match: {context: SIDECAR_OUTBOUND, routeConfiguration: {vhost: {name: a.default.svc.cluster.local:8080, route: {name: r1}}}}
  patch: {operation: INSERT_AFTER, value: {name: after, match: {prefix: /a}, direct_response: {status: 204}}}
- applyTo: HTTP_ROUTE
  match: {context: SIDECAR_OUTBOUND, routeConfiguration: {vhost: {name: a.default.svc.cluster.local:8080, route: {name: r1}}}}
  patch: {operation: INSERT_FIRST, value: {name: first, match: {prefix: /f}, direct_response: {status: 204}}}
- applyTo: HTTP_ROUTE
  match: {context: SIDECAR_OUTBOUND, routeConfiguration: {vhost: {name: a.default.svc.cluster.local:8080}}}
  patch: {operation: ADD, value: {name: last, match: {prefix: /}, direct_response: {status: 204}}}`,
		applied: true,
		check: func(t *testing.T, w *world) {
			vh := w.rc.VirtualHosts[0]
			if got := names(vh.Routes); got != "first,before,r1,after,last" {
				t.Fatal(got)
			}
			if vh.Routes[2].GetRoute().GetTimeout().AsDuration().Seconds() != 7 {
				t.Fatal(vh.Routes[2])
			}
		},
	}, {
		name: "CLUSTER MERGE by service and subset replaces a duration",
		spec: `configPatches:
- applyTo: CLUSTER
  match: {context: SIDECAR_OUTBOUND, cluster: {service: a.default.svc.cluster.local, subset: v1, portNumber: 8080}}
  patch: {operation: MERGE, value: {connect_timeout: 0.5s, circuit_breakers: {thresholds: [{max_connections: 1}]}}}`,
		applied: true,
		check: func(t *testing.T, w *world) {
			if d := w.cs[1].GetConnectTimeout().AsDuration(); d.Milliseconds() != 500 {
				t.Fatal(d)
			}
			if w.cs[0].GetConnectTimeout().AsDuration().Seconds() != 10 || w.cs[1].GetCircuitBreakers().GetThresholds()[0].GetMaxConnections().GetValue() != 1 {
				t.Fatal(w.cs)
			}
		},
	}, {
		name: "CLUSTER REMOVE by name, REPLACE, ADD, inbound context",
		spec: `configPatches:
- applyTo: CLUSTER
  match: {cluster: {name: "outbound|9090||b.default.svc.cluster.local"}}
  patch: {operation: REMOVE}
- applyTo: CLUSTER
  match: {context: SIDECAR_INBOUND}
  patch: {operation: REPLACE, value: {name: "inbound|9080||", connect_timeout: 1s}}
- applyTo: CLUSTER
  patch: {operation: ADD, value: {name: extra, type: STATIC}}`,
		applied: true,
		check: func(t *testing.T, w *world) {
			if got := names(w.cs); got != "outbound|8080||a.default.svc.cluster.local,outbound|8080|v1|a.default.svc.cluster.local,inbound|9080||,extra" {
				t.Fatal(got)
			}
			if w.cs[2].GetConnectTimeout().AsDuration().Seconds() != 1 {
				t.Fatal(w.cs[2])
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			w := apply(t, tc.spec)
			if tc.check != nil {
				tc.check(t, w)
			}
			if !strings.Contains(tc.name, "fails") {
				w.applied(t, tc.applied)
			}
		})
	}
}
