package main_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	httpfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

const gwNode = "router~127.0.0.1~gw.istio-system~istio-system.svc.cluster.local"

func route(prefix, cluster string, mut ...func(*routev3.Route)) *routev3.Route {
	r := xdstest.RouteTo(prefix, cluster)
	for _, m := range mut {
		m(r)
	}
	return r
}

// world is one proxy process with its control plane and backends.
type world struct {
	xds     *xdstest.Server
	proxy   *proc
	addr    string // the HTTP listener
	v1, v2  *backend
	flaky   *backend
	slow    *backend
	h2      *backend
	tricky  *backend
	tcpAddr string // tcp_proxy listener
	tcpEcho string // its backend
	version int
	baseRes func() map[string][]types.Resource
}

func newWorld(t *testing.T) *world {
	w := &world{}
	w.v1 = startBackend(t, "v1", nil)
	w.v2 = startBackend(t, "v2", nil)
	w.flaky = startBackend(t, "flaky", func(rw http.ResponseWriter, r *http.Request) {
		// Fails the first two attempts of each request id.
		if r.Header.Get("x-envoy-attempt-count") != "3" {
			rw.WriteHeader(503)
			return
		}
		fmt.Fprintf(rw, "flaky ok attempt=%s", r.Header.Get("x-envoy-attempt-count"))
	})
	w.slow = startBackend(t, "slow", func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	w.h2 = startH2Backend(t)
	w.tricky = startBackend(t, "tricky", func(rw http.ResponseWriter, r *http.Request) {
		attempt := r.Header.Get("x-envoy-attempt-count")
		switch {
		case strings.HasPrefix(r.URL.Path, "/pertry") && attempt == "1":
			<-r.Context().Done() // hangs until the proxy gives up on this try
			return
		case strings.HasPrefix(r.URL.Path, "/reset") && attempt == "1":
			c, _, _ := rw.(http.Hijacker).Hijack()
			c.Close() // connection reset before any response
			return
		}
		fmt.Fprintf(rw, "tricky ok attempt=%s", attempt)
	})
	w.tcpEcho = startTCPEcho(t)
	w.tcpAddr = freeAddr(t)
	w.addr = freeAddr(t)
	w.xds = xdstest.Start(t, "127.0.0.1:0", nil)
	w.baseRes = func() map[string][]types.Resource { return w.resources(nil) }
	w.push(t, w.baseRes())
	w.proxy = startProxy(t, w.xds.Addr, gwNode)
	w.proxy.waitReady(t)
	waitListening(t, w.addr)
	return w
}

func startH2Backend(t *testing.T) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: ln.Addr().String()}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		fmt.Fprintf(w, "h2 backend proto=%s path=%s", r.Proto, r.URL.RequestURI())
	})
	b.srv = &http.Server{Handler: h2c.NewHandler(h, &http2.Server{})}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func (w *world) push(t *testing.T, res map[string][]types.Resource) {
	t.Helper()
	w.version++
	w.xds.Set(t, gwNode, fmt.Sprint(w.version), res)
}

