package config

import (
	"strings"
	"testing"
)

func TestCheckCustomProviders(t *testing.T) {
	rs, probs := Load("p.yaml", []byte(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-authz, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: sample-ext-authz-grpcc}
  rules: [{to: [{operation: {paths: ["/headers"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ok, namespace: foo}
spec:
  action: CUSTOM
  provider: {name: sample-ext-authz-http}
  rules: [{}]
`))
	if probs.HasErrors() || len(rs) != 2 {
		t.Fatalf("load: %v", probs)
	}
	got := CheckCustomProviders(rs, []string{"sample-ext-authz-grpc", "sample-ext-authz-http"})
	if len(got) != 1 || got[0].Severity != Error || got[0].Field != "spec.provider.name" || got[0].Resource.Name != "ext-authz" ||
		!strings.Contains(got[0].String(), `p.yaml:`) || !strings.Contains(got[0].Message, `"sample-ext-authz-grpcc"`) {
		t.Errorf("problems: %v", got)
	}
}

// Two CUSTOM providers that can meet on one workload are named together;
// disjoint selectors, other namespaces, the same provider and dry-run
// policies are not; the root namespace's policy meets every namespace's.
func TestCheckCustomProviderConflicts(t *testing.T) {
	rs, probs := Load("p.yaml", []byte(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a, namespace: foo}
spec: {selector: {matchLabels: {app: web}}, action: CUSTOM, provider: {name: p1}, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: b, namespace: foo}
spec: {selector: {matchLabels: {version: v1}}, action: CUSTOM, provider: {name: p2}, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: c, namespace: foo}
spec: {selector: {matchLabels: {app: db}}, action: CUSTOM, provider: {name: p3}, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: d, namespace: bar}
spec: {action: CUSTOM, provider: {name: p4}, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: e, namespace: istio-system}
spec: {selector: {matchLabels: {app: db}}, action: CUSTOM, provider: {name: p3}, rules: [{}]}
`))
	if probs.HasErrors() {
		t.Fatalf("load: %v", probs)
	}
	var got []string
	for _, p := range CheckCustomProviderConflicts(rs, "istio-system") {
		if p.Severity != Error || p.Field != "spec.provider.name" {
			t.Errorf("problem %v", p)
		}
		got = append(got, p.Resource.Namespace+"/"+p.Resource.Name+": "+p.Message[:strings.Index(p.Message, ", which")])
	}
	want := []string{
		`foo/a: provider "p1" differs from provider "p2" of CUSTOM AuthorizationPolicy foo/b`,
		`foo/b: provider "p2" differs from provider "p1" of CUSTOM AuthorizationPolicy foo/a`,
		`foo/b: provider "p2" differs from provider "p3" of CUSTOM AuthorizationPolicy foo/c`,
		`foo/b: provider "p2" differs from provider "p3" of CUSTOM AuthorizationPolicy istio-system/e`,
		`foo/c: provider "p3" differs from provider "p2" of CUSTOM AuthorizationPolicy foo/b`,
		`bar/d: provider "p4" differs from provider "p3" of CUSTOM AuthorizationPolicy istio-system/e`,
		`istio-system/e: provider "p3" differs from provider "p2" of CUSTOM AuthorizationPolicy foo/b`,
		`istio-system/e: provider "p3" differs from provider "p4" of CUSTOM AuthorizationPolicy bar/d`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// istio.io/dry-run on a CUSTOM policy is refused as Istio's validation
// refuses it (dry-run supports ALLOW and DENY only), naming the annotation.
func TestDryRunCustomRefused(t *testing.T) {
	_, probs := Load("p.yaml", []byte(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: foo, annotations: {istio.io/dry-run: "true"}}
spec:
  action: CUSTOM
  provider: {name: sample-ext-authz-grpc}
  rules: [{to: [{operation: {paths: ["/headers"]}}]}]
`))
	errs := probs.Errors()
	if len(errs) != 1 || !strings.Contains(errs[0].String(), "istio.io/dry-run") || !strings.Contains(errs[0].Message, "only supports action ALLOW and DENY, found CUSTOM") {
		t.Errorf("problems: %v", probs)
	}
}
