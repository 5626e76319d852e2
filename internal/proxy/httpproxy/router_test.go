package httpproxy

import (
	"encoding/hex"
	mathrand "math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

func TestRedirectLocation(t *testing.T) {
	req := &dsRequest{scheme: "http", authority: "shop.example:8080"}
	for _, tc := range []struct {
		name  string
		route *xdsparse.Route
		path  string
		want  string
	}{
		{"https keeps host drops port", &xdsparse.Route{Redirect: &xdsparse.Redirect{Scheme: "https", Code: 301}}, "/a?b=1", "https://shop.example/a?b=1"},
		{"host redirect", &xdsparse.Route{Redirect: &xdsparse.Redirect{Host: "other", Code: 302}}, "/a", "http://other/a"},
		{"port redirect", &xdsparse.Route{Redirect: &xdsparse.Redirect{Port: 9000, Code: 302}}, "/a", "http://shop.example:9000/a"},
		{"path redirect strips query", &xdsparse.Route{Redirect: &xdsparse.Redirect{Path: "/new", StripQuery: true, Code: 301}}, "/old?x=1", "http://shop.example:8080/new"},
		{"prefix rewrite", &xdsparse.Route{Kind: xdsparse.PathPrefix, Path: "/v1/", Redirect: &xdsparse.Redirect{PrefixRewrite: "/v2/", Code: 301}}, "/v1/items?x", "http://shop.example:8080/v2/items?x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := redirectLocation(tc.route, req, tc.path); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRewritePath(t *testing.T) {
	for _, tc := range []struct {
		name  string
		route *xdsparse.Route
		path  string
		want  string
	}{
		{"none", &xdsparse.Route{Action: &xdsparse.RouteAction{}}, "/a?q", "/a?q"},
		{"prefix", &xdsparse.Route{Kind: xdsparse.PathPrefix, Path: "/api/", Action: &xdsparse.RouteAction{PrefixRewrite: "/"}}, "/api/x?q", "/x?q"},
		{"prefix to empty", &xdsparse.Route{Kind: xdsparse.PathPrefix, Path: "/api", Action: &xdsparse.RouteAction{PrefixRewrite: ""}}, "/api", "/api"},
		{"exact", &xdsparse.Route{Kind: xdsparse.PathExact, Path: "/login", Action: &xdsparse.RouteAction{PrefixRewrite: "/auth/login"}}, "/login", "/auth/login"},
		{"regex", &xdsparse.Route{Kind: xdsparse.PathPrefix, Path: "/", Action: &xdsparse.RouteAction{RegexRewrite: regexp.MustCompile("^/service/([^/]+)(/.*)$"), RegexSubst: "${2}/instance/${1}"}}, "/service/foo/v1?x", "/v1/instance/foo?x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rewritePath(tc.route, tc.path); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRetryConditions(t *testing.T) {
	rp := &xdsparse.RetryPolicy{On: xdsparse.RetryGatewayError | xdsparse.RetryRetriableStatusCodes, StatusCodes: []int{409}}
	for status, want := range map[int]bool{500: false, 502: true, 503: true, 504: true, 409: true, 404: false, 200: false} {
		if got := retriableStatus(rp, status, nil); got != want {
			t.Errorf("status %d: retriable %v, want %v", status, got, want)
		}
	}
	if retriableStatus(nil, 503, nil) {
		t.Error("retried without a policy")
	}
}

func TestComputeHash(t *testing.T) {
	req := &dsRequest{header: headers.List{{Name: "cookie", Value: "a=1; session=abc"}, {Name: "x-user", Value: "u1"}}, remote: "10.0.0.1"}
	h1, ok1, _ := computeHash([]xdsparse.HashPolicy{{Cookie: "session"}}, req, "/")
	req2 := &dsRequest{header: headers.List{{Name: "cookie", Value: "session=abc"}}}
	h2, ok2, _ := computeHash([]xdsparse.HashPolicy{{Cookie: "session"}}, req2, "/")
	if !ok1 || !ok2 || h1 != h2 {
		t.Errorf("same cookie, different hash: %v %v", h1, h2)
	}
	if _, ok, _ := computeHash([]xdsparse.HashPolicy{{Header: "x-missing"}}, req, "/"); ok {
		t.Error("hash from a missing header")
	}
	q1, _, _ := computeHash([]xdsparse.HashPolicy{{Query: "id"}}, req, "/p?id=7")
	q2, _, _ := computeHash([]xdsparse.HashPolicy{{Query: "id"}}, req, "/p?id=8")
	if q1 == q2 {
		t.Error("different query values, same hash")
	}
	if _, ok, _ := computeHash([]xdsparse.HashPolicy{{SourceIP: true}}, req, "/"); !ok {
		t.Error("no hash from source IP")
	}
}

// TestHashCookieGenerated: a cookie policy with a ttl gives a request
// without the cookie one, in Envoy's form (quoted value, Max-Age, Path,
// attributes, HttpOnly), and hashes the generated value exactly as a later
// request that sends it back (quoted or not).
func TestHashCookieGenerated(t *testing.T) {
	pol := []xdsparse.HashPolicy{{Cookie: "user", GenerateCookie: true, CookieTTL: time.Hour, CookiePath: "/shop",
		CookieAttributes: []xdsparse.CookieAttribute{{Name: "SameSite", Value: "Lax"}, {Name: "Secure"}}}}
	first := &dsRequest{remote: "10.0.0.9", remoteAddr: "10.0.0.9:40000"}
	h1, ok, set := computeHash(pol, first, "/")
	name, rest, _ := strings.Cut(set, "=")
	value, attrs, _ := strings.Cut(rest, ";")
	if !ok || name != "user" || len(value) != 18 || value[0] != '"' || attrs != " Max-Age=3600; Path=/shop; SameSite=Lax; Secure; HttpOnly" {
		t.Fatalf("generated %q (hash ok %v)", set, ok)
	}
	for _, sent := range []string{value, strings.Trim(value, `"`)} {
		again := &dsRequest{remote: "10.0.0.77", header: headers.List{{Name: "cookie", Value: "a=b; user=" + sent}}}
		h2, ok2, set2 := computeHash(pol, again, "/")
		if !ok2 || set2 != "" || h2 != h1 {
			t.Errorf("sent back %s: hash %v (want %v), set-cookie %q", sent, h2, h1, set2)
		}
	}
	if _, _, set := computeHash(pol, &dsRequest{remoteAddr: "10.0.0.9:40001"}, "/"); set == "" || strings.HasPrefix(set, name+"="+value) {
		t.Errorf("another connection got the same cookie: %q", set)
	}
	pol[0].CookieTTL = 500 * time.Millisecond
	if _, _, set := computeHash(pol, first, "/"); !strings.HasPrefix(set, "user=") || strings.Contains(set, "Max-Age") {
		t.Errorf("a ttl under a second gives a session cookie, got %q", set)
	}
	pol[0].GenerateCookie = false
	if _, ok, set := computeHash(pol, first, "/"); ok || set != "" {
		t.Errorf("without ttl no cookie is generated: %v %q", ok, set)
	}
	empty := &dsRequest{header: headers.List{{Name: "cookie", Value: "user="}}}
	if _, ok, _ := computeHash(pol, empty, "/"); ok {
		t.Error("an empty cookie was hashed")
	}
}

func TestRetryOnGRPCStatusAndRateLimit(t *testing.T) {
	rp := &xdsparse.RetryPolicy{On: xdsparse.RetryGRPCUnavailable | xdsparse.RetryGRPCCancelled | xdsparse.RetryEnvoyRateLimited}
	grpc := func(code string) headers.List {
		return headers.List{{Name: "content-type", Value: "application/grpc"}, {Name: "grpc-status", Value: code}}
	}
	for _, tc := range []struct {
		h    headers.List
		want bool
	}{
		{grpc("14"), true}, {grpc("1"), true}, {grpc("13"), false}, {grpc("0"), false},
		{headers.List{{Name: "x-envoy-ratelimited", Value: "true"}}, true}, {nil, false},
	} {
		if got := retriableStatus(rp, 200, tc.h); got != tc.want {
			t.Errorf("%v: retriable %v, want %v", tc.h, got, tc.want)
		}
	}
}

func TestRouteTimeoutFromGRPCTimeout(t *testing.T) {
	req := func(v string) *dsRequest {
		if v == "" {
			return &dsRequest{}
		}
		return &dsRequest{header: headers.List{{Name: "grpc-timeout", Value: v}}}
	}
	for _, tc := range []struct {
		act  xdsparse.RouteAction
		hdr  string
		want time.Duration
	}{
		{xdsparse.RouteAction{Timeout: 15 * time.Second}, "2S", 15 * time.Second}, // the route does not ask for grpc-timeout
		{xdsparse.RouteAction{GRPCTimeout: true}, "2S", 2 * time.Second},
		{xdsparse.RouteAction{GRPCTimeout: true}, "250m", 250 * time.Millisecond},
		{xdsparse.RouteAction{GRPCTimeout: true, GRPCTimeoutMax: time.Second}, "1M", time.Second},
		{xdsparse.RouteAction{GRPCTimeout: true, Timeout: 3 * time.Second}, "", 3 * time.Second},
		{xdsparse.RouteAction{GRPCTimeout: true}, "bogus", 0},
		{xdsparse.RouteAction{MaxStreamDuration: time.Second, Timeout: 5 * time.Second}, "", time.Second},
	} {
		if got := routeTimeout(&tc.act, req(tc.hdr)); got != tc.want {
			t.Errorf("%+v with grpc-timeout %q: %v, want %v", tc.act, tc.hdr, got, tc.want)
		}
	}
}

// TestNewRequestID: request IDs are version-4 UUIDs (RFC 9562 5.4), and
// they differ.
func TestNewRequestID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newRequestID()
		if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("%q is not a version-4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("%q twice", id)
		}
		seen[id] = true
	}
}

// TestUUIDString: uuidString formats as hex.Encode and dashes do, for
// every byte value at every position and for random IDs.
func TestUUIDString(t *testing.T) {
	want := func(b *[16]byte) string {
		h := hex.EncodeToString(b[:])
		return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	}
	var b [16]byte
	for i := range b {
		for c := range 256 {
			b[i] = byte(c)
			if got, w := uuidString(&b), want(&b); got != w {
				t.Fatalf("%x: %q, want %q", b, got, w)
			}
		}
		b[i] = 0
	}
	r := mathrand.New(mathrand.NewPCG(1, 2))
	for range 10000 {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if got, w := uuidString(&b), want(&b); got != w {
			t.Fatalf("%x: %q, want %q", b, got, w)
		}
	}
}