// resources is the gateway's configuration; extra routes go first.
func (w *world) resources(extra []*routev3.Route) map[string][]types.Resource {
	retry := func(r *routev3.Route) {
		r.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(2),
			RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}}
	}
	routes := append(extra,
		route("/headers", "v1", func(r *routev3.Route) {
			r.Match.Headers = []*routev3.HeaderMatcher{{Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
				StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "jason"}}}}}
			r.GetRoute().ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "v2"}
		}),
		route("/weighted", "", func(r *routev3.Route) {
			r.GetRoute().ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
				{Name: "v1", Weight: wrapperspb.UInt32(0)}, {Name: "v2", Weight: wrapperspb.UInt32(100)}}}}
		}),
		route("/rewrite/", "v1", func(r *routev3.Route) {
			r.GetRoute().PrefixRewrite = "/new/"
			r.GetRoute().HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "rewritten.example"}
		}),
		route("/regex", "v1", func(r *routev3.Route) {
			r.GetRoute().RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: "^/regex/([a-z]+)$"}, Substitution: "/r/\\1"}
		}),
		&routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/redirect"}},
			Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{HostRedirect: "example.com", PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/elsewhere"}}}},
		&routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/direct"}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 418, Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "teapot"}}}}},
		route("/headerops", "v1", func(r *routev3.Route) {
			r.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-added", Value: "yes"}}}
			r.RequestHeadersToRemove = []string{"x-secret"}
			r.ResponseHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-resp", Value: "added"}}}
			r.ResponseHeadersToRemove = []string{"x-backend"}
		}),
		route("/retry", "flaky", retry),
		route("/noretry", "flaky"),
		route("/slow", "slow", func(r *routev3.Route) { r.GetRoute().Timeout = durationpb.New(200 * time.Millisecond) }),
		route("/abort", "v1", func(r *routev3.Route) {
			r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": xdstest.Any(&httpfaultv3.HTTPFault{
				Abort: &httpfaultv3.FaultAbort{ErrorType: &httpfaultv3.FaultAbort_HttpStatus{HttpStatus: 555},
					Percentage: &typev3.FractionalPercent{Numerator: 100}}})}
		}),
		route("/delay", "v1", func(r *routev3.Route) {
			r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": xdstest.Any(&httpfaultv3.HTTPFault{
				Delay: &faultv3.FaultDelay{FaultDelaySecifier: &faultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(50 * time.Millisecond)},
					Percentage: &typev3.FractionalPercent{Numerator: 100}}})}
		}),
		route("/cors", "v1", func(r *routev3.Route) {
			r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.cors": xdstest.Any(&corsv3.CorsPolicy{
				AllowOriginStringMatch: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://good.example"}}},
				AllowMethods:           "GET,POST", AllowHeaders: "x-custom", ExposeHeaders: "x-backend", MaxAge: "60",
				AllowCredentials: wrapperspb.Bool(true)})}
		}),
		route("/h2up", "h2"),
		route("/pertry", "tricky", func(r *routev3.Route) {
			r.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "gateway-error", NumRetries: wrapperspb.UInt32(1),
				PerTryTimeout: durationpb.New(150 * time.Millisecond), RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}}
		}),
		route("/reset", "tricky", func(r *routev3.Route) {
			r.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "reset", NumRetries: wrapperspb.UInt32(1),
				RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}}
		}),
		route("/nohost", "empty"),
		route("/down", "down"),
		route("/", "v1"),
	)
	rc := &routev3.RouteConfiguration{Name: "main", VirtualHosts: []*routev3.VirtualHost{
		{Name: "reviews", Domains: []string{"reviews:9080", "reviews.default.svc.cluster.local:9080"}, Routes: []*routev3.Route{route("/", "v2")}},
		{Name: "secure", Domains: []string{"secure.example"}, RequireTls: routev3.VirtualHost_ALL, Routes: []*routev3.Route{route("/", "v2")}},
		{Name: "all", Domains: []string{"*"}, Routes: routes},
	}}
	h2c := xdstest.EDSCluster("h2")
	h2c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{}
	down := xdstest.StaticCluster("down", "127.0.0.1:1") // nothing listens on port 1: connection refused
	hcm := xdstest.HCM("main")
	hcm.RequestHeadersTimeout = durationpb.New(300 * time.Millisecond)
	hcm.UseRemoteAddress = wrapperspb.Bool(true)
	hcm.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "envoy.filters.http.cors",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: xdstest.Any(&corsv3.Cors{})}}}, hcm.HttpFilters...)
	return xdstest.Resources(
		xdstest.ListenerWith(w.addr, w.addr, hcm),
		rc,
		xdstest.EDSCluster("v1"), xdstest.CLA("v1", w.v1.addr),
		xdstest.EDSCluster("v2"), xdstest.CLA("v2", w.v2.addr),
		xdstest.StaticCluster("flaky", w.flaky.addr),
		xdstest.StaticCluster("slow", w.slow.addr),
		h2c, xdstest.CLA("h2", w.h2.addr),
		xdstest.EDSCluster("empty"), xdstest.CLA("empty"),
		down,
		xdstest.StaticCluster("tricky", w.tricky.addr),
		xdstest.TCPListener("tcp", w.tcpAddr, "echo"),
		xdstest.StaticCluster("echo", w.tcpEcho),
	)
}

