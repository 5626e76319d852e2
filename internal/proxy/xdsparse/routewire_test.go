package xdsparse

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	prevprio "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/generate"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/proxy/filter/builtin"
	"github.com/mast-mesh/mast/internal/registry/serviceentry"
	bookinfoconfig "github.com/mast-mesh/mast/samples/bookinfo/config"
)

// ParseRouteConfiguration compiles a generated RouteConfiguration through
// the wire decoder, as the proxy receives it: the tests build route
// configurations with go-control-plane's types, mast-proxy decodes bytes.
func ParseRouteConfiguration(rc *routev3.RouteConfiguration) (*RouteTable, error) {
	b, err := proto.Marshal(rc)
	if err != nil {
		return nil, err
	}
	_, t, err := DecodeRouteConfiguration(b)
	return t, err
}

// generatedRouteBytes is the old RDS path end to end: proto.Unmarshal into
// go-control-plane's RouteConfiguration, then generatedRouteConfiguration.
func generatedRouteBytes(b []byte) (string, *RouteTable, error) {
	var m routev3.RouteConfiguration
	if err := proto.Unmarshal(b, &m); err != nil {
		return "", nil, fmt.Errorf("route configuration: decode: %w", err)
	}
	t, err := generatedRouteConfiguration(&m)
	return m.GetName(), t, err
}

// compareRoutes decodes b both ways and reports a difference: the same
// name, the same error text (after protobuf's own "proto:" wording, which
// the wire decoder does not copy) and deeply equal tables.
func compareRoutes(t *testing.T, b []byte) {
	t.Helper()
	gName, gt, gErr := generatedRouteBytes(b)
	wName, wt, wErr := DecodeRouteConfiguration(b)
	if gName != wName || !sameError(gErr, wErr) {
		t.Fatalf("generated: %q, %v\nwire:      %q, %v\nbytes %x", gName, gErr, wName, wErr, b)
	}
	if !reflect.DeepEqual(gt, wt) {
		t.Fatalf("generated: %s\nwire:      %s\nbytes %x", dumpTable(gt), dumpTable(wt), b)
	}
}

// sameError: equal texts, or the same text up to protobuf's "proto:"
// wording. Two refused typed_per_filter_config entries are reported in the
// filter registry's map order, which varies: the first such entry in
// either text is enough.
func sameError(g, w error) bool {
	gs, ws := fmt.Sprint(g), fmt.Sprint(w)
	if gs == ws {
		return true
	}
	if g == nil || w == nil {
		return false
	}
	if i := strings.Index(gs, "proto:"); i >= 0 {
		return strings.HasPrefix(ws, gs[:i])
	}
	if i := strings.Index(gs, "typed_per_filter_config["); i >= 0 {
		return strings.HasPrefix(ws, gs[:i])
	}
	return false
}

// dumpTable prints a table's virtual hosts and routes for a failure
// message (the route's back pointer to its virtual host left out).
func dumpTable(t *RouteTable) string {
	if t == nil {
		return "<nil>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table %q vhds=%v ignore_port=%v headers=%+v filters=%v\n", t.Name, t.VHDS, t.IgnorePort, t.Headers, t.filters)
	for _, vh := range t.VirtualHosts {
		fmt.Fprintf(&b, "  vhost %q %v tls=%v retry=%+v headers=%+v\n", vh.Name, vh.Domains, vh.RequireTLS, vh.Retry, vh.Headers)
		for _, r := range vh.Routes {
			c := *r
			c.VHost = nil
			fmt.Fprintf(&b, "    route %+v action=%+v redirect=%+v direct=%+v\n", c, r.Action, r.Redirect, r.Direct)
		}
	}
	return b.String()
}

