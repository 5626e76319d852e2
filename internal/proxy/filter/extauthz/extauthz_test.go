package extauthz

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// istioMatcher is the filter_enabled_metadata istiod generates.
func istioMatcher() *matcherv3.MetadataMatcher {
	return &matcherv3.MetadataMatcher{
		Filter: "envoy.filters.http.rbac",
		Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "istio_ext_authz_shadow_effective_policy_id"}}},
		Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "istio-ext-authz"}}}},
	}
}

func exact(names ...string) *matcherv3.ListStringMatcher {
	l := &matcherv3.ListStringMatcher{}
	for _, n := range names {
		l.Patterns = append(l.Patterns, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: n}, IgnoreCase: true})
	}
	return l
}

// httpConfig is what istiod builds for an envoyExtAuthzHttp provider.
func httpConfig() *extauthzv3.ExtAuthz {
	return &extauthzv3.ExtAuthz{
		TransportApiVersion:   corev3.ApiVersion_V3,
		FilterEnabledMetadata: istioMatcher(),
		Services: &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{
			PathPrefix: "/check",
			ServerUri: &corev3.HttpUri{Uri: "http://ext-authz.foo.svc.cluster.local", Timeout: durationpb.New(2 * time.Second),
				HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "outbound|8000||ext-authz.foo.svc.cluster.local"}},
			AuthorizationRequest: &extauthzv3.AuthorizationRequest{AllowedHeaders: exact("x-ext-authz"),
				HeadersToAdd: []*corev3.HeaderValue{{Key: "x-added", Value: "1"}}},
			AuthorizationResponse: &extauthzv3.AuthorizationResponse{
				AllowedUpstreamHeaders:        exact("x-ext-authz-check-result"),
				AllowedClientHeaders:          exact("x-ext-authz-check-result"),
				AllowedClientHeadersOnSuccess: exact("x-ext-authz-on-success"),
			},
		}},
	}
}

func grpcConfig() *extauthzv3.ExtAuthz {
	return &extauthzv3.ExtAuthz{
		TransportApiVersion:   corev3.ApiVersion_V3,
		FilterEnabledMetadata: istioMatcher(),
		Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: "outbound|9000||ext-authz.foo.svc.cluster.local", Authority: "outbound_.9000_._.ext-authz.foo.svc.cluster.local"}},
			Timeout: durationpb.New(2 * time.Second),
		}},
	}
}

func mustNew(t testing.TB, c *extauthzv3.ExtAuthz) filter.HTTPFilter {
	t.Helper()
	a, _ := anypb.New(c)
	f, err := New(Name, a)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// authzServer is Istio's sample ext-authz logic on both protocols: allow
// when x-ext-authz is "allow", else 403 with x-ext-authz-check-result:
// denied and Istio's sample body.
type authzServer struct {
	authv3.UnimplementedAuthorizationServer
	last *authv3.CheckRequest
}

const deniedBody = "denied by ext_authz for not found header `x-ext-authz: allow` in the request"

func (s *authzServer) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	s.last = req
	if req.GetAttributes().GetRequest().GetHttp().GetHeaders()["x-ext-authz"] == "allow" {
		return &authv3.CheckResponse{Status: &status.Status{Code: int32(code.Code_OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-ext-authz-check-result", Value: "allowed"},
					Append: wrapperspb.Bool(false)}},
				HeadersToRemove:      []string{"x-remove-me"},
				ResponseHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-ext-authz-on-success", Value: "yes"}}},
				QueryParametersToSet: []*corev3.QueryParameter{{Key: "authz", Value: "ok"}},
			}}}, nil
	}
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(code.Code_PERMISSION_DENIED)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden},
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-ext-authz-check-result", Value: "denied"}}},
			Body:    deniedBody,
		}}}, nil
}

func (s *authzServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/check/") || r.Header.Get("x-added") != "1" || r.Header.Get("x-other") != "" {
		w.WriteHeader(400)
		io.WriteString(w, "bad check request "+r.URL.Path)
		return
	}
	if r.Header.Get("x-ext-authz") == "allow" {
		w.Header().Set("x-ext-authz-check-result", "allowed")
		w.Header().Set("x-ext-authz-on-success", "yes")
		w.Header().Set("x-not-allowed", "no")
		w.WriteHeader(200)
		return
	}
	w.Header().Set("x-ext-authz-check-result", "denied")
	w.Header().Set("x-not-allowed", "no")
	w.WriteHeader(403)
	io.WriteString(w, deniedBody)
}

