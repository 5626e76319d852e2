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
