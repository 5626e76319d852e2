package xdsparse

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/headers"
)

func act(cluster string) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}}
}

func exactHeader(name, v string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
		StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}}}
}

// bookinfoTable is a route table shaped like the ones Istio generates for
// Bookinfo's virtual services.
func bookinfoTable(t testing.TB) *RouteTable {
	rc := &routev3.RouteConfiguration{Name: "http_proxy", VirtualHosts: []*routev3.VirtualHost{
		{Name: "reviews", Domains: []string{"reviews.default.svc.cluster.local:9080", "reviews:9080", "reviews.default:9080"}, Routes: []*routev3.Route{
			{Name: "jason", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				Headers: []*routev3.HeaderMatcher{exactHeader("end-user", "jason")}}, Action: act("reviews-v2")},
			{Name: "sep", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}, Action: act("api")},
			{Name: "regex", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/reviews/[0-9]+"}}}, Action: act("regex")},
			{Name: "ci", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/Exact"}, CaseSensitive: wrapperspb.Bool(false)}, Action: act("ci")},
			{Name: "query", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/q"},
				QueryParameters: []*routev3.QueryParameterMatcher{{Name: "v", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{
					StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "2"}}}}}}, Action: act("query")},
			{Name: "not-test", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/inv"},
				Headers: []*routev3.HeaderMatcher{{Name: "x-test", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}}, Action: act("no-x-test")},
			{Name: "method", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/m"},
				Headers: []*routev3.HeaderMatcher{exactHeader(":method", "POST")}}, Action: act("post")},
			{Name: "suffix", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/s"},
				Headers: []*routev3.HeaderMatcher{{Name: "user-agent", HeaderMatchSpecifier: &routev3.HeaderMatcher_SuffixMatch{SuffixMatch: "bot"}}}}, Action: act("bot")},
			{Name: "default", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: act("reviews-v1")},
		}},
		{Name: "wild-suffix", Domains: []string{"*.example.com"}, Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: act("suffix")}}},
		{Name: "wild-longer", Domains: []string{"*.api.example.com"}, Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: act("longer")}}},
		{Name: "wild-prefix", Domains: []string{"ratings.*"}, Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: act("prefix")}}},
		{Name: "any", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/only"}}, Action: act("any")}}},
	}}
	tab, err := ParseRouteConfiguration(rc)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestRouteMatch(t *testing.T) {
	tab := bookinfoTable(t)
	for _, tc := range []struct {
		name      string
		authority string
		method    string
		path      string
		hdr       headers.List
		want      string // cluster, "" for no route
	}{
		{"default", "reviews:9080", "GET", "/reviews/x", nil, "reviews-v1"},
		{"authority case", "REVIEWS:9080", "GET", "/", nil, "reviews-v1"},
		{"fqdn", "reviews.default.svc.cluster.local:9080", "GET", "/", nil, "reviews-v1"},
		{"authority case past a word", "reviews.default.svc.cluster.locaL:9080", "GET", "/", nil, "reviews-v1"},
		{"authority case in the tail", "reviews.default.svc.cluster.local:908O", "GET", "/only", nil, "any"},
		{"wildcard suffix case", "x.API.example.com", "GET", "/", nil, "longer"},
		{"wildcard prefix case", "RATINGS.default:9080", "GET", "/", nil, "prefix"},
		{"other port no route", "reviews:9081", "GET", "/only", nil, "any"},
		{"header exact", "reviews:9080", "GET", "/", headers.List{{Name: "end-user", Value: "jason"}}, "reviews-v2"},
		{"header exact mismatch", "reviews:9080", "GET", "/", headers.List{{Name: "end-user", Value: "Jason"}}, "reviews-v1"},
		{"path separated exact", "reviews:9080", "GET", "/api", nil, "api"},
		{"path separated child", "reviews:9080", "GET", "/api/v1", nil, "api"},
		{"path separated not prefix of segment", "reviews:9080", "GET", "/apis", nil, "reviews-v1"},
		{"regex full", "reviews:9080", "GET", "/reviews/123", nil, "regex"},
		{"regex anchored", "reviews:9080", "GET", "/reviews/123/x", nil, "reviews-v1"},
		{"regex ignores query", "reviews:9080", "GET", "/reviews/1?a=b", nil, "regex"},
		{"case insensitive", "reviews:9080", "GET", "/eXACT", nil, "ci"},
		{"query match", "reviews:9080", "GET", "/q?a=1&v=22", nil, "query"},
		{"query mismatch", "reviews:9080", "GET", "/q?v=3", nil, "reviews-v1"},
		{"query missing", "reviews:9080", "GET", "/q", nil, "reviews-v1"},
		{"invert present absent", "reviews:9080", "GET", "/inv", nil, "no-x-test"},
		{"invert present present", "reviews:9080", "GET", "/inv", headers.List{{Name: "x-test", Value: "1"}}, "reviews-v1"},
		{"method", "reviews:9080", "POST", "/m", nil, "post"},
		{"suffix", "reviews:9080", "GET", "/s", headers.List{{Name: "user-agent", Value: "googlebot"}}, "bot"},
		{"wildcard suffix", "a.example.com", "GET", "/", nil, "suffix"},
		{"longest suffix wins", "x.api.example.com", "GET", "/", nil, "longer"},
		{"wildcard needs a label", "example.com", "GET", "/only", nil, "any"},
		{"wildcard prefix", "ratings.default:9080", "GET", "/", nil, "prefix"},
		{"catch-all no route", "unknown", "GET", "/nope", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tab.Match(&Input{Authority: tc.authority, Method: tc.method, Path: tc.path, Headers: tc.hdr})
			got := ""
			if r != nil {
				got = r.Action.Cluster
			}
			if got != tc.want {
				t.Errorf("cluster %q, want %q", got, tc.want)
			}
		})
	}
}

