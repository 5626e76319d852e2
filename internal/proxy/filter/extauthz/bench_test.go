package extauthz

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
)

// BenchmarkNotSelected is the filter's cost on a request the CUSTOM rules
// do not select (the shadow RBAC left no mark): the metadata lookup only.
func BenchmarkNotSelected(b *testing.B) {
	f := mustNew(b, grpcConfig())
	r := request(nil, false, "x-ext-authz", "allow")
	r.AddMeta("envoy.filters.http.rbac", "shadow_engine_result", "allowed")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if f.DecodeHeaders(ctx, r) != filter.Continue {
			b.Fatal("stopped")
		}
	}
}

// benchCheck measures one selected request allowed by a loopback
// authorizer: building the check, the round trip, applying the answer.
func benchCheck(b *testing.B, f filter.HTTPFilter, svc *filter.Services) {
	ctx := context.Background()
	hl := headers.List{}
	b.ReportAllocs()
	for b.Loop() {
		hl = append(hl[:0], headers.Field{Name: "x-ext-authz", Value: "allow"}, headers.Field{Name: "x-request-id", Value: "abc"})
		r := &filter.Request{Method: "GET", Authority: "web", Scheme: "http", Path: "/headers", Headers: &hl, Conn: &filter.Conn{}, Services: svc}
		r.AddMeta("envoy.filters.http.rbac", "istio_ext_authz_shadow_effective_policy_id", "istio-ext-authz-ns[foo]-policy[x]-rule[0]")
		if f.DecodeHeaders(ctx, r) != filter.Continue {
			b.Fatalf("denied: %d %q", r.Reply.Status, r.Reply.Body)
		}
	}
}

func BenchmarkGRPCCheck(b *testing.B) {
	addr := startGRPCB(b, &authzServer{})
	benchCheck(b, mustNew(b, grpcConfig()), services(addr))
}

func BenchmarkHTTPCheck(b *testing.B) {
	hs := httptest.NewServer(&authzServer{})
	defer hs.Close()
	benchCheck(b, mustNew(b, httpConfig()), services(strings.TrimPrefix(hs.URL, "http://")))
}
