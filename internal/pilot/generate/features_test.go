package generate

import (
	"fmt"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

func gen1(t *testing.T, pc *model.PushContext, p *model.Proxy, typ string, names ...string) map[string]proto.Message {
	t.Helper()
	rs, err := Generate(pc, p, typ, names)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]proto.Message{}
	for _, r := range rs {
		out[r.Name] = r.Resource
	}
	return out
}

func vhost(t *testing.T, rc *routev3.RouteConfiguration, name string) *routev3.VirtualHost {
	t.Helper()
	for _, vh := range rc.GetVirtualHosts() {
		if vh.GetName() == name {
			return vh
		}
	}
	t.Fatalf("route config %s: no virtual host %s", rc.GetName(), name)
	return nil
}

func routeNamed(routes []*routev3.Route, name string) *routev3.Route {
	for _, r := range routes {
		if r.GetName() == name {
			return r
		}
	}
	return nil
}

func unpackHCM(t *testing.T, f *listenerv3.Filter) *hcmv3.HttpConnectionManager {
	t.Helper()
	m := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
		t.Fatalf("filter %s: %v", f.GetName(), err)
	}
	return m
}

func TestClusterHost(t *testing.T) {
	for _, tc := range []struct {
		in   string
		host string
		ok   bool
	}{
		{"outbound|9080||reviews.default.svc.cluster.local", "reviews.default.svc.cluster.local", true},
		{"outbound|9080|v2|reviews.default.svc.cluster.local", "reviews.default.svc.cluster.local", true},
		{"inbound|9080||", "", false},
		{"BlackHoleCluster", "", false},
		{"outbound|x||reviews", "", false},
		{"outbound|0||reviews", "", false},
		{"outbound|80|a|b|c", "", false},
		{"sideways|80||reviews", "", false},
	} {
		host, ok := ClusterHost(tc.in)
		if host != tc.host || ok != tc.ok {
			t.Errorf("ClusterHost(%q) = %q, %v; want %q, %v", tc.in, host, ok, tc.host, tc.ok)
		}
	}
}