func get(t *testing.T, c *http.Client, u string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestEndToEnd(t *testing.T) {
	w := newWorld(t)
	outer := t
	base := "http://" + w.addr
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	h2client := &http.Client{Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) { return net.Dial(n, a) }}}

	t.Run("http1 routing and standard headers", func(t *testing.T) {
		resp, body := get(t, noRedirect, base+"/a/b?x=1", "x-envoy-retry-on", "5xx")
		if resp.StatusCode != 200 || body != "v1 GET "+w.addr+" /a/b?x=1" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		if resp.Header.Get("x-envoy-upstream-service-time") == "" {
			t.Error("no x-envoy-upstream-service-time")
		}
		r := w.v1.last()
		if len(r.Header.Get("x-request-id")) != 36 || r.Header.Get("x-envoy-attempt-count") != "1" || r.Header.Get("x-envoy-retry-on") != "" {
			t.Errorf("backend headers: %v", r.Header)
		}
		if xff := r.Header.Get("x-forwarded-for"); xff != "127.0.0.1" {
			t.Errorf("x-forwarded-for = %q, want the client address", xff)
		}
		if r.Header.Get("x-forwarded-proto") != "http" {
			t.Errorf("x-forwarded-proto = %q", r.Header.Get("x-forwarded-proto"))
		}
	})
	t.Run("h2c prior knowledge", func(t *testing.T) {
		resp, body := get(t, h2client, base+"/h2c")
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !strings.HasPrefix(body, "v1 GET") {
			t.Fatalf("got %s %d %q", resp.Proto, resp.StatusCode, body)
		}
	})
	t.Run("upstream http2", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			resp, body := get(t, noRedirect, base+"/h2up?i=1")
			if resp.StatusCode != 200 || body != "h2 backend proto=HTTP/2.0 path=/h2up?i=1" {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
		}
	})
	t.Run("forward proxy absolute form", func(t *testing.T) {
		pu, _ := url.Parse(base)
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
		resp, body := get(t, c, "http://reviews:9080/reviews/0")
		if resp.StatusCode != 200 || body != "v2 GET reviews:9080 /reviews/0" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		if uri := w.v2.last().RequestURI; uri != "/reviews/0" {
			t.Errorf("backend saw request-target %q, want origin-form", uri)
		}
	})
	t.Run("routing features", func(t *testing.T) {
		for _, tc := range []struct {
			name, path string
			hdr        []string
			status     int
			body       string
			respHdr    [2]string
		}{
			{"header match", "/headers", []string{"end-user", "jason"}, 200, "v2 GET " + w.addr + " /headers", [2]string{}},
			{"header mismatch", "/headers", []string{"end-user", "bob"}, 200, "v1 GET " + w.addr + " /headers", [2]string{}},
			{"weighted", "/weighted", nil, 200, "v2 GET " + w.addr + " /weighted", [2]string{}},
			{"prefix and host rewrite", "/rewrite/x?q=1", nil, 200, "v1 GET rewritten.example /new/x?q=1", [2]string{}},
			{"regex rewrite", "/regex/abc", nil, 200, "v1 GET " + w.addr + " /r/abc", [2]string{}},
			{"redirect", "/redirect", nil, 301, "", [2]string{"location", "http://example.com/elsewhere"}},
			{"direct response", "/direct", nil, 418, "teapot", [2]string{}},
			{"response header ops", "/headerops", []string{"x-secret", "s"}, 200, "v1 GET " + w.addr + " /headerops", [2]string{"x-resp", "added"}},
			{"normalized path", "/x/../headers/./", []string{"end-user", "jason"}, 200, "v2 GET " + w.addr + " /headers/", [2]string{}},
			{"vhost by authority", "/any", []string{"host", "reviews.default.svc.cluster.local:9080"}, 200, "v2 GET reviews.default.svc.cluster.local:9080 /any", [2]string{}},
			{"require tls", "/login?x=1", []string{"host", "secure.example"}, 301, "", [2]string{"location", "https://secure.example/login?x=1"}},
			{"retry 5xx", "/retry", nil, 200, "flaky ok attempt=3", [2]string{}},
			{"no retry policy", "/noretry", nil, 503, "", [2]string{}},
			{"retry after per-try timeout", "/pertry", nil, 200, "tricky ok attempt=2", [2]string{}},
			{"retry after reset", "/reset", nil, 200, "tricky ok attempt=2", [2]string{}},
			{"timeout", "/slow", nil, 504, "upstream request timeout", [2]string{"x-mast-response-flags", "UT"}},
			{"fault abort", "/abort", nil, 555, "fault filter abort", [2]string{"x-mast-response-flags", "FI"}},
			{"fault delay", "/delay", nil, 200, "v1 GET " + w.addr + " /delay", [2]string{}},
			{"no healthy upstream", "/nohost", nil, 503, "no healthy upstream", [2]string{"x-mast-response-flags", "UH"}},
			{"connect failure", "/down", nil, 503, "upstream connect error or disconnect/reset before headers. reset reason: connection failure", [2]string{"x-mast-response-flags", "UF"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := get(t, noRedirect, base+tc.path, tc.hdr...)
				if resp.StatusCode != tc.status || (tc.body != "" && body != tc.body) {
					t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tc.status, tc.body)
				}
				if tc.respHdr[0] != "" && resp.Header.Get(tc.respHdr[0]) != tc.respHdr[1] {
					t.Errorf("%s = %q, want %q", tc.respHdr[0], resp.Header.Get(tc.respHdr[0]), tc.respHdr[1])
				}
			})
		}
		if r := w.v1.last(); r.URL.Path == "/headerops" && (r.Header.Get("x-added") != "yes" || r.Header.Get("x-secret") != "") {
			t.Errorf("request header ops not applied: %v", r.Header)
		}
	})
	t.Run("cors", func(t *testing.T) {
		pre := func(origin string) *http.Response {
			req, _ := http.NewRequest("OPTIONS", base+"/cors", nil)
			req.Header.Set("origin", origin)
			req.Header.Set("access-control-request-method", "POST")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		resp := pre("https://good.example")
		if resp.StatusCode != 200 || resp.Header.Get("access-control-allow-origin") != "https://good.example" ||
			resp.Header.Get("access-control-allow-methods") != "GET,POST" || resp.Header.Get("access-control-max-age") != "60" ||
			resp.Header.Get("access-control-allow-credentials") != "true" {
			t.Errorf("preflight from an allowed origin: %d %v", resp.StatusCode, resp.Header)
		}
		if resp := pre("https://evil.example"); resp.Header.Get("access-control-allow-origin") != "" {
			t.Errorf("preflight from another origin got CORS headers: %v", resp.Header)
		}
		resp, body := get(t, http.DefaultClient, base+"/cors", "origin", "https://good.example")
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "v1 GET") || resp.Header.Get("access-control-allow-origin") != "https://good.example" ||
			resp.Header.Get("access-control-expose-headers") != "x-backend" {
			t.Errorf("simple CORS request: %d %q %v", resp.StatusCode, body, resp.Header)
		}
		if resp, _ := get(t, http.DefaultClient, base+"/cors", "origin", "https://evil.example"); resp.Header.Get("access-control-allow-origin") != "" {
			t.Errorf("request from another origin got CORS headers: %v", resp.Header)
		}
	})
	t.Run("tcp proxy", func(t *testing.T) {
		waitListening(t, w.tcpAddr)
		c, err := net.Dial("tcp", w.tcpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "ping over tcp\n")
		c.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "ping over tcp\n" {
			t.Fatalf("echo %q %v", b, err)
		}
	})
	t.Run("admin", func(t *testing.T) {
		code, dump := w.proxy.adminGet(t, "/config_dump")
		if code != 200 || !strings.Contains(dump, `"name": "`+w.addr+`"`) || !strings.Contains(dump, "envoy.admin.v3.RoutesConfigDump") {
			t.Errorf("config_dump %d: %.300s", code, dump)
		}
		// Clusters are rendered from the wire (mast-proxy links no
		// generated Cluster type) in Envoy's JSON shape.
		var cd struct {
			Configs []struct {
				Clusters []struct {
					Cluster map[string]any `json:"cluster"`
				} `json:"dynamic_active_clusters"`
				Routes []struct {
					Route map[string]any `json:"route_config"`
				} `json:"dynamic_route_configs"`
			} `json:"configs"`
		}
		json.Unmarshal([]byte(dump), &cd)
		found, route := false, false
		for _, c := range cd.Configs {
			for _, cl := range c.Clusters {
				if cl.Cluster["name"] == "v1" && cl.Cluster["@type"] == "type.googleapis.com/envoy.config.cluster.v3.Cluster" && cl.Cluster["value_base64"] == nil {
					found = true
				}
			}
			// Route configurations too (decoded from the wire since mem-w8).
			for _, r := range c.Routes {
				if r.Route["@type"] == "type.googleapis.com/envoy.config.route.v3.RouteConfiguration" && r.Route["value_base64"] == nil && r.Route["virtualHosts"] != nil {
					route = true
				}
			}
		}
		if !found {
			t.Errorf("config_dump has no rendered cluster v1: %.2000s", dump)
		}
		if !route {
			t.Errorf("config_dump has no rendered route configuration: %.2000s", dump)
		}
		_, prom := w.proxy.adminGet(t, "/stats/prometheus")
		if !strings.Contains(prom, `envoy_cluster_upstream_rq_xx{envoy_cluster_name="v1",envoy_response_code_class="2"}`) {
			t.Errorf("prometheus stats lack v1 2xx: %.500s", prom)
		}
		_, stats := w.proxy.adminGet(t, "/stats")
		if !strings.Contains(stats, "cluster.flaky.upstream_rq_retry: ") || !strings.Contains(stats, "http.downstream_rq_total: ") {
			t.Errorf("stats: %.800s", stats)
		}
		_, cl := w.proxy.adminGet(t, "/clusters")
		if !strings.Contains(cl, "v1::"+w.v1.addr+"::rq_active::0") {
			t.Errorf("clusters: %.500s", cl)
		}
		resp, err := http.Post("http://"+w.proxy.admin+"/logging?level=warn", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		lb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(lb), "mast-proxy: warn") {
			t.Errorf("/logging: %s", lb)
		}
		_, ls := w.proxy.adminGet(t, "/listeners")
		if !strings.Contains(ls, w.addr+"::"+w.addr) {
			t.Errorf("listeners: %s", ls)
		}
	})
	t.Run("NACK keeps last good", func(t *testing.T) {
		res := w.resources(nil)
		bad := &routev3.RouteConfiguration{Name: "main", VirtualHosts: []*routev3.VirtualHost{{Name: "bad", Domains: []string{"*"},
			Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "(("}}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "v2"}}}}}}}}
		res["type.googleapis.com/envoy.config.route.v3.RouteConfiguration"] = []types.Resource{bad}
		w.push(t, res)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		nack := w.xds.WaitRequest(ctx, func(r *discoveryv3.DiscoveryRequest) bool {
			return r.GetTypeUrl() == "type.googleapis.com/envoy.config.route.v3.RouteConfiguration" && r.GetErrorDetail() != nil
		})
		if nack == nil || !strings.Contains(nack.GetErrorDetail().GetMessage(), `route configuration "main": virtual_hosts[0] "bad": routes[0] "": match.safe_regex`) {
			t.Fatalf("NACK = %v", nack.GetErrorDetail())
		}
		resp, body := get(t, noRedirect, base+"/headers", "end-user", "jason")
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "v2") {
			t.Fatalf("after NACK: %d %q (last good routes lost?)", resp.StatusCode, body)
		}
		w.push(t, w.resources(nil))
	})
	t.Run("reconnect after control plane restart", func(t *testing.T) {
		w.xds.Stop()
		// Serving goes on without the control plane.
		if resp, _ := get(t, noRedirect, base+"/x"); resp.StatusCode != 200 {
			t.Fatalf("without control plane: %d", resp.StatusCode)
		}
		srv2 := xdstest.Start(outer, w.xds.Addr, w.xds.Cache)
		w.xds = srv2
		res := w.resources([]*routev3.Route{route("/after-restart", "v2")})
		w.push(t, res)
		eventually(t, "route pushed after restart", func() bool {
			resp, body := get(t, noRedirect, base+"/after-restart")
			return resp.StatusCode == 200 && strings.HasPrefix(body, "v2")
		})
	})
	t.Run("listener kept across updates", func(t *testing.T) {
		c, err := net.Dial("tcp", w.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		send := func() int {
			fmt.Fprintf(c, "GET /keep HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("keep-alive connection broken by update: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		send()
		w.push(t, w.resources([]*routev3.Route{route("/keep", "v2")}))
		eventually(t, "new route on the same connection", func() bool { return send() == 200 && strings.HasPrefix(w.v2.last().URL.Path, "/keep") })
	})
	t.Run("memory", func(t *testing.T) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.proxy.cmd.Process.Pid))
		if err != nil {
			t.Skip("no /proc")
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmRSS:") || strings.HasPrefix(l, "VmHWM:") {
				t.Log(strings.Join(strings.Fields(l), " "))
			}
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", w.proxy.cmd.Process.Pid)); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "Anonymous:") || strings.HasPrefix(l, "Rss:") {
					t.Log("smaps_rollup", strings.Join(strings.Fields(l), " "))
				}
			}
		}
		_, mem := w.proxy.adminGet(t, "/memory")
		if !strings.Contains(mem, `"heap_inuse"`) {
			t.Errorf("/memory: %s", mem)
		}
		t.Log("/memory:", mem)
	})
	t.Run("graceful shutdown on SIGTERM", func(t *testing.T) {
		w.proxy.cmd.Process.Signal(sigterm)
		select {
		case err := <-w.proxy.done:
			if err != nil {
				t.Fatalf("exit: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("proxy did not exit after SIGTERM")
		}
	})
}

var _ = clusterv3.Cluster_EDS

func TestDeltaXDSEndToEnd(t *testing.T) {
	b := startBackend(t, "v1", nil)
	addr := freeAddr(t)
	xds := xdstest.Start(t, "127.0.0.1:0", nil)
	res := func(path string) map[string][]types.Resource {
		return xdstest.Resources(xdstest.HTTPListener("l", addr, "r"),
			xdstest.RouteConfig("r", []string{"*"}, xdstest.RouteTo(path, "c")),
			xdstest.EDSCluster("c"), xdstest.CLA("c", b.addr))
	}
	xds.Set(t, gwNode, "1", res("/one"))
	p := startProxy(t, xds.Addr, gwNode, "--xds-delta")
	p.waitReady(t)
	waitListening(t, addr)
	if resp, body := get(t, http.DefaultClient, "http://"+addr+"/one"); resp.StatusCode != 200 || !strings.HasPrefix(body, "v1") {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	xds.Set(t, gwNode, "2", res("/two"))
	eventually(t, "route update over delta", func() bool {
		resp, _ := get(t, http.DefaultClient, "http://"+addr+"/two")
		return resp.StatusCode == 200
	})
	if resp, _ := get(t, http.DefaultClient, "http://"+addr+"/one"); resp.StatusCode != 404 {
		t.Errorf("old route still served: %d", resp.StatusCode)
	}
}

// startTCPEcho runs a TCP server that echoes until the client half-closes.
func startTCPEcho(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}
