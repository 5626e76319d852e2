package expr

import (
	"net"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/mixer/attribute"
)

func compiler(t testing.TB) *Compiler {
	c, err := NewCompiler(attribute.DefaultVocabulary())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEval(t *testing.T) {
	c := compiler(t)
	bag := attribute.MapBag{
		"source.labels":      map[string]string{"app": "reviews", "version": "v3"},
		"destination.labels": map[string]string{"app": "ratings"},
		"request.headers":    map[string]string{"x-user": "john", "cookie": "user=jason"},
		"source.ip":          attribute.NormalizeIP(net.ParseIP("10.57.1.2").To4()),
		"response.code":      int64(404),
		"request.path":       "/api/v1/products",
		"source.user":        "cluster.local/ns/default/sa/bookinfo-productpage",
	}
	for _, tc := range []struct {
		src  string
		want any
	}{
		{`destination.labels["app"] == "ratings" && source.labels["app"]=="reviews" && source.labels["version"] == "v3"`, true},
		{`(request.headers["x-user"] | "") == "john"`, true},
		{`(source.labels["istio"] | "") == "ingressgateway" && (request.headers["x-user"] | "") == "john"`, false},
		{`source.labels["version"]`, "v3"},
		{`destination.labels["app"] | destination.service.name | "unknown"`, "ratings"},
		{`destination.labels["version"] | destination.service.name | "unknown"`, "unknown"},
		{`response.code | 200`, int64(404)},
		{`request.size | 0`, int64(0)},
		{`source.ip | ip("0.0.0.0")`, []byte(net.ParseIP("10.57.1.2").To16())},
		{`source.ip == ip("10.57.1.2")`, true},
		{`destination.ip | ip("0.0.0.0")`, []byte(net.ParseIP("0.0.0.0").To16())},
		{`match(request.headers["cookie"], "user=*")`, true},
		{`match(request.headers["cookie"], "session=*") == false`, true},
		{`request.path.startsWith("/api") && !request.path.endsWith("/x")`, true},
		{`conditional(response.code == 404, "nf", "other")`, "nf"},
		{`"1"`, "1"},
		{`true`, true},
		{`source.user == "cluster.local/ns/default/sa/bookinfo-productpage"`, true},
		{`email("a@b.com")`, "a@b.com"},
		{`dnsName("ratings.default.svc")`, "ratings.default.svc"},
		{`uri("http://x/y")`, "http://x/y"},
		{`timestamp("2015-01-02T15:04:35Z") == timestamp("2015-01-02T15:04:35Z")`, true},
	} {
		e, err := c.Compile(tc.src)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		got, err := e.Eval(bag, nil)
		if err != nil {
			t.Errorf("%s: eval: %v", tc.src, err)
			continue
		}
		if !attribute.Equal(got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.src, got, tc.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	c := compiler(t)
	for _, tc := range []struct{ src, want string }{
		{`source.labels["app"] ==`, "syntax error"},
		{`nosuch.attr == "x"`, "unknown attribute nosuch.attr"},
		{`response.code == "200"`, "no matching overload"},
		{`response.code | "x"`, "no matching overload"},
		{`frob(1)`, "unknown function frob"},
		{`a + b`, "operator + : not supported"},
		{``, "empty expression"},
	} {
		_, err := c.Compile(tc.src)
		if err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), "+:", "+ :"), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.src, err, tc.want)
		}
	}
}

func TestEvalErrorsAndRefs(t *testing.T) {
	c := compiler(t)
	e, err := c.Compile(`destination.labels["app"] == "ratings" && source.labels["app"] == "reviews"`)
	if err != nil {
		t.Fatal(err)
	}
	var refs Refs
	if _, err := e.Eval(attribute.MapBag{"destination.labels": map[string]string{"app": "ratings"}}, &refs); err == nil ||
		!strings.Contains(err.Error(), `lookup failed: "source.labels[app]"`) {
		t.Errorf("missing attribute: got %v", err)
	}
	want := []Ref{{Name: "destination.labels", Key: "app", IsKey: true, Present: true}, {Name: "source.labels", Key: "app", IsKey: true, Present: false}}
	if got := refs.List(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("refs = %+v, want %+v", got, want)
	}
	refs.Reset()
	ok, err := e.EvalBool(attribute.MapBag{"destination.labels": map[string]string{"app": "details"}}, &refs)
	if err != nil || ok || len(refs.List()) != 1 {
		t.Errorf("short circuit: %v %v %+v", ok, err, refs.List())
	}
}

func BenchmarkEval(b *testing.B) {
	c := compiler(b)
	e, _ := c.Compile(`destination.labels["app"] == "ratings" && source.labels["app"]=="reviews" && source.labels["version"] == "v3"`)
	bag := attribute.MapBag{"source.labels": map[string]string{"app": "reviews", "version": "v3"}, "destination.labels": map[string]string{"app": "ratings"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.EvalBool(bag, nil); err != nil {
			b.Fatal(err)
		}
	}
}