func TestSidecarRouteFeatures(t *testing.T) {
	pc := bookinfoPush()
	rc := gen1(t, pc, productpageProxy(), RouteType, "9080")["9080"].(*routev3.RouteConfiguration)
	vh := vhost(t, rc, "reviews.default.svc.cluster.local:9080")
	routes := vh.GetRoutes()
	tests := []struct {
		name  string
		check func(t *testing.T, r *routev3.Route)
	}{
		{"jason.header", func(t *testing.T, r *routev3.Route) {
			hs := r.GetMatch().GetHeaders()
			if len(hs) != 2 || hs[0].GetStringMatch().GetExact() != "jason" || !hs[1].GetPresentMatch() {
				t.Errorf("headers = %v", hs)
			}
			ra := r.GetRoute()
			if ra.GetCluster() != "outbound|9080|v2|reviews.default.svc.cluster.local" || ra.GetTimeout().AsDuration().Seconds() != 3 {
				t.Errorf("action = %v", ra)
			}
			rp := ra.GetRetryPolicy()
			if rp.GetNumRetries().GetValue() != 3 || rp.GetRetryOn() != "5xx,gateway-error,retriable-status-codes" || len(rp.GetRetriableStatusCodes()) != 1 || rp.GetPerTryTimeout().AsDuration().Seconds() != 1 {
				t.Errorf("retry = %v", rp)
			}
			if len(r.GetRequestHeadersToAdd()) != 1 || r.GetRequestHeadersToRemove()[0] != "x-internal" {
				t.Errorf("request headers = %v %v", r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove())
			}
			// v2 subset uses consistent hashing by cookie
			if c := ra.GetHashPolicy()[0].GetCookie(); c.GetName() != "user" || c.GetTtl().AsDuration().Hours() != 1 {
				t.Errorf("hash policy = %v", ra.GetHashPolicy())
			}
		}},
		{"jason.regex", func(t *testing.T, r *routev3.Route) {
			m := r.GetMatch()
			if m.GetSafeRegex().GetRegex() != "/api/v[0-9]+/reviews" || m.GetCaseSensitive().GetValue() || m.GetCaseSensitive() == nil {
				t.Errorf("match = %v", m)
			}
			if h := m.GetHeaders(); len(h) != 1 || h[0].GetName() != ":method" || h[0].GetStringMatch().GetExact() != "GET" {
				t.Errorf("method = %v", h)
			}
		}},
		{"canary", func(t *testing.T, r *routev3.Route) {
			m := r.GetMatch()
			if m.GetPrefix() != "/canary" || m.GetQueryParameters()[0].GetStringMatch().GetExact() != "3" {
				t.Errorf("match = %v", m)
			}
			var without, authority bool
			for _, h := range m.GetHeaders() {
				without = without || (h.GetName() == "x-skip" && h.GetInvertMatch() && h.GetPresentMatch())
				authority = authority || (h.GetName() == ":authority" && h.GetStringMatch().GetPrefix() == "reviews")
			}
			if !without || !authority {
				t.Errorf("headers = %v", m.GetHeaders())
			}
			wc := r.GetRoute().GetWeightedClusters().GetClusters()
			if len(wc) != 2 || wc[0].GetWeight().GetValue() != 75 || wc[1].GetName() != "outbound|9080|v3|reviews.default.svc.cluster.local" {
				t.Errorf("weighted = %v", wc)
			}
			if len(wc[0].GetResponseHeadersToAdd()) != 1 {
				t.Errorf("per-destination headers lost: %v", wc[0])
			}
			// mirror with mirrorPercentage 12.5: 125,000 per million, copies not sampled
			mp := r.GetRoute().GetRequestMirrorPolicies()
			if len(mp) != 1 || mp[0].GetCluster() != "outbound|9080|v2|reviews.default.svc.cluster.local" ||
				mp[0].GetRuntimeFraction().GetDefaultValue().GetNumerator() != 125000 || mp[0].GetTraceSampled().GetValue() {
				t.Errorf("mirror = %v", mp)
			}
			if _, ok := r.GetTypedPerFilterConfig()[corsFilterName]; !ok {
				t.Errorf("no CORS policy")
			}
		}},
		{"canary", func(t *testing.T, r *routev3.Route) {}}, // the sourceLabels match for productpage, below
		{"rewrite", func(t *testing.T, r *routev3.Route) {
			ra := r.GetRoute()
			if ra.GetPrefixRewrite() != "/new" || ra.GetHostRewriteLiteral() != "reviews.internal" {
				t.Errorf("rewrite = %v", ra)
			}
		}},
		{"regex-rewrite", func(t *testing.T, r *routev3.Route) {
			ra := r.GetRoute()
			if ra.GetRegexRewrite().GetPattern().GetRegex() != "^/re/(.*)$" || ra.GetRetryPolicy() != nil {
				t.Errorf("regex rewrite / retries disabled: %v", ra)
			}
		}},
		{"moved", func(t *testing.T, r *routev3.Route) {
			rd := r.GetRedirect()
			if rd.GetPathRedirect() != "/reviews" || rd.GetHostRedirect() != "reviews.example.com" || rd.GetResponseCode() != routev3.RedirectAction_FOUND || !rd.GetHttpsRedirect() {
				t.Errorf("redirect = %v", rd)
			}
		}},
		{"teapot", func(t *testing.T, r *routev3.Route) {
			if d := r.GetDirectResponse(); d.GetStatus() != 418 || d.GetBody().GetInlineString() != "short and stout" {
				t.Errorf("direct = %v", d)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := routeNamed(routes, tc.name)
			if r == nil {
				t.Fatalf("no route %s in %d routes", tc.name, len(routes))
			}
			tc.check(t, r)
		})
	}
	// sourceLabels: productpage keeps its match, the ratings-only match and the port-9999 match are dropped.
	var paths []string
	for _, r := range routes {
		if p := r.GetMatch().GetPath(); p != "" {
			paths = append(paths, p)
		}
	}
	got := strings.Join(paths, ",")
	if got != "/from-productpage,/moved,/teapot" {
		t.Errorf("exact-path routes = %s; want /from-productpage,/moved,/teapot", got)
	}
	// a match-less HTTPRoute gives a catch-all last
	if last := routes[len(routes)-1]; last.GetMatch().GetPrefix() != "/" || last.GetRoute().GetCluster() != "outbound|9080|v1|reviews.default.svc.cluster.local" {
		t.Errorf("last route = %v", last)
	}
	// the allow_any virtual host comes last with domain "*"
	if last := rc.GetVirtualHosts()[len(rc.GetVirtualHosts())-1]; last.GetName() != "allow_any" || last.GetRoutes()[0].GetRoute().GetCluster() != PassthroughCluster {
		t.Errorf("catch-all = %v", last)
	}
}

func TestSourceLabelsFromOtherProxy(t *testing.T) {
	pc := bookinfoPush()
	ratings := productpageProxy()
	ratings.Labels = map[string]string{"app": "ratings"}
	rc := gen1(t, pc, ratings, RouteType, "9080")["9080"].(*routev3.RouteConfiguration)
	var paths []string
	for _, r := range vhost(t, rc, "reviews.default.svc.cluster.local:9080").GetRoutes() {
		if p := r.GetMatch().GetPath(); strings.HasPrefix(p, "/from-") {
			paths = append(paths, p)
		}
	}
	if len(paths) != 1 || paths[0] != "/from-ratings" {
		t.Errorf("source-label routes for ratings = %v", paths)
	}
}

func TestDomainsShortNamesByNamespace(t *testing.T) {
	pc := bookinfoPush()
	rc := gen1(t, pc, productpageProxy(), RouteType, "80")["80"].(*routev3.RouteConfiguration)
	d := strings.Join(vhost(t, rc, "httpbin.other.svc.cluster.local:80").GetDomains(), " ") + " "
	if strings.Contains(d, "httpbin ") || !strings.Contains(d, "httpbin.other ") || !strings.Contains(d, "10.0.0.8 ") || strings.Contains(d, ":") {
		t.Errorf("domains from namespace default = %s", d)
	}
}

func TestClusterPolicies(t *testing.T) {
	pc := bookinfoPush()
	cs := gen1(t, pc, productpageProxy(), ClusterType)
	get := func(name string) *clusterv3.Cluster {
		c, ok := cs[name].(*clusterv3.Cluster)
		if !ok {
			t.Fatalf("no cluster %s", name)
		}
		return c
	}
	upstreamTLS := func(c *clusterv3.Cluster) *tlsv3.UpstreamTlsContext {
		if c.GetTransportSocket() == nil {
			return nil
		}
		u := &tlsv3.UpstreamTlsContext{}
		if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	tests := []struct {
		name  string
		check func(t *testing.T, c *clusterv3.Cluster)
	}{
		{"outbound|9080||reviews.default.svc.cluster.local", func(t *testing.T, c *clusterv3.Cluster) {
			if c.GetType() != clusterv3.Cluster_EDS || c.GetEdsClusterConfig().GetEdsConfig().GetAds() == nil {
				t.Errorf("not an ADS EDS cluster: %v", c)
			}
			if c.GetLbPolicy() != clusterv3.Cluster_RANDOM || c.GetConnectTimeout().AsDuration().Seconds() != 3 {
				t.Errorf("lb/timeout = %v %v", c.GetLbPolicy(), c.GetConnectTimeout())
			}
			th := c.GetCircuitBreakers().GetThresholds()[0]
			if th.GetMaxConnections().GetValue() != 100 || th.GetMaxPendingRequests().GetValue() != 10 || th.GetMaxRequests().GetValue() != 200 || th.GetMaxRetries().GetValue() != 4 {
				t.Errorf("thresholds = %v", th)
			}
			if od := c.GetOutlierDetection(); od.GetConsecutive_5Xx().GetValue() != 5 || od.GetEnforcingConsecutiveGatewayFailure().GetValue() != 0 || od.GetMaxEjectionPercent().GetValue() != 50 {
				t.Errorf("outlier = %v", od)
			}
			if c.GetCommonLbConfig().GetHealthyPanicThreshold().GetValue() != 20 {
				t.Errorf("panic threshold = %v", c.GetCommonLbConfig())
			}
			if _, ok := c.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey]; !ok {
				t.Errorf("h2 upgrade / max requests per connection missing")
			}
			u := upstreamTLS(c)
			if u.GetSni() != "outbound_.9080_._.reviews.default.svc.cluster.local" || u.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()[0].GetName() != "default" ||
				u.GetCommonTlsContext().GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName() != "ROOTCA" {
				t.Errorf("ISTIO_MUTUAL = %v", u)
			}
			sans := u.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames()
			if len(sans) != 1 || sans[0].GetMatcher().GetExact() != "spiffe://cluster.local/ns/default/sa/bookinfo-reviews" {
				t.Errorf("SANs = %v", sans)
			}
		}},
		{"outbound|9080|v2|reviews.default.svc.cluster.local", func(t *testing.T, c *clusterv3.Cluster) {
			if c.GetLbPolicy() != clusterv3.Cluster_MAGLEV || c.GetMaglevLbConfig().GetTableSize().GetValue() != 65537 {
				t.Errorf("subset lb = %v", c.GetLbPolicy())
			}
			if upstreamTLS(c).GetSni() != "outbound_.9080_.v2_.reviews.default.svc.cluster.local" {
				t.Errorf("subset SNI = %v", upstreamTLS(c).GetSni())
			}
		}},
		{"outbound|9080|v3|reviews.default.svc.cluster.local", func(t *testing.T, c *clusterv3.Cluster) {
			if c.GetTransportSocket() != nil || c.GetLbPolicy() != clusterv3.Cluster_RANDOM {
				t.Errorf("subset DISABLE should drop TLS and keep the top-level lb: %v", c)
			}
		}},
		{"outbound|9080||ratings.default.svc.cluster.local", func(t *testing.T, c *clusterv3.Cluster) {
			if c.GetLbPolicy() != clusterv3.Cluster_RING_HASH || c.GetRingHashLbConfig().GetMinimumRingSize().GetValue() != 1024 {
				t.Errorf("ring hash = %v", c)
			}
			if c.GetCircuitBreakers().GetThresholds()[0].GetMaxRequests().GetValue() != 50 {
				t.Errorf("port-level connection pool not applied")
			}
		}},
		{"outbound|9080||details.default.svc.cluster.local", func(t *testing.T, c *clusterv3.Cluster) {
			// the root-namespace wildcard DR applies (the selector DR does not select this proxy)
			u := upstreamTLS(c)
			if u.GetCommonTlsContext().GetTlsCertificates()[0].GetCertificateChain().GetFilename() != "/etc/certs/cert.pem" ||
				u.GetCommonTlsContext().GetValidationContext().GetTrustedCa().GetFilename() != "/etc/certs/root.pem" {
				t.Errorf("MUTUAL from root namespace = %v", u)
			}
			if c.GetLbPolicy() != clusterv3.Cluster_LEAST_REQUEST {
				t.Errorf("default lb = %v", c.GetLbPolicy())
			}
		}},
		{"outbound|443||api.example.com", func(t *testing.T, c *clusterv3.Cluster) {
			if c.GetType() != clusterv3.Cluster_STRICT_DNS || c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetAddress() != "api.example.com" {
				t.Errorf("DNS cluster = %v", c)
			}
			if u := upstreamTLS(c); u.GetSni() != "api.example.com" || u.GetCommonTlsContext().GetValidationContext().GetTrustedCa().GetFilename() != "/etc/certs/ca.pem" {
				t.Errorf("SIMPLE = %v", u)
			}
		}},
		{"outbound|7070||echo.default.svc.cluster.local", func(t *testing.T, c *clusterv3.Cluster) {
			if c.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey] == nil {
				t.Errorf("GRPC port without http2 options")
			}
		}},
		{"PassthroughCluster", func(t *testing.T, c *clusterv3.Cluster) {
			if c.GetType() != clusterv3.Cluster_ORIGINAL_DST || c.GetLbPolicy() != clusterv3.Cluster_CLUSTER_PROVIDED {
				t.Errorf("passthrough = %v", c)
			}
		}},
		{"inbound|9080||", func(t *testing.T, c *clusterv3.Cluster) {
			// productpage's Sidecar says defaultEndpoint 127.0.2.7:9080
			a := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
			if a.GetAddress() != "127.0.2.7" || a.GetPortValue() != 9080 {
				t.Errorf("inbound target = %v", a)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, get(tc.name)) })
	}
	if _, ok := cs[BlackHoleCluster]; !ok {
		t.Error("no BlackHoleCluster")
	}
}

