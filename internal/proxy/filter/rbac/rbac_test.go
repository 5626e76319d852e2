package rbac

import (
	"fmt"
	"net/netip"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/pbwire/pbwiregen"
)

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}
func prefix(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s}}
}
func pathPerm(m *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: m}}}}
}
func methodPerm(m string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: ":method",
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact(m)}}}}
}
func andPerm(ps ...*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}
func notPerm(p *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
}
func anyPerm() *rbacv3.Permission { return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}} }
func anyID() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}
func principalID(s string) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: exact(s)}}}
}
func jwtID(key string, m *matcherv3.ValueMatcher, path ...string) *rbacv3.Principal {
	segs := []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: key}}}
	for _, p := range path {
		segs = append(segs, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: p}})
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{Filter: "istio_authn", Path: segs, Value: m}}}
}
func strValue(s string) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: exact(s)}}
}
func listValue(s string) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
		MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: strValue(s)}}}}
}

func engine(t testing.TB, action rbacv3.RBAC_Action, policies map[string]*rbacv3.Policy) *Engine {
	t.Helper()
	e, err := compileProto(&rbacv3.RBAC{Action: action, Policies: policies})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// compileProto compiles a generated RBAC through its wire bytes.
func compileProto(r *rbacv3.RBAC) (*Engine, error) {
	b, err := proto.Marshal(r)
	if err != nil {
		return nil, err
	}
	return Compile(b)
}

func req(method, path string, h ...string) *filter.Request {
	hl := headers.List{}
	for i := 0; i+1 < len(h); i += 2 {
		hl = append(hl, headers.Field{Name: h[i], Value: h[i+1]})
	}
	return &filter.Request{Method: method, Path: path, Authority: "svc", Headers: &hl, Conn: &filter.Conn{}}
}

func TestDenyPathSpellings(t *testing.T) {
	deny := engine(t, rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{
		"ns[foo]-policy[deny-admin]-rule[0]": {Permissions: []*rbacv3.Permission{pathPerm(prefix("/admin/")), pathPerm(exact("/admin"))}, Principals: []*rbacv3.Principal{anyID()}},
	})
	for _, p := range []string{"/admin", "/admin/x", "/admin%2Fx", "/%61dmin/x", "/public/..%2Fadmin/x", "/admin;jsessionid=1", "/admin/x?y=1", "//admin//x", `/admin\x`} {
		if ok, _ := deny.decide(req("GET", p), nil); ok {
			t.Errorf("DENY /admin let %q through", p)
		}
	}
	if ok, _ := deny.decide(req("GET", "/public/admin"), nil); !ok {
		t.Errorf("DENY /admin denied /public/admin")
	}
}

func TestAllowNeedsBothReadings(t *testing.T) {
	allow := engine(t, rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{
		"p": {Permissions: []*rbacv3.Permission{pathPerm(prefix("/public/"))}, Principals: []*rbacv3.Principal{anyID()}},
	})
	for p, want := range map[string]bool{"/public/x": true, "/public%2F..%2Fadmin": false, "/public/..%2Fadmin": false, "/admin": false} {
		if ok, _ := allow.decide(req("GET", p), nil); ok != want {
			t.Errorf("ALLOW /public/* on %q = %v, want %v", p, ok, want)
		}
	}
}

func TestPrincipalsAndMetadata(t *testing.T) {
	e := engine(t, rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{
		"peer":   {Permissions: []*rbacv3.Permission{andPerm(methodPerm("GET"), notPerm(pathPerm(prefix("/private"))))}, Principals: []*rbacv3.Principal{principalID("spiffe://cluster.local/ns/default/sa/productpage")}},
		"jwt":    {Permissions: []*rbacv3.Permission{anyPerm()}, Principals: []*rbacv3.Principal{jwtID("request.auth.principal", strValue("iss/sub"))}},
		"claims": {Permissions: []*rbacv3.Permission{anyPerm()}, Principals: []*rbacv3.Principal{jwtID("request.auth.claims", listValue("admin"), "realm", "roles")}},
	})
	r := req("GET", "/x")
	r.Conn.SetPrincipal("spiffe://cluster.local/ns/default/sa/productpage")
	if ok, name := e.decide(r, r.Conn); !ok || name != "peer" {
		t.Errorf("productpage GET /x: %v %q", ok, name)
	}
	r = req("GET", "/private/x")
	r.Conn.SetPrincipal("spiffe://cluster.local/ns/default/sa/productpage")
	if ok, _ := e.decide(r, r.Conn); ok {
		t.Errorf("not_rule ignored")
	}
	r = req("POST", "/x")
	r.JWT = &filter.JWTResult{Principal: "iss/sub"}
	if ok, name := e.decide(r, r.Conn); !ok || name != "jwt" {
		t.Errorf("request principal: %v %q", ok, name)
	}
	r.JWT = &filter.JWTResult{Principal: "other/x", Claims: map[string]any{"realm": map[string]any{"roles": []any{"user", "admin"}}}}
	if ok, name := e.decide(r, r.Conn); !ok || name != "claims" {
		t.Errorf("nested claim: %v %q", ok, name)
	}
	r.JWT.Claims = map[string]any{"realm": map[string]any{"roles": []any{"user"}}}
	if ok, _ := e.decide(r, r.Conn); ok {
		t.Errorf("claim without admin allowed")
	}
}

func TestConnectionFields(t *testing.T) {
	ip := func(p string, n uint32) *corev3.CidrRange {
		return &corev3.CidrRange{AddressPrefix: p, PrefixLen: wrapperspb.UInt32(n)}
	}
	e := engine(t, rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{
		"direct": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 9080}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: ip("10.0.0.0", 8)}}}},
		"xff": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: ip("192.168.1.1", 32)}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: ip("1.2.3.0", 24)}}}},
	})
	c := &filter.Conn{Remote: netip.MustParseAddrPort("10.1.1.1:5000"), Local: netip.MustParseAddrPort("192.168.1.1:9080")}
	if ok, _ := e.decide(nil, c); !ok {
		t.Errorf("direct remote ip + port")
	}
	c.Local = netip.MustParseAddrPort("192.168.1.1:9090")
	if ok, _ := e.decide(nil, c); ok {
		t.Errorf("wrong port allowed without remote ip")
	}
	r := req("GET", "/")
	r.Conn, r.RemoteIP = c, netip.MustParseAddr("1.2.3.4")
	if ok, name := e.decide(r, c); !ok || name != "xff" {
		t.Errorf("remote ip from XFF: %v %q", ok, name)
	}
}

