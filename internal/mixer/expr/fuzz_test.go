package expr

import (
	"net"
	"testing"

	"github.com/mast-mesh/mast/internal/mixer/attribute"
)

// FuzzCompile: expressions are user YAML (rule match, instance params);
// any text compiles or is refused with an error, and what compiles
// evaluates over a bag without a panic.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		`destination.labels["app"] == "ratings" && source.labels["version"] == "v3"`,
		`(request.headers["x-user"] | "") == "john"`,
		`match(request.path, "/api/*") || source.ip == ip("10.57.0.1")`,
		`conditional(response.code >= 500, "error", "ok")`,
		`request.path.startsWith("/v1") && !(destination.service.name | "x").endsWith("z")`,
		`email("a@b.c") == email("a@b.c") && dnsName("x.y") == dnsName("x.y") && uri("http://a/") == uri("http://a/")`,
		`timestamp("2015-01-02T15:04:35Z") | request.time`,
		`((((`,
	} {
		f.Add(s)
	}
	c, err := NewCompiler(attribute.DefaultVocabulary())
	if err != nil {
		f.Fatal(err)
	}
	bag := attribute.MapBag{
		"request.headers":    map[string]string{"x-user": "john"},
		"destination.labels": map[string]string{"app": "ratings"},
		"source.ip":          attribute.NormalizeIP(net.ParseIP("10.57.1.2").To4()),
		"request.path":       "/api/v1",
		"response.code":      int64(503),
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := c.Compile(src)
		if err != nil {
			return
		}
		e.Eval(bag, nil)
	})
}
