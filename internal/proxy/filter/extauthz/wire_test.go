package extauthz

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	netextauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

// ParseProto is Parse on a generated message (for the tests written
// against the generated types).
func ParseProto(c *extauthzv3.ExtAuthz) (*Config, error) {
	b, err := proto.Marshal(c)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// parseNetworkProto is ParseNetwork on a generated message.
func parseNetworkProto(c *netextauthzv3.ExtAuthz) (*NetworkConfig, error) {
	b, err := proto.Marshal(c)
	if err != nil {
		return nil, err
	}
	return ParseNetwork(b)
}

// compare parses b both ways (HTTP or network ExtAuthz): deep-equal
// configs or the same error (bytes that are not a protobuf encoding fail
// both ways, worded by their decoders).
func compare(t testing.TB, network bool, b []byte) error {
	t.Helper()
	var want, have any
	var werr, herr error
	if network {
		a := &anypb.Any{TypeUrl: NetworkTypeURL, Value: b}
		want, werr = parseNetworkGenerated(a)
		have, herr = ParseNetwork(b)
		if errors.Is(herr, errDecode) {
			herr = fmt.Errorf("decode %s: %w", a.GetTypeUrl(), herr)
		}
	} else {
		a := &anypb.Any{TypeUrl: TypeURL, Value: b}
		want, werr = parseAnyGenerated(a)
		have, herr = ParseAny(a)
	}
	pbwiregen.SameParse(t, fmt.Sprintf("%x", b), want, werr, have, herr, "decode ", nil)
	return herr
}

// filler returns a random message generator; lean ones avoid the fields
// the filter refuses, so that accepted configs are common.
func filler(seed uint64, lean bool) *pbwiregen.Filler {
	f := &pbwiregen.Filler{R: rand.New(rand.NewPCG(seed, seed+1)), P: 0.3, OneofP: 0.9, MaxDepth: 5}
	if !lean {
		return f
	}
	f.P = 0.4
	f.Avoid = map[protoreflect.FullName]bool{}
	for _, n := range []string{
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.clear_route_cache_headers",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.validate_mutations",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.metadata_context_namespaces",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.typed_metadata_context_namespaces",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.route_metadata_context_namespaces",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.route_typed_metadata_context_namespaces",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.deny_at_disable",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.include_peer_certificate",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.stat_prefix",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.bootstrap_metadata_labels_key",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.charge_cluster_response_stats",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.decoder_header_mutation_rules",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.enable_dynamic_metadata_ingestion",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.filter_metadata",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.emit_filter_state_stats",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.enforce_response_header_limits",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.shadow_mode",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.emit_client_span",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.filter_enabled",
		"envoy.extensions.filters.http.ext_authz.v3.HttpService.path_override",
		"envoy.extensions.filters.http.ext_authz.v3.HttpService.retry_policy",
		"envoy.extensions.filters.network.ext_authz.v3.ExtAuthz.include_peer_certificate",
		"envoy.extensions.filters.network.ext_authz.v3.ExtAuthz.bootstrap_metadata_labels_key",
		"envoy.extensions.filters.network.ext_authz.v3.ExtAuthz.send_tls_alert_on_denial",
		"envoy.extensions.filters.network.ext_authz.v3.ExtAuthz.metadata_context_namespaces",
		"envoy.extensions.filters.network.ext_authz.v3.ExtAuthz.typed_metadata_context_namespaces",
		"envoy.extensions.filters.network.ext_authz.v3.ExtAuthz.shadow_mode",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.transport_api_version",
		"envoy.extensions.filters.http.ext_authz.v3.ExtAuthz.status_on_error",
		"envoy.extensions.filters.network.ext_authz.v3.ExtAuthz.transport_api_version",
		"envoy.extensions.filters.network.ext_authz.v3.ExtAuthz.stat_prefix",
		"envoy.type.matcher.v3.MetadataMatcher.PathSegment.key",
		"envoy.config.core.v3.GrpcService.google_grpc",
		"envoy.config.core.v3.GrpcService.retry_policy",
		"envoy.config.core.v3.GrpcService.EnvoyGrpc.retry_policy",
		"envoy.config.core.v3.GrpcService.EnvoyGrpc.max_receive_message_length",
		"envoy.config.core.v3.GrpcService.EnvoyGrpc.skip_envoy_headers",
		"envoy.config.core.v3.HeaderValue.raw_value",
		"envoy.type.matcher.v3.StringMatcher.custom",
		"envoy.type.matcher.v3.StringMatcher.safe_regex",
	} {
		f.Avoid[protoreflect.FullName(n)] = true
	}
	return f
}

// TestParseMatchesGenerated: random HTTP ExtAuthz configs (a quarter of
// them two concatenated, which merge) parse to equal configs or the same
// error as the old generated-type parser.
func TestParseMatchesGenerated(t *testing.T) {
	differential(t, false, func() proto.Message { return &extauthzv3.ExtAuthz{} }, 4000, 400, httpConfig(), grpcConfig())
}

// TestParseNetworkMatchesGenerated is the same for the network filter.
func TestParseNetworkMatchesGenerated(t *testing.T) {
	differential(t, true, func() proto.Message { return &netextauthzv3.ExtAuthz{} }, 3000, 500, networkConfig())
}

// differential compares n random messages; the lean ones (three in four)
// are merged onto one of the valid bases (the wire concatenation of the
// two), so that many are accepted.
func differential(t *testing.T, network bool, newMsg func() proto.Message, n, minAccepted int, bases ...proto.Message) {
	wide, lean := filler(1, false), filler(3, true)
	accepted, kinds := 0, map[string]int{}
	for i := range n {
		f := wide
		if i%4 != 0 {
			f = lean
		}
		gen := func() []byte {
			m := newMsg()
			f.Fill(m.ProtoReflect())
			b, _ := proto.Marshal(m)
			return b
		}
		b := gen()
		if f == lean {
			base, _ := proto.Marshal(bases[i%len(bases)])
			b = append(base, b...)
		}
		if i%8 == 7 {
			b = append(b, gen()...)
		}
		if err := compare(t, network, b); err == nil {
			accepted++
		} else {
			kinds[strings.SplitN(err.Error(), ":", 2)[0]]++
		}
	}
	t.Logf("%d of %d accepted; refusals by field: %v", accepted, n, kinds)
	if accepted < minAccepted {
		t.Errorf("%d accepted: the generator does not reach the parser", accepted)
	}
}

// TestStatusCodes: httpStatusCodes is envoy.type.v3.StatusCode.
func TestStatusCodes(t *testing.T) {
	if len(httpStatusCodes) != len(typev3.StatusCode_name)-1 {
		t.Fatalf("%d codes, the enum has %d (with Empty)", len(httpStatusCodes), len(typev3.StatusCode_name))
	}
	for _, c := range httpStatusCodes {
		if _, ok := typev3.StatusCode_name[int32(c)]; !ok {
			t.Errorf("%d is not a StatusCode", c)
		}
	}
}

// FuzzParse: any bytes parse as the generated decoder parses them.
func FuzzParse(f *testing.F) {
	fl := filler(5, true)
	for range 8 {
		m := &extauthzv3.ExtAuthz{}
		fl.Fill(m.ProtoReflect())
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	for _, c := range []*extauthzv3.ExtAuthz{httpConfig(), grpcConfig()} {
		b, _ := proto.Marshal(c)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { compare(t, false, b) })
}

// FuzzParseNetwork is FuzzParse for the network filter.
func FuzzParseNetwork(f *testing.F) {
	fl := filler(7, true)
	for range 8 {
		m := &netextauthzv3.ExtAuthz{}
		fl.Fill(m.ProtoReflect())
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	b, _ := proto.Marshal(networkConfig())
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) { compare(t, true, b) })
}

// TestParseEdges: hand-picked values at each rule's boundary (which random
// messages rarely reach) parse the same both ways.
func TestParseEdges(t *testing.T) {
	var cases []*extauthzv3.ExtAuthz
	add := func(base func() *extauthzv3.ExtAuthz, edit func(*extauthzv3.ExtAuthz)) {
		c := base()
		edit(c)
		cases = append(cases, c)
	}
	for _, den := range []typev3.FractionalPercent_DenominatorType{0, 1, 2, 3} {
		for _, num := range []uint32{0, 99, 100, 9999, 10000, 999999, 1000000} {
			add(grpcConfig, func(c *extauthzv3.ExtAuthz) {
				c.FilterEnabled = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: num, Denominator: den}}
			})
		}
	}
	add(grpcConfig, func(c *extauthzv3.ExtAuthz) { c.FilterEnabled = &corev3.RuntimeFractionalPercent{} })
	for _, code := range []int32{0, 99, 100, 101, 200, 418, 426, 499, 511, 599, 600, -1} {
		add(httpConfig, func(c *extauthzv3.ExtAuthz) { c.StatusOnError = &typev3.HttpStatus{Code: typev3.StatusCode(code)} })
	}
	for _, v := range []int32{0, 1, 2, 3, -1} {
		add(grpcConfig, func(c *extauthzv3.ExtAuthz) { c.TransportApiVersion = corev3.ApiVersion(v) })
	}
	for _, k := range []string{"", "x", "X-Up", ":path", "grpc-x", "GRPC-timeout", "grpcx", "te"} {
		add(grpcConfig, func(c *extauthzv3.ExtAuthz) {
			c.GetGrpcService().InitialMetadata = []*corev3.HeaderValue{{Key: "a", Value: "1"}, {Key: k, Value: "v"}}
		})
		add(httpConfig, func(c *extauthzv3.ExtAuthz) {
			c.GetHttpService().AuthorizationRequest.HeadersToAdd = []*corev3.HeaderValue{{Key: k, Value: "v\r"}, {Key: k, Value: "v"}}
		})
	}
	for _, d := range []*durationpb.Duration{nil, {}, {Nanos: 1}, {Seconds: -1}, {Seconds: 1, Nanos: -1}, {Nanos: 1e9},
		{Seconds: 315_576_000_001}, {Seconds: 315_576_000_000, Nanos: 999_999_999}, {Seconds: -315_576_000_001}} {
		add(grpcConfig, func(c *extauthzv3.ExtAuthz) { c.GetGrpcService().Timeout = d })
		add(httpConfig, func(c *extauthzv3.ExtAuthz) { c.GetHttpService().ServerUri.Timeout = d })
	}
	for _, p := range []string{"", "/", "x", "/a b", "/a?b", "/%zz", "/ok/path"} {
		add(httpConfig, func(c *extauthzv3.ExtAuthz) { c.GetHttpService().PathPrefix = p })
	}
	for _, vm := range []*matcherv3.ValueMatcher{nil, {},
		{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{PresentMatch: true}},
		{MatchPattern: &matcherv3.ValueMatcher_PresentMatch{}},
		{MatchPattern: &matcherv3.ValueMatcher_BoolMatch{BoolMatch: true}},
		{MatchPattern: &matcherv3.ValueMatcher_NullMatch_{NullMatch: &matcherv3.ValueMatcher_NullMatch{}}},
		{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{}}},
		{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{}}},
	} {
		add(grpcConfig, func(c *extauthzv3.ExtAuthz) { c.FilterEnabledMetadata.Value = vm })
	}
	add(grpcConfig, func(c *extauthzv3.ExtAuthz) { c.WithRequestBody = &extauthzv3.BufferSettings{} })
	add(grpcConfig, func(c *extauthzv3.ExtAuthz) {
		c.WithRequestBody = &extauthzv3.BufferSettings{MaxRequestBytes: 1, AllowPartialMessage: true, PackAsBytes: true}
		c.MaxDeniedResponseBodyBytes = 7
		c.FailureModeAllow, c.FailureModeAllowHeaderAdd, c.ClearRouteCache, c.EncodeRawHeaders, c.IncludeTlsSession = true, true, true, true, true
	})
	add(grpcConfig, func(c *extauthzv3.ExtAuthz) { c.GetGrpcService().GetEnvoyGrpc().Authority = "" })
	accepted := 0
	for _, c := range cases {
		b, _ := proto.Marshal(c)
		if compare(t, false, b) == nil {
			accepted++
		}
		n := &netextauthzv3.ExtAuthz{GrpcService: c.GetGrpcService(), TransportApiVersion: c.TransportApiVersion,
			FilterEnabledMetadata: c.FilterEnabledMetadata, FailureModeAllow: c.FailureModeAllow, IncludeTlsSession: c.IncludeTlsSession}
		b, _ = proto.Marshal(n)
		compare(t, true, b)
	}
	t.Logf("%d of %d accepted", accepted, len(cases))
	if accepted < 20 || accepted == len(cases) {
		t.Errorf("%d of %d accepted: the edges miss one side", accepted, len(cases))
	}
}