func TestEndpointsBySubsetAndLocality(t *testing.T) {
	pc := bookinfoPush()
	es := gen1(t, pc, productpageProxy(), EndpointType, "outbound|9080||reviews.default.svc.cluster.local", "outbound|9080|v3|reviews.default.svc.cluster.local", "outbound|9080|nope|reviews.default.svc.cluster.local")
	if len(es) != 2 {
		t.Fatalf("got %d assignments, want 2 (unknown subset dropped)", len(es))
	}
	all := es["outbound|9080||reviews.default.svc.cluster.local"].(*endpointv3.ClusterLoadAssignment)
	if len(all.GetEndpoints()) != 2 || all.GetEndpoints()[0].GetLocality().GetZone() != "a" || all.GetEndpoints()[1].GetLoadBalancingWeight().GetValue() != 2 {
		t.Errorf("localities = %v", all.GetEndpoints())
	}
	v3 := es["outbound|9080|v3|reviews.default.svc.cluster.local"].(*endpointv3.ClusterLoadAssignment)
	if n := len(v3.GetEndpoints()); n != 1 || v3.GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetAddress() != "10.1.0.4" {
		t.Errorf("v3 endpoints = %v", v3.GetEndpoints())
	}
}

func TestSidecarListeners(t *testing.T) {
	pc := bookinfoPush()
	ls := gen1(t, pc, productpageProxy(), ListenerType)
	vo := ls[virtualOutboundName].(*listenerv3.Listener)
	if !vo.GetUseOriginalDst().GetValue() || vo.GetAddress().GetSocketAddress().GetPortValue() != 15001 {
		t.Errorf("virtualOutbound = %v", vo)
	}
	http := ls["0.0.0.0_9080"].(*listenerv3.Listener)
	if http.GetBindToPort().GetValue() || http.GetBindToPort() == nil {
		t.Errorf("0.0.0.0_9080 must not bind")
	}
	if rds := unpackHCM(t, http.GetFilterChains()[0].GetFilters()[0]).GetRds(); rds.GetRouteConfigName() != "9080" {
		t.Errorf("rds = %v", rds)
	}
	tcp := ls["10.0.0.6_27017"].(*listenerv3.Listener)
	tp := &tcpproxyv3.TcpProxy{}
	if err := tcp.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(tp); err != nil {
		t.Fatal(err)
	}
	if wc := tp.GetWeightedClusters().GetClusters(); len(wc) != 2 || wc[1].GetName() != "outbound|27017|backup|mongodb.default.svc.cluster.local" || wc[1].GetWeight() != 10 {
		t.Errorf("tcp route = %v", tp)
	}
	vi := ls[virtualInboundName].(*listenerv3.Listener)
	if len(vi.GetFilterChains()) != 2 || vi.GetFilterChains()[0].GetFilterChainMatch().GetDestinationPort().GetValue() != 9080 {
		t.Errorf("virtualInbound chains = %v", vi.GetFilterChains())
	}
	// Inbound connections are matched on their original destination (the
	// original_dst listener filter), never handed to the outbound listener
	// of the same port (use_original_dst).
	if vi.GetUseOriginalDst().GetValue() || len(vi.GetListenerFilters()) == 0 || vi.GetListenerFilters()[0].GetName() != originalDstName {
		t.Errorf("virtualInbound: use_original_dst %v, listener filters %v", vi.GetUseOriginalDst(), vi.GetListenerFilters())
	}
}