// randomRouteConfiguration builds a route configuration using most of
// what the parser reads, with now and then a field it refuses or a value
// it rejects.
func randomRouteConfiguration(r *rand.Rand) *routev3.RouteConfiguration {
	p := func(pct int) bool { return r.IntN(100) < pct }
	// Half the configurations are clean: only valid choices (the first
	// two of each pick), so that enough of them are accepted.
	clean := p(50)
	bad := func(pct int) bool { return !clean && p(pct) }
	pick := func(s ...string) string {
		if clean {
			return s[r.IntN(min(len(s), 2))]
		}
		return s[r.IntN(len(s))]
	}
	n := func(k, cleanK int) int {
		if clean {
			return r.IntN(cleanK)
		}
		return r.IntN(k)
	}
	dur := func() *durationpb.Duration {
		return durationpb.New(time.Duration(r.IntN(5000)-100) * time.Millisecond)
	}
	hvo := func() []*corev3.HeaderValueOption {
		var out []*corev3.HeaderValueOption
		for range r.IntN(3) * r.IntN(2) {
			o := &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: pick("x-a", "X-B", ":authority", "x-c", "x-d", "x-e", "x-f", ":path", "bad key", ""),
				Value: pick("v", "", "%DOWNSTREAM_REMOTE_ADDRESS%", "%REQ(x-y)%", "w", "x", "y", "%BOGUS%", "a\nb", "100%%")}}
			if p(20) {
				o.Header.RawValue = []byte(pick("raw", ""))
			}
			if p(40) {
				o.Append = wrapperspb.Bool(p(50))
			}
			o.AppendAction = corev3.HeaderValueOption_HeaderAppendAction(r.IntN(5))
			out = append(out, o)
		}
		return out
	}
	names := func() []string {
		var out []string
		for range r.IntN(3) {
			out = append(out, pick("x-rm", "X-Up", "te"))
		}
		return out
	}
	sm := func() *matcherv3.StringMatcher {
		s := &matcherv3.StringMatcher{IgnoreCase: p(30)}
		switch r.IntN(7) {
		case 0:
			s.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: pick("a", "B")}
		case 1:
			s.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: "/p"}
		case 2:
			s.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: ".json"}
		case 3:
			s.MatchPattern = &matcherv3.StringMatcher_Contains{Contains: "mid"}
		case 4:
			s.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: pick("a.*", "[0-9]+", "(")}}
		case 5:
			if bad(30) {
				s.MatchPattern = &matcherv3.StringMatcher_Custom{}
			} else if clean {
				s.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: "c"}
			}
		}
		return s
	}
	retry := func() *routev3.RetryPolicy {
		rp := &routev3.RetryPolicy{RetryOn: pick("5xx", "gateway-error,connect-failure", "reset, retriable-status-codes", "unavailable,cancelled", "bogus", "")}
		if p(50) {
			rp.NumRetries = wrapperspb.UInt32(uint32(r.IntN(5)))
		}
		if p(40) {
			rp.PerTryTimeout = dur()
		}
		if p(30) {
			rp.RetriableStatusCodes = []uint32{503, uint32(r.IntN(600))}
		}
		if p(30) {
			rp.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{}
			if p(70) {
				rp.RetryBackOff.BaseInterval = dur()
			}
			if p(50) {
				rp.RetryBackOff.MaxInterval = dur()
			}
		}
		if p(30) {
			rp.RetryHostPredicate = []*routev3.RetryPolicy_RetryHostPredicate{{Name: pick("envoy.retry_host_predicates.previous_hosts",
				"envoy.retry_host_predicates.omit_canary_hosts", "other")}}
		}
		if p(20) {
			rp.HostSelectionRetryMaxAttempts = int64(r.IntN(5))
		}
		if p(15) {
			rp.RetryPriority = &routev3.RetryPolicy_RetryPriority{Name: pick("envoy.retry_priorities.previous_priorities", "x")}
			switch n(4, 1) {
			case 0:
				a, _ := anypb.New(&prevprio.PreviousPrioritiesConfig{UpdateFrequency: int32(n(4, 2) + 1 - 2*b2i(!clean))})
				rp.RetryPriority.ConfigType = &routev3.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: a}
			case 1:
				a, _ := anypb.New(wrapperspb.String("x"))
				rp.RetryPriority.ConfigType = &routev3.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: a}
			case 2:
				rp.RetryPriority.ConfigType = &routev3.RetryPolicy_RetryPriority_TypedConfig{TypedConfig: &anypb.Any{
					TypeUrl: "type.googleapis.com/" + previousPrioritiesName, Value: []byte{0xff}}}
			}
		}
		if bad(5) {
			rp.RetriableHeaders = []*routev3.HeaderMatcher{{Name: "x"}}
		}
		return rp
	}
	action := func() *routev3.RouteAction {
		a := &routev3.RouteAction{}
		switch r.IntN(10) {
		case 0:
			ws := &routev3.WeightedCluster{}
			for range r.IntN(3) + 1 {
				ws.Clusters = append(ws.Clusters, &routev3.WeightedCluster_ClusterWeight{Name: pick("a", "b", ""), Weight: wrapperspb.UInt32(uint32(r.IntN(60))),
					RequestHeadersToAdd: hvo(), ResponseHeadersToRemove: names()})
			}
			a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: ws}
		case 1:
			if bad(50) {
				a.ClusterSpecifier = &routev3.RouteAction_ClusterHeader{ClusterHeader: "x-c"}
			} else if clean {
				a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "d"}
			}
		default:
			a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: pick("outbound|9080||reviews", "c", "")}
		}
		if p(20) {
			a.PrefixRewrite = "/new"
		}
		if p(15) {
			a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: pick("^/v1/(.*)", "/(a)", "(")}, Substitution: pick(`/\1`, "$x")}
		}
		switch r.IntN(4) {
		case 0:
			a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "h"}
		case 1:
			a.HostRewriteSpecifier = &routev3.RouteAction_AutoHostRewrite{AutoHostRewrite: wrapperspb.Bool(p(50))}
		}
		if p(40) {
			a.Timeout = dur()
		}
		if p(20) {
			a.IdleTimeout = dur()
		}
		if p(15) {
			a.MaxGrpcTimeout = dur()
		}
		if p(20) {
			a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{}
			if p(60) {
				a.MaxStreamDuration.MaxStreamDuration = dur()
			}
			if p(50) {
				a.MaxStreamDuration.GrpcTimeoutHeaderMax = dur()
			}
		}
		for range r.IntN(3) {
			u := &routev3.RouteAction_UpgradeConfig{UpgradeType: pick("websocket", "CONNECT", "")}
			if p(40) {
				u.Enabled = wrapperspb.Bool(p(50))
			}
			if p(30) && (!clean || u.UpgradeType == "CONNECT") {
				u.ConnectConfig = &routev3.RouteAction_UpgradeConfig_ConnectConfig{}
				if bad(20) {
					u.ConnectConfig.ProxyProtocolConfig = &corev3.ProxyProtocolConfig{}
				}
			}
			a.UpgradeConfigs = append(a.UpgradeConfigs, u)
		}
		if p(40) {
			a.RetryPolicy = retry()
		}
		if p(15) {
			a.HedgePolicy = &routev3.HedgePolicy{HedgeOnPerTryTimeout: p(50)}
			if bad(20) {
				a.HedgePolicy.InitialRequests = wrapperspb.UInt32(2)
			}
		}
		for range r.IntN(2) {
			m := &routev3.RouteAction_RequestMirrorPolicy{Cluster: pick("mirror", "")}
			if p(50) {
				m.RuntimeFraction = &corev3.RuntimeFractionalPercent{RuntimeKey: "k"}
				if p(80) {
					m.RuntimeFraction.DefaultValue = &typev3.FractionalPercent{Numerator: uint32(r.IntN(2_000_000)), Denominator: typev3.FractionalPercent_DenominatorType(n(4, 3))}
				}
			}
			if p(40) {
				m.TraceSampled = wrapperspb.Bool(p(50))
			}
			a.RequestMirrorPolicies = append(a.RequestMirrorPolicies, m)
		}
		for range r.IntN(3) {
			h := &routev3.RouteAction_HashPolicy{Terminal: p(30)}
			switch n(6, 4) {
			case 0:
				h.PolicySpecifier = &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "X-User"}}
			case 1:
				c := &routev3.RouteAction_HashPolicy_Cookie{Name: pick("session", "s2", "bad;name", ""), Path: pick("/", "/p", "a;b")}
				if p(50) {
					c.Ttl = dur()
				}
				if p(30) {
					c.Attributes = []*routev3.RouteAction_HashPolicy_CookieAttribute{{Name: pick("Secure", "HttpOnly", "a=b"), Value: pick("", "Lax")}}
				}
				h.PolicySpecifier = &routev3.RouteAction_HashPolicy_Cookie_{Cookie: c}
			case 2:
				h.PolicySpecifier = &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: p(50)}}
			case 3:
				h.PolicySpecifier = &routev3.RouteAction_HashPolicy_QueryParameter_{QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: "q"}}
			case 4:
				if bad(30) {
					h.PolicySpecifier = &routev3.RouteAction_HashPolicy_FilterState_{FilterState: &routev3.RouteAction_HashPolicy_FilterState{Key: "k"}}
				}
			}
			a.HashPolicy = append(a.HashPolicy, h)
		}
		if bad(3) {
			a.Priority = corev3.RoutingPriority_HIGH
		}
		return a
	}
	route := func() *routev3.Route {
		rt := &routev3.Route{Name: pick("default", "r1", ""), RequestHeadersToAdd: hvo(), ResponseHeadersToAdd: hvo(),
			RequestHeadersToRemove: names(), ResponseHeadersToRemove: names()}
		if clean || p(95) {
			m := &routev3.RouteMatch{}
			switch r.IntN(7) {
			case 0:
				m.PathSpecifier = &routev3.RouteMatch_Path{Path: "/Exact"}
			case 1:
				m.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: pick("/a/[0-9]+", "/b.*", "(")}}
			case 2:
				m.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: pick("/api", "/b", "/api/", "/a?b")}
			case 3:
				m.PathSpecifier = &routev3.RouteMatch_ConnectMatcher_{ConnectMatcher: &routev3.RouteMatch_ConnectMatcher{}}
			case 4:
				if clean || p(70) {
					m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
				}
			default:
				m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: pick("/", "/Reviews")}
			}
			if p(30) {
				m.CaseSensitive = wrapperspb.Bool(p(50))
			}
			if p(10) {
				m.Grpc = &routev3.RouteMatch_GrpcRouteMatchOptions{}
			}
			if bad(3) {
				m.RuntimeFraction = &corev3.RuntimeFractionalPercent{}
			}
			for range r.IntN(3) {
				h := &routev3.HeaderMatcher{Name: pick("end-user", ":authority", "X-Ver", ""), InvertMatch: p(20), TreatMissingHeaderAsEmpty: p(15)}
				switch r.IntN(9) {
				case 0:
					h.HeaderMatchSpecifier = &routev3.HeaderMatcher_ExactMatch{ExactMatch: "jason"}
				case 1:
					h.HeaderMatchSpecifier = &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: "j"}
				case 2:
					h.HeaderMatchSpecifier = &routev3.HeaderMatcher_SuffixMatch{SuffixMatch: "n"}
				case 3:
					h.HeaderMatchSpecifier = &routev3.HeaderMatcher_ContainsMatch{ContainsMatch: "as"}
				case 4:
					h.HeaderMatchSpecifier = &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: pick("j.*", "k+", "(")}}
				case 5:
					h.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: p(50)}
				case 6:
					h.HeaderMatchSpecifier = &routev3.HeaderMatcher_RangeMatch{RangeMatch: &typev3.Int64Range{Start: int64(r.IntN(10)) - 5, End: int64(r.IntN(100))}}
				case 7:
					h.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: sm()}
				}
				m.Headers = append(m.Headers, h)
			}
			for range r.IntN(2) {
				q := &routev3.QueryParameterMatcher{Name: pick("a", "")}
				switch r.IntN(3) {
				case 0:
					q.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm()}
				case 1:
					q.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: p(50)}
				}
				m.QueryParameters = append(m.QueryParameters, q)
			}
			rt.Match = m
		}
		switch r.IntN(10) {
		case 0:
			rd := &routev3.RedirectAction{HostRedirect: pick("", "h"), PortRedirect: uint32(r.IntN(3)), StripQuery: p(30),
				ResponseCode: routev3.RedirectAction_RedirectResponseCode(n(6, 5))}
			switch r.IntN(3) {
			case 0:
				rd.SchemeRewriteSpecifier = &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: p(50)}
			case 1:
				rd.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "http"}
			}
			switch r.IntN(3) {
			case 0:
				rd.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: "/p"}
			case 1:
				rd.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/x"}
			}
			rt.Action = &routev3.Route_Redirect{Redirect: rd}
		case 1:
			d := &routev3.DirectResponseAction{Status: uint32(pick3(r, clean, 200, 503, 99, 600))}
			switch n(5, 2) {
			case 0:
				d.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "body"}}
			case 1:
				d.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte("b")}}
			case 2:
				d.Body = &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/f"}}
			case 3:
				d.Body = &corev3.DataSource{}
			}
			rt.Action = &routev3.Route_DirectResponse{DirectResponse: d}
		case 2:
			if clean || p(50) {
				rt.Action = &routev3.Route_NonForwardingAction{NonForwardingAction: &routev3.NonForwardingAction{}}
			}
		default:
			rt.Action = &routev3.Route_Route{Route: action()}
		}
		if p(20) {
			rt.Decorator = &routev3.Decorator{Operation: "op"}
		}
		if p(15) {
			rt.StatPrefix = "sp"
		}
		if p(10) {
			rt.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": {}}}
		}
		if p(10) {
			rt.TypedPerFilterConfig = perFilter(r, clean)
		}
		if bad(3) {
			rt.Tracing = &routev3.Tracing{}
		}
		return rt
	}
	rc := &routev3.RouteConfiguration{Name: pick("80", "outbound|9080||reviews", ""), RequestHeadersToAdd: hvo(), ResponseHeadersToRemove: names()}
	if p(20) {
		rc.ValidateClusters = wrapperspb.Bool(false)
	}
	if p(10) {
		rc.Vhds = &routev3.Vhds{ConfigSource: &corev3.ConfigSource{}}
		if clean || p(70) {
			rc.Vhds.ConfigSource.ConfigSourceSpecifier = &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}
		}
	}
	if p(10) {
		rc.TypedPerFilterConfig = perFilter(r, clean)
	}
	if p(20) {
		rc.IgnorePortInHostMatching = true
	}
	if bad(3) {
		rc.InternalOnlyHeaders = []string{"x"}
	}
	if bad(3) {
		rc.IgnorePathParametersInPathMatching = true
	}
	for i := range r.IntN(4) {
		vh := &routev3.VirtualHost{Name: fmt.Sprintf("vh%d", i), RequestHeadersToAdd: hvo(), ResponseHeadersToAdd: hvo(), RequestHeadersToRemove: names()}
		for range r.IntN(3) + 1 {
			if clean {
				vh.Domains = append(vh.Domains, fmt.Sprintf("%s%d%s", pick("*.e", "api", "h"), i, pick(".com", "*")))
				continue
			}
			vh.Domains = append(vh.Domains, pick("*", "reviews", fmt.Sprintf("reviews%d:9080", i), "*.example.com", "api.*", "a*b", "", fmt.Sprintf("h%d", r.IntN(100))))
		}
		if bad(5) {
			vh.Domains = nil
		}
		vh.RequireTls = routev3.VirtualHost_TlsRequirementType(n(4, 3) * r.IntN(2))
		if p(25) {
			vh.RetryPolicy = retry()
		}
		if p(10) {
			vh.TypedPerFilterConfig = perFilter(r, clean)
		}
		if bad(3) {
			vh.Cors = &routev3.CorsPolicy{}
		}
		for range r.IntN(4) {
			vh.Routes = append(vh.Routes, route())
		}
		rc.VirtualHosts = append(rc.VirtualHosts, vh)
	}
	return rc
}