// services reaches addr for every cluster.
func services(addr string) *filter.Services {
	return &filter.Services{
		ClusterDial: func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
		ClusterHTTP: func(ctx context.Context, _ string, c *filter.HTTPCall, max int) (*filter.HTTPResult, error) {
			req, _ := http.NewRequestWithContext(ctx, c.Method, "http://"+addr+c.Path, bytes.NewReader(c.Body))
			req.Host = c.Authority
			for _, h := range c.Header {
				if h.Name != "content-length" {
					req.Header.Add(h.Name, h.Value)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(resp.Body, int64(max)))
			out := &filter.HTTPResult{Status: resp.StatusCode, Body: b}
			for k, vs := range resp.Header {
				for _, v := range vs {
					out.Header.Add(strings.ToLower(k), v)
				}
			}
			return out, nil
		},
	}
}

func startGRPC(t *testing.T, s *authzServer) string { return startGRPCB(t, s) }

func startGRPCB(t testing.TB, s *authzServer) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, s)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

func request(svc *filter.Services, selected bool, h ...string) *filter.Request {
	hl := headers.List{{Name: "x-remove-me", Value: "1"}, {Name: "x-other", Value: "o"}}
	for i := 0; i+1 < len(h); i += 2 {
		hl.Add(h[i], h[i+1])
	}
	r := &filter.Request{Method: "GET", Authority: "httpbin.foo:8000", Scheme: "http", Path: "/headers?a=1", Headers: &hl,
		Conn: &filter.Conn{Principal: "spiffe://cluster.local/ns/foo/sa/sleep", Remote: netip.MustParseAddrPort("127.0.0.7:4000"),
			Local: netip.MustParseAddrPort("127.0.0.8:8000")}, Services: svc}
	if selected {
		r.AddMeta("envoy.filters.http.rbac", "istio_ext_authz_shadow_effective_policy_id", "istio-ext-authz-ns[foo]-policy[ext-authz]-rule[0]")
	}
	return r
}

func TestGRPCProvider(t *testing.T) {
	srv := &authzServer{}
	svc := services(startGRPC(t, srv))
	f := mustNew(t, grpcConfig())

	r := request(svc, true, "x-ext-authz", "allow")
	if st := f.DecodeHeaders(context.Background(), r); st != filter.Continue {
		t.Fatalf("allowed request stopped: %+v", r.Reply)
	}
	if v, _ := r.Headers.Get("x-ext-authz-check-result"); v != "allowed" || r.Headers.Has("x-remove-me") {
		t.Errorf("upstream headers after OK: %v", *r.Headers)
	}
	if r.Path != "/headers?a=1&authz=ok" {
		t.Errorf("query after OK: %q", r.Path)
	}
	var resp headers.List
	f.(filter.ResponseFilter).EncodeHeaders(r, 200, &resp)
	if v, _ := resp.Get("x-ext-authz-on-success"); v != "yes" {
		t.Errorf("response headers on success: %v", resp)
	}
	attrs := srv.last.GetAttributes()
	if attrs.GetSource().GetPrincipal() != "spiffe://cluster.local/ns/foo/sa/sleep" ||
		attrs.GetSource().GetAddress().GetSocketAddress().GetAddress() != "127.0.0.7" ||
		attrs.GetRequest().GetHttp().GetPath() != "/headers?a=1" || attrs.GetRequest().GetHttp().GetHeaders()[":authority"] != "httpbin.foo:8000" ||
		attrs.GetRequest().GetHttp().GetHeaders()["x-other"] != "o" {
		t.Errorf("check request attributes: %v", attrs)
	}

	r = request(svc, true, "x-ext-authz", "deny")
	if st := f.DecodeHeaders(context.Background(), r); st != filter.Stop || r.Reply.Status != 403 || r.Reply.Body != deniedBody ||
		r.Reply.Headers.Value("x-ext-authz-check-result") != "denied" || r.Flags&filter.FlagExtAuthzDenied == 0 {
		t.Errorf("denied: %v %+v", st, r.Reply)
	}
	// Not selected by the CUSTOM policy: never checked.
	srv.last = nil
	r = request(svc, false, "x-ext-authz", "deny")
	if st := f.DecodeHeaders(context.Background(), r); st != filter.Continue || srv.last != nil {
		t.Errorf("unselected request: %v, checked %v", st, srv.last != nil)
	}
}