func TestTemplate(t *testing.T) {
	for _, tc := range []struct {
		tmpl, path string
		want       bool
	}{
		{"/foo/{*}", "/foo/bar", true},
		{"/foo/{*}", "/foo/bar/baz", false},
		{"/foo/{*}", "/foo/", false},
		{"/foo/{**}", "/foo/bar/baz", true},
		{"/foo/{**}", "/foo/", true},
		{"/foo/{**}", "/foo", false},
		{"/{*}/bar/{*}", "/a/bar/b", true},
		{"/{*}/bar/{*}", "/a/baz/b", false},
		{"/foo/{x=**}", "/foo/a/b", true},
	} {
		tm, err := parseTemplate(tc.tmpl)
		if err != nil {
			t.Fatal(err)
		}
		if got := tm.match(tc.path); got != tc.want {
			t.Errorf("%s ~ %s = %v, want %v", tc.tmpl, tc.path, got, tc.want)
		}
	}
	for _, bad := range []string{"foo", "/{**}/x", "/a{*}", "/{x=a*b}"} {
		if _, err := parseTemplate(bad); err == nil {
			t.Errorf("template %q accepted", bad)
		}
	}
	cfg, _ := anypb.New(&uritemplatev3.UriTemplateMatchConfig{PathTemplate: "/x/{**}"})
	e := engine(t, rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{"t": {Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_UriTemplate{
		UriTemplate: &corev3.TypedExtensionConfig{Name: "uri-template", TypedConfig: cfg}}}}, Principals: []*rbacv3.Principal{anyID()}}})
	if ok, _ := e.decide(req("GET", "/x/a/b"), nil); ok {
		t.Errorf("template deny not applied")
	}
}