// TestInterceptionNone checks the no-capture contract (notes/contract-none.md).
func TestInterceptionNone(t *testing.T) {
	pc := bookinfoPush()
	p := reviewsNoneProxy()
	ls := gen1(t, pc, p, ListenerType)
	if len(ls) != 2 {
		t.Errorf("listeners = %v; want 10.1.0.2_9080 and 10.1.0.2_15001 only", keys(ls))
	}
	in := ls["10.1.0.2_9080"].(*listenerv3.Listener)
	if a := in.GetAddress().GetSocketAddress(); a.GetAddress() != "10.1.0.2" || a.GetPortValue() != 9080 || in.GetBindToPort() != nil {
		t.Errorf("inbound listener = %v", in)
	}
	rc := unpackHCM(t, in.GetFilterChains()[0].GetFilters()[0]).GetRouteConfig()
	if c := rc.GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetCluster(); c != "inbound|9080||" {
		t.Errorf("inbound route cluster = %s", c)
	}
	out := ls["10.1.0.2_15001"].(*listenerv3.Listener)
	if unpackHCM(t, out.GetFilterChains()[0].GetFilters()[0]).GetRds().GetRouteConfigName() != "http_proxy" {
		t.Errorf("forward proxy listener = %v", out)
	}
	cl := gen1(t, pc, p, ClusterType, "inbound|9080||")["inbound|9080||"].(*clusterv3.Cluster)
	if a := cl.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress(); a.GetAddress() != "127.0.0.1" || a.GetPortValue() != 9080 {
		t.Errorf("inbound cluster target = %v", a)
	}
	routes := gen1(t, pc, p, RouteType)
	hp := routes["http_proxy"].(*routev3.RouteConfiguration)
	d := strings.Join(vhost(t, hp, "reviews.default.svc.cluster.local:9080").GetDomains(), " ")
	if d != "reviews.default.svc.cluster.local:9080 reviews.default.svc:9080 reviews.default:9080 reviews:9080" {
		t.Errorf("http_proxy domains = %s", d)
	}
	d = strings.Join(vhost(t, hp, "httpbin.other.svc.cluster.local:80").GetDomains(), " ")
	if d != "httpbin.other.svc.cluster.local:80 httpbin.other.svc.cluster.local httpbin.other.svc:80 httpbin.other.svc httpbin.other:80 httpbin.other" {
		t.Errorf("port 80 domains = %s", d)
	}
	// a gateway with INTERCEPTION_MODE NONE binds its own IP
	gw := gatewayProxy()
	gw.Metadata["INTERCEPTION_MODE"] = "NONE"
	if _, ok := gen1(t, pc, gw, ListenerType)["10.1.0.100_80"]; !ok {
		t.Errorf("gateway without capture must bind 10.1.0.100_80")
	}
}