// pick3 picks one of v; a clean one of the first two.
func pick3(r *rand.Rand, clean bool, v ...int) int {
	if clean {
		return v[r.IntN(2)]
	}
	return v[r.IntN(len(v))]
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// perFilter is a typed_per_filter_config: the fault filter's (which the
// proxy parses), or an unknown type.
func perFilter(r *rand.Rand, clean bool) map[string]*anypb.Any {
	m := map[string]*anypb.Any{}
	switch r.IntN(4) {
	case 0:
		if clean {
			break
		}
		m["x"] = &anypb.Any{TypeUrl: "type.googleapis.com/unknown.Type"}
	default:
		a, _ := anypb.New(&httpfaultv3.HTTPFault{})
		m["envoy.filters.http.fault"] = a
	}
	return m
}

func TestDecodeRouteConfigurationMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 5))
	accepted := 0
	seen := map[string]int{}
	for range 1200 {
		rc := randomRouteConfiguration(r)
		b, err := proto.Marshal(rc)
		if err != nil {
			t.Fatal(err)
		}
		compareRoutes(t, b)
		if _, tab, _ := DecodeRouteConfiguration(b); tab != nil {
			accepted++
			for _, vh := range tab.VirtualHosts {
				for _, rt := range vh.Routes {
					for name, ok := range map[string]bool{"weighted": rt.Action != nil && len(rt.Action.Weighted) > 0, "retry": rt.Action != nil && rt.Action.Retry != nil,
						"hash": rt.Action != nil && len(rt.Action.Hash) > 0, "mirror": rt.Action != nil && len(rt.Action.Mirrors) > 0,
						"redirect": rt.Redirect != nil, "direct": rt.Direct != nil, "headers": len(rt.Headers) > 0, "query": len(rt.Query) > 0,
						"header ops": !rt.HeaderOps.Empty(), "per filter": len(rt.PerFilter) > 0, "regex": rt.Regex != nil,
						"previous priorities": rt.Action != nil && rt.Action.Retry != nil && rt.Action.Retry.PriorityUpdateFrequency > 0} {
						if ok {
							seen[name]++
						}
					}
				}
			}
		}
		// Two encodings concatenated are one message, merged.
		b2, _ := proto.Marshal(randomRouteConfiguration(r))
		compareRoutes(t, append(b[:len(b):len(b)], b2...))
	}
	if accepted < 150 {
		t.Fatalf("only %d of 1,200 random route configurations accepted", accepted)
	}
	for _, name := range []string{"weighted", "retry", "hash", "mirror", "redirect", "direct", "headers", "query", "header ops", "per filter", "regex", "previous priorities"} {
		if seen[name] < 3 {
			t.Errorf("%s: in %d accepted routes, want at least 3", name, seen[name])
		}
	}
	t.Logf("accepted %d of 1,200: %v", accepted, seen)
}