func BenchmarkRouteMatch(b *testing.B) {
	tab := bookinfoTable(b)
	in := &Input{Authority: "Reviews:9080", Method: "GET", Path: "/reviews/x?y=1",
		Headers: headers.List{{Name: "user-agent", Value: "curl"}, {Name: "accept", Value: "*/*"}, {Name: "x-request-id", Value: "abc"}}}
	wild := &Input{Authority: "x.api.example.com", Method: "GET", Path: "/", Headers: in.Headers}
	b.ReportAllocs()
	for b.Loop() {
		if r := tab.Match(in); r == nil || r.Action.Cluster != "reviews-v1" {
			b.Fatal("wrong route")
		}
		if r := tab.Match(wild); r == nil {
			b.Fatal("wrong route")
		}
	}
}

func TestHasUpper(t *testing.T) {
	naive := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if 'A' <= s[i] && s[i] <= 'Z' {
				return true
			}
		}
		return false
	}
	// Every byte value at every position of strings of 1 to 19 bytes, the
	// others lower-case letters or a byte next to the range.
	for _, fill := range []byte{'a', 'z', '@', '[', 0xc1, 0xda, 0x00, 0xff} {
		for n := 1; n < 20; n++ {
			for pos := 0; pos < n; pos++ {
				b := make([]byte, n)
				for i := range b {
					b[i] = fill
				}
				for c := 0; c < 256; c++ {
					b[pos] = byte(c)
					if got, want := hasUpper(string(b)), naive(string(b)); got != want {
						t.Fatalf("hasUpper(%q) = %v, want %v", b, got, want)
					}
				}
			}
		}
	}
	if hasUpper("") {
		t.Error(`hasUpper("") = true`)
	}
}

func TestRouteMatchAllocs(t *testing.T) {
	tab := bookinfoTable(t)
	in := &Input{Authority: "Reviews:9080", Method: "GET", Path: "/reviews/123?y=1",
		Headers: headers.List{{Name: "end-user", Value: "x"}}}
	if n := testing.AllocsPerRun(100, func() { tab.Match(in) }); n != 0 {
		t.Errorf("route matching allocates %v times per request", n)
	}
}

