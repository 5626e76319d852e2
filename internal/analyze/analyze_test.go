package analyze

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestCorpus analyzes each file of testdata/corpus (misconfigurations
// modelled on Istio's analyzer tests) with Istio's default ingress gateway
// assumed present, and compares the messages with testdata/corpus/NAME.golden.
func TestCorpus(t *testing.T) {
	files, _ := filepath.Glob("testdata/corpus/*.yaml")
	if len(files) == 0 {
		t.Fatal("no corpus")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			in := NewInput()
			in.Add(filepath.Base(f), b)
			in.Offline()
			// Which Istio fields Mast honours changes as Mast grows; the
			// corpus tests the analyzers, so those warnings are left out.
			var msgs []Message
			for _, m := range Analyze(in) {
				if !strings.Contains(m.Text, "not honoured by Mast") {
					msgs = append(msgs, m)
				}
			}
			var out bytes.Buffer
			if err := Write(&out, "log", msgs); err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				os.WriteFile(golden, out.Bytes(), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if out.String() != string(want) {
				t.Errorf("messages differ from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", golden, out.String(), want)
			}
		})
	}
}

// TestJSONShape checks istioctl's JSON fields and the resource fields.
func TestJSONShape(t *testing.T) {
	in := NewInput()
	in.Add("vs.yaml", []byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, namespace: shop}
spec:
  hosts: [r]
  http: [{route: [{destination: {host: nowhere}}]}]
`))
	in.AddDefaults()
	var out bytes.Buffer
	if err := Write(&out, "json", Analyze(in)); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(got) != 1 {
		t.Fatalf("want one message, got %s", out.String())
	}
	m := got[0]
	want := map[string]any{"code": "IST0101", "level": "Error", "message": `Referenced host not found: "nowhere"`,
		"origin": "VirtualService shop/r", "reference": "vs.yaml:1",
		"documentationUrl": "https://istio.io/latest/docs/reference/config/analysis/ist0101/"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	res, _ := m["resource"].(map[string]any)
	if res["kind"] != "VirtualService" || res["namespace"] != "shop" || res["name"] != "r" {
		t.Errorf("resource = %v", m["resource"])
	}
}

// TestInvalidResourcesAreStillAnalyzed: a resource failing validation is
// reported (IST0106) and its references are checked too, as Istio does.
func TestInvalidResourcesAreStillAnalyzed(t *testing.T) {
	in := NewInput()
	in.Add("vs.yaml", []byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [r]
  http:
  - route:
    - {destination: {host: a}, weight: 50}
    - {destination: {host: b}, weight: 10}
`))
	in.AddDefaults()
	var codes []string
	for _, m := range Analyze(in) {
		codes = append(codes, m.Type.Code)
	}
	if strings.Join(codes, ",") != "IST0101,IST0101,IST0106" {
		t.Errorf("codes %v, want two unknown hosts and a schema error", codes)
	}
}

// TestSelectorsAndHosts covers the helpers Istio's semantics hinge on.
func TestSelectorsAndHosts(t *testing.T) {
	if !(selector{}).matches(map[string]string{"a": "b"}) || (selector{"a": "c"}).matches(map[string]string{"a": "b"}) {
		t.Error("selector matching")
	}
	if s := (selector{"b": "2", "a": "1"}).String(); s != "a=1,b=2" {
		t.Errorf("selector string %q", s)
	}
	for _, c := range []struct {
		a, b string
		want bool
	}{{"*.com", "foo.com", true}, {"foo.com", "*.com", true}, {"*", "x", true}, {"*.a.com", "*.com", true}, {"a.com", "b.com", false}} {
		if hostMatches(c.a, c.b) != c.want {
			t.Errorf("hostMatches(%q, %q) != %v", c.a, c.b, c.want)
		}
	}
	if ns, n := nameFromHost("x", "reviews.shop.svc.cluster.local"); ns != "shop" || n != "reviews" {
		t.Errorf("nameFromHost: %s %s", ns, n)
	}
	if fqdn("shop", "reviews") != "reviews.shop.svc.cluster.local" || fqdn("shop", "a.b") != "a.b" {
		t.Error("fqdn")
	}
}

// A running mastd's registry conflicts (from /debug/registryz) are reported
// on the owning ServiceEntry, or on the owning registry.
func TestRegistryConflicts(t *testing.T) {
	in := NewInput()
	in.Add("se.yaml", []byte("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: r, namespace: default}\nspec:\n  hosts: [reviews.service.consul]\n  resolution: DNS\n  ports: [{number: 80, name: http, protocol: HTTP}]\n"))
	in.RegistryConflicts = []RegistryConflict{
		{Hostname: "reviews.service.consul", Owner: "serviceentry", Shadowed: []string{"consul"}},
		{Hostname: "ratings", Owner: "consul", Shadowed: []string{"eureka"}},
	}
	var got []string
	for _, m := range Analyze(in) {
		if m.Type.Code == "MST0001" {
			got = append(got, m.String())
		}
	}
	want := []string{
		"Warning [MST0001] (Registry consul) The host ratings is in several service registries (consul, eureka): consul owns it, and the services and endpoints the others (eureka) have for it are ignored.",
		"Warning [MST0001] (ServiceEntry default/r se.yaml:1) The host reviews.service.consul is in several service registries (serviceentry, consul): serviceentry owns it, and the services and endpoints the others (consul) have for it are ignored.",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