func TestCompileErrors(t *testing.T) {
	_, err := compileProto(&rbacv3.RBAC{Policies: map[string]*rbacv3.Policy{"p": {
		Permissions: []*rbacv3.Permission{andPerm(anyPerm(), &rbacv3.Permission{Rule: &rbacv3.Permission_SourcedMetadata{}})}, Principals: []*rbacv3.Principal{anyID()}}}})
	if err == nil || err.Error() != "policies[p].permissions[0].and_rules.rules[1].sourced_metadata: not supported" {
		t.Errorf("err = %v", err)
	}
}

// BenchmarkAllow10Rules is the cost of a 10-rule ALLOW policy on a request
// that the last rule allows (all rules are evaluated).
func BenchmarkAllow10Rules(b *testing.B) {
	policies := map[string]*rbacv3.Policy{}
	for i := range 10 {
		policies[fmt.Sprintf("ns[default]-policy[p]-rule[%d]", i)] = &rbacv3.Policy{
			Permissions: []*rbacv3.Permission{andPerm(methodPerm("GET"), pathPerm(prefix(fmt.Sprintf("/api/v%d/", i))))},
			Principals:  []*rbacv3.Principal{principalID(fmt.Sprintf("spiffe://cluster.local/ns/default/sa/client-%d", i))},
		}
	}
	e := engine(b, rbacv3.RBAC_ALLOW, policies)
	r := req("GET", "/api/v9/items?page=2", "user-agent", "bench", "accept", "*/*")
	r.Conn.SetPrincipal("spiffe://cluster.local/ns/default/sa/client-9")
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := e.decide(r, r.Conn); !ok {
			b.Fatal("denied")
		}
	}
}

// FuzzCompile feeds arbitrary bytes as an RBAC config: compile must fail
// cleanly or produce an engine that evaluates without panicking, and agree
// with the generated decoder (compileGenerated) when proto.Unmarshal
// accepts the bytes.
func FuzzCompile(f *testing.F) {
	seed, _ := proto.Marshal(&rbacv3.RBAC{Policies: map[string]*rbacv3.Policy{"p": {Permissions: []*rbacv3.Permission{pathPerm(prefix("/a"))}, Principals: []*rbacv3.Principal{anyID()}}}})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Compile(b)
		var r rbacv3.RBAC
		if proto.Unmarshal(b, &r) == nil {
			want, werr := compileGenerated(&r)
			pbwiregen.SameParse[any](t, "RBAC", want, werr, e, err, "decode ", nil)
		} else if err == nil {
			t.Fatalf("proto.Unmarshal refuses %x, Compile accepts it", b)
		}
		if err != nil || e == nil {
			return
		}
		rq := req("GET", "/a/%2e%2e/b;x", "x", "y")
		rq.JWT = &filter.JWTResult{Principal: "a/b", Claims: map[string]any{"k": []any{"v"}}}
		e.decide(rq, rq.Conn)
		e.decide(nil, &filter.Conn{})
	})
}

// FuzzTemplate checks the URI template parser and matcher.
func FuzzTemplate(f *testing.F) {
	f.Add("/foo/{*}/bar/{**}", "/foo/a/bar/b/c")
	f.Add("/{x=**}", "/")
	f.Fuzz(func(t *testing.T, tmpl, path string) {
		tm, err := parseTemplate(tmpl)
		if err != nil {
			return
		}
		tm.match(path)
	})
}