// TestIgnorePortInHostMatching: a route configuration with
// ignore_port_in_host_matching is accepted and selects virtual hosts by the
// authority without its port, as Envoy's: any port, IPv6 literals cut after
// the ']'; without the field the port stays part of the authority. An
// unsupported RouteConfiguration field is still refused.
func TestIgnorePortInHostMatching(t *testing.T) {
	vh := func(name string, domains ...string) *routev3.VirtualHost {
		return &routev3.VirtualHost{Name: name, Domains: domains, Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name}}},
		}}}
	}
	rc := func(ignore bool) *routev3.RouteConfiguration {
		return &routev3.RouteConfiguration{Name: "8080", IgnorePortInHostMatching: ignore, VirtualHosts: []*routev3.VirtualHost{
			vh("svc", "svc.ns.svc.cluster.local", "svc.ns", "10.0.0.6", "[fd00::6]"),
			vh("ported", "other:8080"),
			vh("any", "*"),
		}}
	}
	for _, c := range []struct {
		authority     string
		ignored, kept string // the cluster with and without the field
	}{
		{"svc.ns", "svc", "svc"},
		{"svc.ns:8080", "svc", "any"},
		{"svc.ns:9090", "svc", "any"}, // another port: Envoy and Istio ignore it too
		{"SVC.NS:8080", "svc", "any"},
		{"svc.ns.svc.cluster.local:80", "svc", "any"},
		{"10.0.0.6:8080", "svc", "any"},
		{"[fd00::6]:8080", "svc", "any"},
		{"[fd00::6]", "svc", "svc"},
		{"svc.ns:", "svc", "any"},
		{"other:8080", "any", "ported"}, // a domain with a port no longer matches
		{"other", "any", "any"},
		{"unknown:8080", "any", "any"},
	} {
		for _, ignore := range []bool{true, false} {
			tab, err := ParseRouteConfiguration(rc(ignore))
			if err != nil {
				t.Fatal(err)
			}
			if tab.IgnorePort != ignore {
				t.Fatalf("IgnorePort %v, want %v", tab.IgnorePort, ignore)
			}
			want := c.kept
			if ignore {
				want = c.ignored
			}
			got := ""
			if r := tab.Match(&Input{Authority: c.authority, Path: "/"}); r != nil {
				got = r.Action.Cluster
			}
			if got != want {
				t.Errorf("ignore_port %v, %q: cluster %q, want %q", ignore, c.authority, got, want)
			}
		}
	}
	bad := rc(true)
	bad.IgnorePathParametersInPathMatching = true
	if _, err := ParseRouteConfiguration(bad); err == nil || !strings.Contains(err.Error(), "ignore_path_parameters_in_path_matching") {
		t.Errorf("ignore_path_parameters_in_path_matching: err %v, want it refused", err)
	}
	tab, _ := ParseRouteConfiguration(rc(true))
	if n := testing.AllocsPerRun(100, func() { tab.Match(&Input{Authority: "SVC.ns:8080", Path: "/"}) }); n != 0 {
		t.Errorf("%v allocations per match", n)
	}
}

// TestOnDemandVirtualHostsKeptByName: two on-demand virtual hosts with one
// name (mastd answers "8080/svc:8080" and "8080/svc" with virtual host
// "8080/svc" when the port is ignored) are one virtual host, the later, as
// in Envoy's VHDS; without that their shared domain would refuse one.
func TestOnDemandVirtualHostsKeptByName(t *testing.T) {
	stub, err := ParseRouteConfiguration(&routev3.RouteConfiguration{Name: "8080", IgnorePortInHostMatching: true,
		Vhds: &routev3.Vhds{ConfigSource: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}})
	if err != nil {
		t.Fatal(err)
	}
	enc := func(name, domain, cluster string) []byte {
		b, err := proto.Marshal(&routev3.VirtualHost{Name: name, Domains: []string{domain}, Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: act(cluster)}}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tab, err := stub.WithOnDemand([][]byte{enc("8080/svc", "svc", "old"), enc("8080/svc", "svc", "new"), enc("8080/other", "other", "other")})
	if err != nil {
		t.Fatal(err)
	}
	if tab.OnDemand != 2 || !tab.IgnorePort {
		t.Errorf("OnDemand %d, IgnorePort %v; want 2, true", tab.OnDemand, tab.IgnorePort)
	}
	if r := tab.Match(&Input{Authority: "svc:8080", Path: "/"}); r == nil || r.Action.Cluster != "new" {
		t.Errorf("svc:8080 matched %+v, want cluster new", r)
	}
	// Different names with one domain are still refused, as in Envoy.
	if _, err := stub.WithOnDemand([][]byte{enc("8080/svc", "svc", "a"), enc("8080/svc:8080", "svc", "b")}); err == nil {
		t.Error("two virtual hosts with domain svc: no error")
	}
}