func keys[V any](m map[string]V) []string { return sortedKeys(m) }

func TestGatewayListenersAndRoutes(t *testing.T) {
	pc := bookinfoPush()
	p := gatewayProxy()
	ls := gen1(t, pc, p, ListenerType)
	if got := strings.Join(keys(ls), " "); got != "0.0.0.0_15443 0.0.0.0_443 0.0.0.0_80 0.0.0.0_8443" {
		t.Fatalf("listeners = %s", got)
	}
	https := ls["0.0.0.0_443"].(*listenerv3.Listener)
	if len(https.GetFilterChains()) != 2 || https.GetListenerFilters()[0].GetName() != tlsInspectorName {
		t.Fatalf("https chains = %v", https.GetFilterChains())
	}
	dt := &tlsv3.DownstreamTlsContext{}
	if err := https.GetFilterChains()[0].GetTransportSocket().GetTypedConfig().UnmarshalTo(dt); err != nil {
		t.Fatal(err)
	}
	if dt.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()[0].GetName() != "kubernetes://bookinfo-cert" {
		t.Errorf("credentialName = %v", dt)
	}
	if sn := https.GetFilterChains()[0].GetFilterChainMatch().GetServerNames(); len(sn) != 1 || sn[0] != "bookinfo.example.com" {
		t.Errorf("SNI = %v", sn)
	}
	pass := ls["0.0.0.0_8443"].(*listenerv3.Listener)
	if sn := pass.GetFilterChains()[0].GetFilterChainMatch().GetServerNames(); len(sn) != 1 || sn[0] != "secure.example.com" {
		t.Errorf("passthrough SNI = %v", sn)
	}
	auto := ls["0.0.0.0_15443"].(*listenerv3.Listener)
	found := false
	for _, fc := range auto.GetFilterChains() {
		found = found || fc.GetFilterChainMatch().GetServerNames()[0] == "outbound_.9080_._.reviews.default.svc.cluster.local"
	}
	// (the gateway lives in the root namespace, whose wildcard DestinationRule wins over reviews' subsets)
	if !found {
		t.Errorf("AUTO_PASSTHROUGH lacks the reviews SNI chain")
	}
	rs := gen1(t, pc, p, RouteType)
	if got := strings.Join(keys(rs), " "); got != "http.80 https.443.https-files.bookinfo-gateway.default https.443.https.bookinfo-gateway.default" {
		t.Fatalf("routes = %s", got)
	}
	vh := vhost(t, rs["http.80"].(*routev3.RouteConfiguration), "bookinfo.example.com:80")
	if vh.GetRequireTls() != routev3.VirtualHost_ALL {
		t.Errorf("httpsRedirect not applied")
	}
	// the match limited to gateway "mesh" is dropped on the gateway
	vh = vhost(t, rs["https.443.https.bookinfo-gateway.default"].(*routev3.RouteConfiguration), "bookinfo.example.com:443")
	if len(vh.GetRoutes()) != 2 || vh.GetRoutes()[0].GetMatch().GetPath() != "/productpage" || vh.GetRoutes()[1].GetMatch().GetPrefix() != "/static" {
		t.Errorf("gateway routes = %v", vh.GetRoutes())
	}
}

