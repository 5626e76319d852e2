package xdsparse

import (
	"slices"
	"testing"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/matcher/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matchv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/xdstest"
)

// TestOutlierErrorMatcher: the :status matches of
// outlier_detection.error_matcher become the cluster's outlier error codes;
// other matchers are refused by name.
func TestOutlierErrorMatcher(t *testing.T) {
	status := func(v string) *matcherv3.MatchPredicate {
		return &matcherv3.MatchPredicate{Rule: &matcherv3.MatchPredicate_HttpResponseHeadersMatch{HttpResponseHeadersMatch: &matcherv3.HttpHeadersMatch{
			Headers: []*routev3.HeaderMatcher{{Name: ":status", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
				StringMatch: &matchv3.StringMatcher{MatchPattern: &matchv3.StringMatcher_Exact{Exact: v}}}}}}}}
	}
	or := func(ps ...*matcherv3.MatchPredicate) *matcherv3.MatchPredicate {
		return &matcherv3.MatchPredicate{Rule: &matcherv3.MatchPredicate_OrMatch{OrMatch: &matcherv3.MatchPredicate_MatchSet{Rules: ps}}}
	}
	prefix := &matcherv3.MatchPredicate{Rule: &matcherv3.MatchPredicate_HttpResponseHeadersMatch{HttpResponseHeadersMatch: &matcherv3.HttpHeadersMatch{
		Headers: []*routev3.HeaderMatcher{{Name: ":status", HeaderMatchSpecifier: &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: "4"}}}}}}
	for _, tc := range []struct {
		name string
		m    *matcherv3.MatchPredicate
		want []int
		err  string
	}{
		{"one", status("404"), []int{404}, ""},
		{"or", or(status("404"), status("503")), []int{404, 503}, ""},
		{"not a code", status("4xx"), nil, `:status "4xx": want a status code 100-599`},
		{"prefix", prefix, nil, ":status: only an exact match is supported"},
		{"any", &matcherv3.MatchPredicate{Rule: &matcherv3.MatchPredicate_AnyMatch{AnyMatch: true}}, nil, "only http_response_headers_match rules"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := xdstest.StaticCluster("c", "127.0.0.1:1")
			a, err := anypb.New(&httpv3.HttpProtocolOptions{OutlierDetection: &httpv3.HttpProtocolOptions_OutlierDetection{ErrorMatcher: tc.m},
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{}}}})
			if err != nil {
				t.Fatal(err)
			}
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsName: a}
			got, err := ParseCluster(c)
			if tc.err != "" {
				checkErr(t, err, "outlier_detection.error_matcher: "+tc.err)
				return
			}
			if err != nil || !slices.Equal(got.OutlierErrorCodes, tc.want) {
				t.Fatalf("codes %v (%v), want %v", got.OutlierErrorCodes, err, tc.want)
			}
		})
	}
}
