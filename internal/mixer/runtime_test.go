package mixer

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
)

func load(t testing.TB, files ...string) *Runtime {
	t.Helper()
	var all []config.Resource
	for _, f := range files {
		p := filepath.Join("testdata", "policy-mixer-era", f)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rs, probs := config.Load(p, data)
		if probs.HasErrors() {
			t.Fatalf("%s: %v", f, probs)
		}
		all = append(all, rs...)
	}
	rt := Compile(config.NewSnapshot(all), Options{})
	if len(rt.Problems) > 0 {
		t.Fatalf("problems: %v", rt.Problems)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

func reviewsToRatings(version string) attribute.MapBag {
	return attribute.MapBag{
		"source.labels":         map[string]string{"app": "reviews", "version": version},
		"destination.labels":    map[string]string{"app": "ratings", "version": "v1"},
		"destination.namespace": "default",
		"source.ip":             attribute.NormalizeIP(net.ParseIP("127.0.0.12").To4()),
	}
}

func TestDenyLabel(t *testing.T) {
	for _, f := range []string{"mixer-rule-deny-label.yaml", "mixer-rule-deny-label-crd.yaml"} {
		rt := load(t, f)
		for _, v := range []string{"v2", "v3"} {
			out := rt.Check(context.Background(), reviewsToRatings(v), nil, "", discard())
			want := codes.OK
			if v == "v3" {
				want = codes.PermissionDenied
			}
			if out.Status.Code != want {
				t.Errorf("%s: reviews %s -> ratings: %v, want %v", f, v, out.Status, want)
			}
			if v == "v3" && !strings.HasSuffix(out.Status.Message, ":Not allowed") {
				t.Errorf("%s: message %q", f, out.Status.Message)
			}
		}
		// Another namespace's destination: the rule (namespace default) does not apply.
		b := reviewsToRatings("v3")
		b["destination.namespace"] = "other"
		if out := rt.Check(context.Background(), b, nil, "", discard()); out.Status.Code != codes.OK {
			t.Errorf("%s: other namespace: %v", f, out.Status)
		}
	}
}

func TestDenyWhitelist(t *testing.T) {
	for _, f := range []string{"mixer-rule-deny-whitelist.yaml", "mixer-rule-deny-whitelist-crd.yaml"} {
		rt := load(t, f)
		for v, want := range map[string]codes.Code{"v1": codes.OK, "v2": codes.OK, "v3": codes.PermissionDenied} {
			out := rt.Check(context.Background(), reviewsToRatings(v), nil, "", discard())
			if out.Status.Code != want {
				t.Errorf("%s: %s: %v, want %v", f, v, out.Status, want)
			}
			if want != codes.OK && !strings.Contains(out.Status.Message, "v3 is not whitelisted") {
				t.Errorf("%s: message %q", f, out.Status.Message)
			}
		}
	}
}

func TestDenyIP(t *testing.T) {
	for _, f := range []string{"mixer-rule-deny-ip.yaml", "mixer-rule-deny-ip-crd.yaml"} {
		rt := load(t, f)
		bag := func(ip string) attribute.MapBag {
			return attribute.MapBag{"source.labels": map[string]string{"istio": "ingressgateway"}, "destination.namespace": "default",
				"source.ip": attribute.NormalizeIP(net.ParseIP(ip))}
		}
		if out := rt.Check(context.Background(), bag("10.57.3.4"), nil, "", discard()); out.Status.Code != codes.OK {
			t.Errorf("%s: 10.57.3.4: %v", f, out.Status)
		}
		if out := rt.Check(context.Background(), bag("127.0.0.1"), nil, "", discard()); out.Status.Code != codes.PermissionDenied ||
			!strings.Contains(out.Status.Message, "127.0.0.1 is not whitelisted") {
			t.Errorf("%s: 127.0.0.1: %v", f, out.Status)
		}
		b := bag("127.0.0.1")
		delete(b, "source.ip") // source.ip | ip("0.0.0.0")
		if out := rt.Check(context.Background(), b, nil, "", discard()); out.Status.Code != codes.PermissionDenied {
			t.Errorf("%s: no source.ip: %v", f, out.Status)
		}
		if out := rt.Check(context.Background(), attribute.MapBag{"source.labels": map[string]string{"app": "reviews"}, "destination.namespace": "default"}, nil, "", discard()); out.Status.Code != codes.OK {
			t.Errorf("%s: not from the gateway: %v", f, out.Status)
		}
	}
}

func TestRatingsDenial(t *testing.T) {
	rt := load(t, "mixer-rule-ratings-denial.yaml")
	for user, want := range map[string]codes.Code{"john": codes.PermissionDenied, "jason": codes.OK, "": codes.OK} {
		b := attribute.MapBag{"request.headers": map[string]string{":path": "/"}, "destination.namespace": "default"}
		if user != "" {
			b["request.headers"].(map[string]string)["x-user"] = user
		}
		out := rt.Check(context.Background(), b, nil, "", discard())
		if out.Status.Code != want {
			t.Errorf("x-user %q: %v, want %v", user, out.Status, want)
		}
		if len(out.Refs) != 1 || out.Refs[0].Name != "request.headers" || out.Refs[0].Key != "x-user" || out.Refs[0].Present != (user != "") {
			t.Errorf("x-user %q: refs %+v", user, out.Refs)
		}
	}
}

func TestBrokenRuleLeavesOthers(t *testing.T) {
	good, _ := config.Load("good.yaml", []byte(`apiVersion: config.istio.io/v1alpha2
kind: denier
metadata: {name: d}
spec: {status: {code: 7, message: no}}
---
apiVersion: config.istio.io/v1alpha2
kind: checknothing
metadata: {name: c}
spec:
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: good}
spec:
  actions: [{handler: d.denier, instances: [c.checknothing]}]
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: bad}
spec:
  actions: [{handler: missing, instances: [c]}]
`))
	rt := Compile(config.NewSnapshot(good), Options{})
	defer rt.Close()
	if len(rt.Problems) != 1 || !strings.Contains(rt.Problems[0].Error(), `rule/default/bad: spec.actions[0].handler: "missing": no such handler`) {
		t.Errorf("problems %v", rt.Problems)
	}
	if out := rt.Check(context.Background(), attribute.MapBag{"destination.namespace": "default"}, nil, "", discard()); out.Status.Code != codes.PermissionDenied {
		t.Errorf("the good rule is not in force: %v", out.Status)
	}
}