func TestSidecarScoping(t *testing.T) {
	pc := bookinfoPush()
	p := otherProxy()
	cs := gen1(t, pc, p, ClusterType)
	for _, want := range []string{"outbound|80||httpbin.other.svc.cluster.local", "outbound|9080||reviews.default.svc.cluster.local"} {
		if _, ok := cs[want]; !ok {
			t.Errorf("missing %s", want)
		}
	}
	for _, not := range []string{"outbound|9080||ratings.default.svc.cluster.local", "outbound|443||api.example.com"} {
		if _, ok := cs[not]; ok {
			t.Errorf("%s leaked through the Sidecar egress hosts", not)
		}
	}
	// REGISTRY_ONLY: the catch-all answers 502 and virtualOutbound goes to the black hole
	rc := gen1(t, pc, p, RouteType, "80")["80"].(*routev3.RouteConfiguration)
	if last := rc.GetVirtualHosts()[len(rc.GetVirtualHosts())-1]; last.GetName() != "block_all" {
		t.Errorf("catch-all = %s", last.GetName())
	}
	// exportTo "." hides a service from other namespaces
	reg := bookinfoRegistry()
	reg.Services[3].ExportTo = []string{"."}
	pc2 := model.NewPushContext("v2", model.DefaultMeshConfig(), pc.Config, reg)
	if _, ok := gen1(t, pc2, productpageProxy(), ClusterType)["outbound|80||httpbin.other.svc.cluster.local"]; ok {
		t.Error("exportTo . ignored")
	}
}