// TestDecodeRouteConfigurationWire covers what go-control-plane never
// encodes.
func TestDecodeRouteConfigurationWire(t *testing.T) {
	base, _ := proto.Marshal(xdstestRouteConfig())
	bytesField := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	vh := func(b ...[]byte) []byte { return bytesField(rcVirtualHosts, cat(b...)) }
	cases := map[string][]byte{
		"plain":                      base,
		"name as varint (unknown)":   cat(base, protowire.AppendVarint(protowire.AppendTag(nil, rcName, protowire.VarintType), 1)),
		"invalid utf-8 in a domain":  cat(base, vh(bytesField(vhName, []byte("v")), bytesField(vhDomains, []byte{0xff}))),
		"invalid utf-8 deep":         cat(base, vh(bytesField(vhName, []byte("v")), bytesField(vhDomains, []byte("d")), bytesField(vhRoutes, bytesField(rtMatch, bytesField(rmHeaders, bytesField(hmName, []byte{0xc3})))))),
		"truncated":                  base[:len(base)-1],
		"path then prefix":           cat(base, vh(bytesField(vhName, []byte("v")), bytesField(vhDomains, []byte("d")), bytesField(vhRoutes, cat(bytesField(rtMatch, cat(bytesField(rmPath, []byte("/a")), bytesField(rmPrefix, []byte("/b")))), bytesField(rtRoute, bytesField(raCluster, []byte("c"))))))),
		"match merged":               cat(base, vh(bytesField(vhName, []byte("v")), bytesField(vhDomains, []byte("d")), bytesField(vhRoutes, cat(bytesField(rtMatch, bytesField(rmPath, []byte("/a"))), bytesField(rtRoute, bytesField(raCluster, []byte("c"))), bytesField(rtMatch, bytesField(rmCaseSensitive, nil)))))),
		"per-filter entry replaced":  cat(base, bytesField(rcPerFilter, bytesField(mapKey, []byte("x"))), bytesField(rcPerFilter, cat(bytesField(mapKey, []byte("x")), bytesField(mapValue, bytesField(anyTypeURL, []byte("type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault")))))),
		"per-filter entry no value":  cat(base, bytesField(rcPerFilter, bytesField(mapKey, []byte("x")))),
		"packed status codes":        cat(base, vh(bytesField(vhName, []byte("v")), bytesField(vhDomains, []byte("e")), bytesField(vhRetry, bytesField(rpStatusCodes, []byte{0xf7, 3, 1})))),
		"unknown group":              cat(base, []byte{9<<3 | 3, 1 << 3, 1, 9<<3 | 4}),
		"field number 0":             cat(base, []byte{0, 1}),
		"enum out of range":          cat(base, vh(bytesField(vhName, []byte("v")), bytesField(vhDomains, []byte("f")), protowire.AppendVarint(protowire.AppendTag(nil, vhRequireTLS, protowire.VarintType), 1<<40))),
		"retry priority typed twice": cat(base, vh(bytesField(vhName, []byte("v")), bytesField(vhDomains, []byte("g")), bytesField(vhRetry, bytesField(rpPriority, cat(bytesField(extName, []byte("envoy.retry_priorities.previous_priorities")), bytesField(extTypedConfig, bytesField(anyTypeURL, []byte("type.googleapis.com/"+previousPrioritiesName))), bytesField(extTypedConfig, bytesField(anyValue, []byte{8, 2}))))))),
	}
	for n, b := range cases {
		t.Run(n, func(t *testing.T) { compareRoutes(t, b) })
	}
}