func TestHTTPProvider(t *testing.T) {
	srv := &authzServer{}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	svc := services(strings.TrimPrefix(hs.URL, "http://"))
	f := mustNew(t, httpConfig())

	r := request(svc, true, "x-ext-authz", "allow")
	if st := f.DecodeHeaders(context.Background(), r); st != filter.Continue {
		t.Fatalf("allowed request stopped: %d %q", r.Reply.Status, r.Reply.Body)
	}
	if v, _ := r.Headers.Get("x-ext-authz-check-result"); v != "allowed" || r.Headers.Has("x-not-allowed") {
		t.Errorf("upstream headers after OK: %v", *r.Headers)
	}
	var resp headers.List
	f.(filter.ResponseFilter).EncodeHeaders(r, 200, &resp)
	if resp.Value("x-ext-authz-on-success") != "yes" || resp.Has("x-ext-authz-check-result") {
		t.Errorf("response headers on success: %v", resp)
	}
	r = request(svc, true, "x-ext-authz", "deny")
	if st := f.DecodeHeaders(context.Background(), r); st != filter.Stop || r.Reply.Status != 403 || r.Reply.Body != deniedBody ||
		r.Reply.Headers.Value("x-ext-authz-check-result") != "denied" || r.Reply.Headers.Has("x-not-allowed") {
		t.Errorf("denied: %v %d %q %v", st, r.Reply.Status, r.Reply.Body, r.Reply.Headers)
	}
}

func TestFailureModes(t *testing.T) {
	// A port nothing listens on.
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := lis.Addr().String()
	lis.Close()
	for _, tc := range []struct {
		name      string
		mod       func(*extauthzv3.ExtAuthz)
		want      filter.Status
		status    int
		failedHdr bool
	}{
		{"closed by default", func(*extauthzv3.ExtAuthz) {}, filter.Stop, 403, false},
		{"status_on_error", func(c *extauthzv3.ExtAuthz) {
			c.StatusOnError = &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable}
		}, filter.Stop, 503, false},
		{"failure_mode_allow", func(c *extauthzv3.ExtAuthz) { c.FailureModeAllow = true }, filter.Continue, 0, false},
		{"failure_mode_allow_header_add", func(c *extauthzv3.ExtAuthz) { c.FailureModeAllow, c.FailureModeAllowHeaderAdd = true, true }, filter.Continue, 0, true},
	} {
		for _, base := range []func() *extauthzv3.ExtAuthz{grpcConfig, httpConfig} {
			c := base()
			tc.mod(c)
			f := mustNew(t, c)
			r := request(services(dead), true, "x-ext-authz", "allow")
			st := f.DecodeHeaders(context.Background(), r)
			if st != tc.want || r.Reply.Status != tc.status || r.Headers.Has(hdrFailureModeAllowed) != tc.failedHdr || r.Flags&filter.FlagExtAuthzError == 0 {
				t.Errorf("%s (%T): %v %d, header %v", tc.name, c.GetServices(), st, r.Reply.Status, r.Headers.Has(hdrFailureModeAllowed))
			}
		}
	}
}

func TestTimeout(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hs.Close()
	c := httpConfig()
	c.GetHttpService().ServerUri.Timeout = durationpb.New(50 * time.Millisecond)
	f := mustNew(t, c)
	r := request(services(strings.TrimPrefix(hs.URL, "http://")), true, "x-ext-authz", "allow")
	if st := f.DecodeHeaders(context.Background(), r); st != filter.Stop || r.Reply.Status != 403 {
		t.Errorf("authorizer past its timeout: %v %d", st, r.Reply.Status)
	}
}