func TestGRPC(t *testing.T) {
	pc := bookinfoPush()
	p := grpcProxy()
	ls := gen1(t, pc, p, ListenerType, "echo:7070", "nosuch:1", "reviews:9999")
	if len(ls) != 1 {
		t.Fatalf("listeners = %v", keys(ls))
	}
	l := ls["echo:7070"].(*listenerv3.Listener)
	m := &hcmv3.HttpConnectionManager{}
	if err := l.GetApiListener().GetApiListener().UnmarshalTo(m); err != nil {
		t.Fatal(err)
	}
	if m.GetRds().GetRouteConfigName() != "echo:7070" || m.GetRds().GetConfigSource().GetAds() == nil {
		t.Errorf("rds = %v", m.GetRds())
	}
	if fs := m.GetHttpFilters(); fs[len(fs)-1].GetName() != routerFilterName {
		t.Errorf("router filter not last: %v", fs)
	}
	rc := gen1(t, pc, p, RouteType, "echo:7070")["echo:7070"].(*routev3.RouteConfiguration)
	vh := rc.GetVirtualHosts()[0]
	if vh.GetDomains()[0] != "echo:7070" {
		t.Errorf("domains = %v", vh.GetDomains())
	}
	for _, r := range vh.GetRoutes() {
		if len(r.GetTypedPerFilterConfig()) > 0 || len(r.GetMatch().GetQueryParameters()) > 0 {
			t.Errorf("route %s has what grpc-go rejects or ignores", r.GetName())
		}
		if rp := r.GetRoute().GetRetryPolicy(); rp != nil && rp.GetNumRetries().GetValue() < 1 {
			t.Errorf("num_retries < 1")
		}
	}
	first := vh.GetRoutes()[0].GetRoute()
	if first.GetMaxStreamDuration().GetMaxStreamDuration().AsDuration().Seconds() != 2 || first.GetTimeout() != nil {
		t.Errorf("timeout must be max_stream_duration: %v", first)
	}
	if first.GetRetryPolicy().GetRetryOn() != "unavailable" || first.GetRetryPolicy().GetNumRetries().GetValue() != 4 {
		t.Errorf("retry = %v", first.GetRetryPolicy())
	}
	if len(vh.GetRoutes()) != 2 {
		t.Errorf("query-param route should be dropped: %d routes", len(vh.GetRoutes()))
	}
	cs := gen1(t, pc, p, ClusterType)
	for name, m := range cs {
		c := m.(*clusterv3.Cluster)
		switch c.GetType() {
		case clusterv3.Cluster_EDS:
			if c.GetEdsClusterConfig().GetEdsConfig().GetAds() == nil {
				t.Errorf("%s: EDS config must be ads", name)
			}
		case clusterv3.Cluster_LOGICAL_DNS:
			if n := len(c.GetLoadAssignment().GetEndpoints()); n != 1 {
				t.Errorf("%s: LOGICAL_DNS with %d localities", name, n)
			}
		default:
			t.Errorf("%s: type %v that grpc-go rejects", name, c.GetType())
		}
		switch c.GetLbPolicy() {
		case clusterv3.Cluster_ROUND_ROBIN, clusterv3.Cluster_RING_HASH, clusterv3.Cluster_LEAST_REQUEST:
		default:
			t.Errorf("%s: lb %v", name, c.GetLbPolicy())
		}
		if ts := c.GetTransportSocket(); ts != nil {
			u := &tlsv3.UpstreamTlsContext{}
			_ = ts.GetTypedConfig().UnmarshalTo(u)
			if u.GetCommonTlsContext().GetTlsCertificateProviderInstance() == nil {
				t.Errorf("%s: TLS without certificate provider instance", name)
			}
		}
	}
	es := gen1(t, pc, p, EndpointType, "outbound|7070||echo.default.svc.cluster.local")
	for _, l := range es["outbound|7070||echo.default.svc.cluster.local"].(*endpointv3.ClusterLoadAssignment).GetEndpoints() {
		if l.GetLoadBalancingWeight().GetValue() == 0 {
			t.Error("grpc-go ignores localities without weight")
		}
	}
}

