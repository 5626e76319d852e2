package model

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
)

func vsResource(t *testing.T, ns, name, js string) config.Resource {
	t.Helper()
	vs := &networking.VirtualService{}
	if err := protojson.Unmarshal([]byte(js), vs); err != nil {
		t.Fatal(err)
	}
	return config.Resource{Meta: config.Meta{Kind: config.VirtualService, Namespace: ns, Name: name}, Spec: vs}
}

// TestMergeDelegates: istiod's delegation rules. The root's /api route
// delegates to a VirtualService in another namespace: its /api/v1 prefix
// and exact /api/health routes merge under /api (names joined, the root's
// timeout inherited, the delegate's header match kept, destinations
// resolved in the delegate's namespace); its /other route conflicts with
// /api and is dropped. A delegate not exported to the root's namespace, or
// missing, drops only its route. Delegates do not appear on their own.
func TestMergeDelegates(t *testing.T) {
	root := vsResource(t, "front", "root", `{"hosts":["shop.example.com"],"http":[
		{"name":"api","match":[{"name":"m","uri":{"prefix":"/api"}}],"delegate":{"name":"api","namespace":"team"},"timeout":"3s"},
		{"match":[{"uri":{"prefix":"/private"}}],"delegate":{"name":"private","namespace":"team"}},
		{"match":[{"uri":{"prefix":"/gone"}}],"delegate":{"name":"missing"}},
		{"route":[{"destination":{"host":"web"}}]}]}`)
	api := vsResource(t, "team", "api", `{"http":[
		{"name":"v1","match":[{"uri":{"prefix":"/api/v1"},"headers":{"x-user":{"exact":"a"}}}],"route":[{"destination":{"host":"api-v1"}}]},
		{"match":[{"uri":{"exact":"/api/health"}}],"route":[{"destination":{"host":"health.other.svc.cluster.local"}}],"timeout":"1s"},
		{"match":[{"uri":{"prefix":"/other"}}],"route":[{"destination":{"host":"other"}}]}]}`)
	private := vsResource(t, "team", "private", `{"exportTo":["."],"http":[{"route":[{"destination":{"host":"secret"}}]}]}`)
	out := mergeDelegates([]config.Resource{api, root, private}, "cluster.local")
	if len(out) != 1 || out[0].Name != "root" {
		t.Fatalf("resources %v, want the root only", out)
	}
	got := out[0].Spec.(*networking.VirtualService).GetHttp()
	if len(got) != 3 {
		t.Fatalf("%d http routes, want 3 (two merged, the root's own): %v", len(got), got)
	}
	v1, health, web := got[0], got[1], got[2]
	if v1.GetName() != "api-v1" || len(v1.GetMatch()) != 1 || v1.GetMatch()[0].GetName() != "m" ||
		v1.GetMatch()[0].GetUri().GetPrefix() != "/api/v1" || v1.GetMatch()[0].GetHeaders()["x-user"].GetExact() != "a" ||
		v1.GetTimeout().AsDuration() != 3*time.Second || v1.GetRoute()[0].GetDestination().GetHost() != "api-v1.team.svc.cluster.local" {
		t.Errorf("merged v1 route: %v", v1)
	}
	if health.GetName() != "api" || health.GetMatch()[0].GetUri().GetExact() != "/api/health" ||
		health.GetTimeout().AsDuration() != time.Second || health.GetRoute()[0].GetDestination().GetHost() != "health.other.svc.cluster.local" {
		t.Errorf("merged health route: %v", health)
	}
	if web.GetRoute()[0].GetDestination().GetHost() != "web" || web.GetDelegate() != nil {
		t.Errorf("root's own route: %v", web)
	}
	// MergeDelegates (for mast why and describe) gives the same routes and
	// where each comes from.
	outT, origins := MergeDelegates([]config.Resource{api, root, private}, "cluster.local")
	if len(outT) != 1 || len(outT[0].Spec.(*networking.VirtualService).GetHttp()) != 3 {
		t.Fatalf("MergeDelegates: %v", outT)
	}
	apiKey := config.Key{Kind: config.VirtualService, Namespace: "team", Name: "api"}
	want := []RouteOrigin{{RootIndex: 0, Delegate: apiKey, DelegateIndex: 0}, {RootIndex: 0, Delegate: apiKey, DelegateIndex: 1}, {RootIndex: 3}}
	if o := origins[root.Key()]; len(o) != len(want) || o[0] != want[0] || o[1] != want[1] || o[2] != want[2] {
		t.Errorf("origins %+v, want %+v", o, want)
	}
	// The inputs are unchanged.
	if n := len(root.Spec.(*networking.VirtualService).GetHttp()); n != 4 {
		t.Errorf("the root's input spec has %d routes, want 4", n)
	}
	if h := api.Spec.(*networking.VirtualService).GetHttp()[0].GetRoute()[0].GetDestination().GetHost(); h != "api-v1" {
		t.Errorf("the delegate's input destination became %q", h)
	}
}

func TestStringMatchConflict(t *testing.T) {
	p := func(v string) *networking.StringMatch {
		return &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: v}}
	}
	e := func(v string) *networking.StringMatch {
		return &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: v}}
	}
	r := func(v string) *networking.StringMatch {
		return &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: v}}
	}
	for _, tc := range []struct {
		name       string
		root, leaf *networking.StringMatch
		want       bool
	}{
		{"no root", nil, p("/a"), false},
		{"no leaf", p("/a"), nil, false},
		{"narrower prefix", p("/a"), p("/a/b"), false},
		{"wider prefix", p("/a/b"), p("/a"), true},
		{"exact under prefix", p("/a"), e("/a/x"), false},
		{"exact outside prefix", p("/a"), e("/b"), true},
		{"same exact", e("/a"), e("/a"), false},
		{"prefix under exact", e("/a"), p("/a"), true},
		{"regex root", r("/a.*"), p("/a"), true},
		{"regex leaf", p("/a"), r("/a.*"), true},
	} {
		if got := stringMatchConflict(tc.root, tc.leaf); got != tc.want {
			t.Errorf("%s: conflict %v, want %v", tc.name, got, tc.want)
		}
	}
}