func TestRequestBody(t *testing.T) {
	srv := &authzServer{}
	svc := services(startGRPC(t, srv))
	c := grpcConfig()
	c.WithRequestBody = &extauthzv3.BufferSettings{MaxRequestBytes: 4}
	f := mustNew(t, c)
	bf, ok := f.(filter.BodyFilter)
	if !ok {
		t.Fatal("with_request_body: not a body filter")
	}
	r := request(svc, true, "x-ext-authz", "allow")
	if st := bf.DecodeBody(context.Background(), r, []byte("abcdefgh"), true); st != filter.Stop || r.Reply.Status != 413 {
		t.Errorf("body over max_request_bytes without allow_partial_message: %v %d", st, r.Reply.Status)
	}
	c.WithRequestBody.AllowPartialMessage, c.WithRequestBody.PackAsBytes = true, true
	bf = mustNew(t, c).(filter.BodyFilter)
	r = request(svc, true, "x-ext-authz", "allow")
	if st := bf.DecodeBody(context.Background(), r, []byte("abcdefgh"), true); st != filter.Continue {
		t.Fatalf("partial body: %v %+v", st, r.Reply)
	}
	h := srv.last.GetAttributes().GetRequest().GetHttp()
	if string(h.GetRawBody()) != "abcd" || h.GetHeaders()[hdrPartialBody] != "true" {
		t.Errorf("check body %q, partial %q", h.GetRawBody(), h.GetHeaders()[hdrPartialBody])
	}
}

func TestParseRefusesWhatItCannotHonour(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*extauthzv3.ExtAuthz)
		want string
	}{
		{func(c *extauthzv3.ExtAuthz) { c.IncludePeerCertificate = true }, "include_peer_certificate: not supported"},
		{func(c *extauthzv3.ExtAuthz) { c.MetadataContextNamespaces = []string{"x"} }, "metadata_context_namespaces: not supported"},
		{func(c *extauthzv3.ExtAuthz) { c.StatPrefix = "x" }, "stat_prefix: not supported"},
		{func(c *extauthzv3.ExtAuthz) { c.ShadowMode = true }, "shadow_mode: not supported"},
		{func(c *extauthzv3.ExtAuthz) { c.TransportApiVersion = corev3.ApiVersion_V2 }, "transport_api_version"},
		{func(c *extauthzv3.ExtAuthz) {
			c.GetGrpcService().TargetSpecifier = &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: "x"}}
		}, "grpc_service.google_grpc: not supported"},
		{func(c *extauthzv3.ExtAuthz) { c.FilterEnabledMetadata.Path = nil }, "filter_enabled_metadata.path"},
		{func(c *extauthzv3.ExtAuthz) {
			c.FilterEnabled = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 50}}
		}, "filter_enabled.default_value"},
		{func(c *extauthzv3.ExtAuthz) { c.Services = nil }, "services"},
	} {
		c := grpcConfig()
		tc.mod(c)
		_, err := ParseProto(c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want error %q, got %v", tc.want, err)
		}
	}
	c := httpConfig()
	c.GetHttpService().ServerUri.Timeout = nil
	if _, err := ParseProto(c); err == nil || !strings.Contains(err.Error(), "http_service.server_uri.timeout: required") {
		t.Errorf("HTTP without timeout: %v", err)
	}
	c = httpConfig()
	c.GetHttpService().AuthorizationResponse.AllowedUpstreamHeaders.Patterns[0].MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}
	if _, err := ParseProto(c); err == nil || !strings.Contains(err.Error(), "allowed_upstream_headers.patterns[0]") {
		t.Errorf("bad regex: %v", err)
	}
}

func TestMutateQuery(t *testing.T) {
	for _, tc := range []struct {
		path   string
		set    [][2]string
		remove []string
		want   string
	}{
		{"/p", [][2]string{{"a", "1"}}, nil, "/p?a=1"},
		{"/p?a=0&b=2", [][2]string{{"a", "x y"}}, nil, "/p?b=2&a=x+y"},
		{"/p?a=0&b=2", nil, []string{"a", "b"}, "/p"},
	} {
		if got := mutateQuery(tc.path, tc.set, tc.remove); got != tc.want {
			t.Errorf("mutateQuery(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}
