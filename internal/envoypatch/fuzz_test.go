package envoypatch

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// FuzzPatches compiles an EnvoyFilter spec (user input, as JSON) and
// applies what compiles to every resource kind in every context. It must
// never panic, and never change the patch values it was given (operations
// insert clones, so a cached value stays as it was).
func FuzzPatches(f *testing.F) {
	f.Add(`{"configPatches":[{"applyTo":"HTTP_FILTER","match":{"listener":{"filterChain":{"filter":{"name":"envoy.filters.network.http_connection_manager","subFilter":{"name":"envoy.filters.http.router"}}}}},"patch":{"operation":"INSERT_BEFORE","value":{"name":"x","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault","abort":{"http_status":503}}}}}]}`)
	f.Add(`{"configPatches":[{"applyTo":"HTTP_FILTER","patch":{"operation":"MERGE","value":{"typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault","max_active_faults":3}}}}]}`)
	f.Add(`{"configPatches":[{"applyTo":"NETWORK_FILTER","patch":{"operation":"MERGE","value":{"name":"n","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager","server_name":"s"}}}}]}`)
	f.Add(`{"configPatches":[{"applyTo":"VIRTUAL_HOST","match":{"routeConfiguration":{"vhost":{"name":"allow_any"}}},"patch":{"operation":"REPLACE","value":{"name":"r","domains":["*"]}}},{"applyTo":"VIRTUAL_HOST","patch":{"operation":"REMOVE"}}]}`)
	f.Add(`{"configPatches":[{"applyTo":"HTTP_ROUTE","match":{"routeConfiguration":{"vhost":{"route":{"name":"r1","action":"ROUTE"}}}},"patch":{"operation":"INSERT_FIRST","value":{"name":"f"}}},{"applyTo":"HTTP_ROUTE","patch":{"operation":"REMOVE"}}]}`)
	f.Add(`{"configPatches":[{"applyTo":"CLUSTER","match":{"cluster":{"service":"a.default.svc.cluster.local"}},"patch":{"operation":"MERGE","value":{"connect_timeout":"1s","circuit_breakers":{"thresholds":[{"max_requests":1}]}}}},{"applyTo":"CLUSTER","patch":{"operation":"ADD","value":{"name":"x"}}}]}`)
	f.Add(`{"configPatches":[{"applyTo":"LISTENER","match":{"context":"SIDECAR_INBOUND","listener":{"portNumber":15006}},"patch":{"operation":"REMOVE"}},{"applyTo":"FILTER_CHAIN","match":{"listener":{"portNumber":9080}},"patch":{"operation":"MERGE","value":{"name":"y"}}},{"applyTo":"LISTENER_FILTER","patch":{"operation":"INSERT_FIRST","value":{"name":"z"}}}]}`)
	f.Add(`{"configPatches":[{"applyTo":"ROUTE_CONFIGURATION","match":{"proxy":{"proxyVersion":"^1\\."}},"patch":{"operation":"MERGE","value":{"validate_clusters":true}}}]}`)
	f.Fuzz(func(t *testing.T, js string) {
		spec := &networking.EnvoyFilter{}
		if err := protojson.Unmarshal([]byte(js), spec); err != nil {
			return
		}
		patches, _ := Compile("default/fuzz", spec)
		before := make([][]byte, len(patches))
		for i, p := range patches {
			if p.Value != nil {
				before[i], _ = proto.MarshalOptions{Deterministic: true}.Marshal(p.Value)
			}
			p.ProxyMatches("1.2.3", nil)
		}
		s := NewSet(patches)
		r := NewRecord()
		for _, pctx := range []networking.EnvoyFilter_PatchContext{SidecarOutbound, SidecarInbound, Gateway} {
			Listeners(s, pctx, append(outboundListeners(t), inboundListener(t)), false, r)
			RouteConfig(s, pctx, routeConfig("8080"), r)
			Clusters(s, func(*clusterv3.Cluster) networking.EnvoyFilter_PatchContext { return pctx }, pctx, clusters(), r)
		}
		for i, p := range patches {
			if p.Value == nil {
				continue
			}
			after, _ := proto.MarshalOptions{Deterministic: true}.Marshal(p.Value)
			if string(after) != string(before[i]) {
				t.Fatalf("%s: applying changed the patch value", p)
			}
		}
	})
}
