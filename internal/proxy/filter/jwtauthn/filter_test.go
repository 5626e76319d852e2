package jwtauthn

import (
	"context"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/headers"
)

func TestFilterInChain(t *testing.T) {
	k := loadKeys()
	a, err := anypb.New(istioConfig(k.jwks, nil))
	if err != nil {
		t.Fatal(err)
	}
	if a.GetTypeUrl() != TypeURL {
		t.Fatalf("type URL %q", a.GetTypeUrl())
	}
	f, err := New(FilterName, a)
	if err != nil {
		t.Fatal(err)
	}
	f.(*Filter).now = func() time.Time { return testNow }
	run := func(auth string) *filter.Request {
		h := headers.List{}
		if auth != "" {
			h.Add("authorization", auth)
		}
		r := &filter.Request{Method: "GET", Authority: "gw.example.com", Scheme: "http", Path: "/productpage", Headers: &h}
		st := f.DecodeHeaders(context.Background(), r)
		if (st == filter.Stop) != (r.Reply.Status != 0) {
			t.Fatalf("status %v with reply %+v", st, r.Reply)
		}
		return r
	}
	r := run("Bearer " + sign(t, jose.ES256, k.p256, "p256", goodClaims()))
	if r.JWT == nil || r.JWT.Principal != testIssuer+"/testing@secure.istio.io" || r.JWT.Presenter != "frontend" {
		t.Errorf("JWT %+v", r.JWT)
	}
	if groups, _ := r.JWT.Claims["groups"].([]any); len(groups) != 2 {
		t.Errorf("claims %v", r.JWT.Claims)
	}
	r = run("Bearer " + sign(t, jose.ES256, k.attacker, "p256", goodClaims()))
	if r.Reply.Status != 401 || r.Reply.Body != "Jwt verification fails" || r.JWT != nil ||
		r.Reply.Headers.Value("www-authenticate") != `Bearer realm="http://gw.example.com/productpage", error="invalid_token"` {
		t.Errorf("reply %+v", r.Reply)
	}
	if r = run(""); r.Reply.Status != 0 || r.JWT != nil {
		t.Errorf("no token: reply %+v, JWT %+v", r.Reply, r.JWT)
	}
}