func TestDestinationRulePrecedence(t *testing.T) {
	// a DR in the proxy's namespace beats the service namespace's and the root's
	cfg := append(bookinfoConfig(),
		res(bookinfoConfig()[6].Kind, "other", "local-reviews", roundRobinDR("reviews.default.svc.cluster.local")),
	)
	pc := model.NewPushContext("v", model.DefaultMeshConfig(), configSnapshot(cfg), bookinfoRegistry())
	p := otherProxy()
	c := gen1(t, pc, p, ClusterType, "outbound|9080||reviews.default.svc.cluster.local")["outbound|9080||reviews.default.svc.cluster.local"].(*clusterv3.Cluster)
	if c.GetLbPolicy() != clusterv3.Cluster_ROUND_ROBIN || c.GetTransportSocket() != nil {
		t.Errorf("proxy-namespace DR not preferred: lb %v", c.GetLbPolicy())
	}
	// from default, the service namespace's DR applies
	c = gen1(t, pc, productpageProxy(), ClusterType, "outbound|9080||reviews.default.svc.cluster.local")["outbound|9080||reviews.default.svc.cluster.local"].(*clusterv3.Cluster)
	if c.GetLbPolicy() != clusterv3.Cluster_RANDOM {
		t.Errorf("service-namespace DR: lb %v", c.GetLbPolicy())
	}
}

// TestMirrorPercentages: Istio's defaults and zeros for mirror and mirrors.
func TestMirrorPercentages(t *testing.T) {
	g := newGen(bookinfoPush(), productpageProxy())
	d := dest("reviews", "v2", 9080)
	for _, tc := range []struct {
		name string
		r    *networking.HTTPRoute
		want []uint32 // numerators; HUNDRED when under 100 and from the legacy field or a default
	}{
		{"mirror defaults to 100", &networking.HTTPRoute{Mirror: d}, []uint32{100}},
		{"mirrorPercentage 0 mirrors nothing", &networking.HTTPRoute{Mirror: d, MirrorPercentage: &networking.Percent{}}, nil},
		{"legacy mirrorPercent", &networking.HTTPRoute{Mirror: d, MirrorPercent: wrapperspb.UInt32(30)}, []uint32{30}},
		{"legacy mirrorPercent 0", &networking.HTTPRoute{Mirror: d, MirrorPercent: wrapperspb.UInt32(0)}, nil},
		{"mirrors", &networking.HTTPRoute{Mirrors: []*networking.HTTPMirrorPolicy{{Destination: d}, {Destination: dest("ratings", "", 9080),
			Percentage: &networking.Percent{Value: 1}}, {Destination: d, Percentage: &networking.Percent{}}}}, []uint32{100, 10000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []uint32
			for _, m := range g.mirrorPolicies(tc.r, "default", 9080) {
				got = append(got, m.GetRuntimeFraction().GetDefaultValue().GetNumerator())
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("numerators %v, want %v", got, tc.want)
			}
		})
	}
}