func xdstestRouteConfig() *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "a", Domains: []string{"*"},
		Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}}}}}}}
}

// generatedCorpus is what Mast's own generators produce for Bookinfo
// (samples/bookinfo/config, as `mast up` runs it), alone and with each of
// Istio's Bookinfo networking samples (../shared/compat/istio, when present)
// added, for the productpage and reviews sidecars and the ingress gateway:
// every resource of typeURL, encoded.
func generatedCorpus(t testing.TB, typeURL string) [][]byte {
	t.Helper()
	base := map[string][]byte{}
	err := fs.WalkDir(bookinfoconfig.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".yaml" {
			return err
		}
		b, err := fs.ReadFile(bookinfoconfig.Files, p)
		base[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	variants := []map[string][]byte{base}
	compat, _ := filepath.Glob("../../../../shared/compat/istio/bookinfo/networking/*.yaml")
	for _, f := range compat {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v := map[string][]byte{"compat/" + filepath.Base(f): b}
		for k, x := range base {
			v[k] = x
		}
		variants = append(variants, v)
	}
	nodes := []*corev3.Node{
		testNode("sidecar~127.0.1.1~productpage-v1.default~default.svc.cluster.local", map[string]string{"app": "productpage", "version": "v1"}, "bookinfo-productpage"),
		testNode("sidecar~127.0.1.4~reviews-v2.default~default.svc.cluster.local", map[string]string{"app": "reviews", "version": "v2"}, "bookinfo-reviews"),
		testNode("router~127.0.2.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local", map[string]string{"istio": "ingressgateway"}, "istio-ingressgateway"),
	}
	seen := map[string]bool{}
	var out [][]byte
	for _, files := range variants {
		names := make([]string, 0, len(files))
		for f := range files {
			names = append(names, f)
		}
		sort.Strings(names)
		var rs []config.Resource
		for _, f := range names {
			got, problems := config.Load(f, files[f])
			if problems.HasErrors() {
				t.Logf("%s: %v (left out)", f, problems)
				continue
			}
			rs = append(rs, got...)
		}
		mesh := model.DefaultMeshConfig()
		snap := config.NewSnapshot(rs)
		reg := serviceentry.Build(snap, serviceentry.Options{TrustDomain: mesh.TrustDomain})
		pc := model.NewPushContext("corpus", mesh, snap, reg)
		for _, n := range nodes {
			p, err := model.ParseNode(n)
			if err != nil {
				t.Fatal(err)
			}
			got, err := generate.Generate(pc, p, typeURL, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range got {
				b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r.Resource)
				if err != nil {
					t.Fatal(err)
				}
				if !seen[string(b)] {
					seen[string(b)] = true
					out = append(out, b)
				}
			}
		}
	}
	return out
}

func testNode(id string, labels map[string]string, sa string) *corev3.Node {
	lf := map[string]any{}
	for k, v := range labels {
		lf[k] = v
	}
	parts := strings.Split(id, "~")
	name, ns, _ := strings.Cut(parts[2], ".")
	md, _ := structpb.NewStruct(map[string]any{"NAME": name, "NAMESPACE": ns, "INSTANCE_IPS": parts[1], "INTERCEPTION_MODE": "NONE",
		"SERVICE_ACCOUNT": sa, "LABELS": lf})
	return &corev3.Node{Id: id, Cluster: name, Metadata: md}
}

// TestDecodeRouteConfigurationGeneratedCorpus: every route configuration
// Mast's generators produce for Bookinfo and Istio's samples decodes to
// the same table both ways, and is accepted.
func TestDecodeRouteConfigurationGeneratedCorpus(t *testing.T) {
	corpus := generatedCorpus(t, RouteType)
	if len(corpus) < 10 {
		t.Fatalf("%d route configurations generated, want at least 10", len(corpus))
	}
	for _, b := range corpus {
		compareRoutes(t, b)
		if name, _, err := DecodeRouteConfiguration(b); err != nil && !onlyNotYetHonoured(err.Error()) {
			t.Errorf("%s: %v", name, err)
		}
	}
	t.Logf("%d distinct route configurations", len(corpus))
}

// FuzzDecodeRouteConfiguration: any bytes decode as go-control-plane's
// types would (compareRoutes), and an accepted table matches requests.
func FuzzDecodeRouteConfiguration(f *testing.F) {
	r := rand.New(rand.NewPCG(11, 23))
	for range 16 {
		b, _ := proto.Marshal(randomRouteConfiguration(r))
		f.Add(b)
	}
	_, rs, _ := seeds()
	for _, b := range rs {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		compareRoutes(t, b)
		if _, tab, err := DecodeRouteConfiguration(b); err == nil {
			tab.Match(&Input{Authority: "reviews:9080", Path: "/a?b=c"})
		}
	})
}

// TestDecodeVirtualHostMatchesGenerated: VHDS virtual hosts decode as the
// generated path did.
func TestDecodeVirtualHostMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(29, 5))
	reg := builtin.Registry()
	for range 200 {
		rc := randomRouteConfiguration(r)
		for _, vh := range rc.GetVirtualHosts() {
			b, _ := proto.Marshal(vh)
			var gvh *VirtualHost
			gErr := checkFields(vh, routeRules)
			if gErr != nil {
				gErr = fmt.Errorf("virtual host %q: %w", vh.GetName(), gErr)
			} else if gvh, gErr = generatedVirtualHost(vh, reg, nil); gErr != nil {
				gErr = fmt.Errorf("virtual host %q: %w", vh.GetName(), gErr)
			}
			wvh, wErr := decodeVirtualHost(b, reg, nil)
			if !sameError(gErr, wErr) || !reflect.DeepEqual(gvh, wvh) {
				t.Fatalf("generated: %v %v\nwire:      %v %v", gvh, gErr, wvh, wErr)
			}
		}
	}
}
