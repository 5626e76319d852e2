package generate

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse/xdsparsetest"
)

const authzYAML = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: default}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: productpage-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]}
    to:
    - operation: {methods: ["GET"], paths: ["/productpage", "/static/*", "/api/v1/products/{*}"], hosts: ["bookinfo.example"]}
    when:
    - {key: "request.auth.claims[groups]", values: ["admins"]}
    - {key: destination.port, values: ["9080"]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: istio-system}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"], ports: ["9080"]}}]
    from: [{source: {notNamespaces: ["default"], ipBlocks: ["10.0.0.0/8"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: dry
  namespace: default
  annotations: {istio.io/dry-run: "true"}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: ["DELETE"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-workload, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  rules: [{}]
`

func authzPush(t *testing.T) *model.PushContext {
	t.Helper()
	rs, err := config.Decode("authz.yaml", []byte(authzYAML))
	if err != nil {
		t.Fatal(err)
	}
	return model.NewPushContext("v1", model.DefaultMeshConfig(), config.NewSnapshot(append(bookinfoConfig(), rs...)), bookinfoRegistry())
}

func TestAuthorizationPolicyToRBAC(t *testing.T) {
	ls := gen1(t, authzPush(t), productpageProxy(), ListenerType)
	vi, ok := ls[virtualInboundName].(*listenerv3.Listener)
	if !ok {
		t.Fatalf("no %s", virtualInboundName)
	}
	if err := vi.ValidateAll(); err != nil {
		t.Fatalf("generated listener fails go-control-plane validation: %v", err)
	}
	if _, err := xdsparsetest.ParseListener(vi); err != nil {
		t.Fatalf("mast-proxy NACKs the generated listener: %v", err)
	}
	var sawHTTP, sawTCP bool
	for _, fc := range vi.GetFilterChains() {
		last := fc.Filters[len(fc.Filters)-1]
		switch last.GetName() {
		case hcmFilterName:
			var m hcmv3.HttpConnectionManager
			if err := last.GetTypedConfig().UnmarshalTo(&m); err != nil {
				t.Fatal(err)
			}
			var names []string
			var rbacs []*rbachttpv3.RBAC
			for _, f := range m.HttpFilters {
				names = append(names, f.GetName())
				if f.GetName() == rbacHTTPFilterName {
					var r rbachttpv3.RBAC
					f.GetTypedConfig().UnmarshalTo(&r)
					rbacs = append(rbacs, &r)
				}
			}
			want := "envoy.filters.http.rbac,envoy.filters.http.rbac,envoy.filters.http.fault,envoy.filters.http.cors,envoy.filters.http.router"
			if strings.Join(names, ",") != want {
				t.Fatalf("http_filters %v, want %s", names, want)
			}
			deny, allow := rbacs[0], rbacs[1]
			if deny.GetRules().GetAction() != rbacv3.RBAC_DENY || deny.GetRules().GetPolicies()["ns[istio-system]-policy[deny-admin]-rule[0]"] == nil {
				t.Errorf("deny filter: %v", deny)
			}
			if deny.GetShadowRules().GetPolicies()["ns[default]-policy[dry]-rule[0]"] == nil || deny.GetShadowRulesStatPrefix() != "istio_dry_run_deny_" {
				t.Errorf("dry-run policy not in shadow rules: %v", deny)
			}
			pol := allow.GetRules().GetPolicies()
			if allow.GetRules().GetAction() != rbacv3.RBAC_ALLOW || len(pol) != 1 || pol["ns[default]-policy[productpage-viewer]-rule[0]"] == nil {
				t.Errorf("allow filter: %v", allow)
			}
			sawHTTP = true
		case tcpProxyFilterName:
			if len(fc.Filters) < 2 {
				continue
			}
			var r rbacnetv3.RBAC
			if err := fc.Filters[len(fc.Filters)-2].GetTypedConfig().UnmarshalTo(&r); err != nil {
				t.Fatal(err)
			}
			if r.GetRules().GetAction() == rbacv3.RBAC_ALLOW && len(r.GetRules().GetPolicies()) != 0 {
				t.Errorf("TCP ALLOW with HTTP-only fields must match nothing: %v", r.GetRules().GetPolicies())
			}
			if r.GetRules().GetAction() == rbacv3.RBAC_DENY && r.GetRules().GetPolicies()["ns[istio-system]-policy[deny-admin]-rule[0]"] == nil {
				t.Errorf("TCP DENY must keep the rule without its HTTP fields: %v", &r)
			}
			sawTCP = true
		}
	}
	if !sawHTTP || !sawTCP {
		t.Errorf("http chain seen %v, tcp chain with rbac seen %v", sawHTTP, sawTCP)
	}
	// Outbound listeners carry no RBAC.
	for name, m := range ls {
		l := m.(*listenerv3.Listener)
		if name == virtualInboundName {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				if f.GetName() == rbacNetworkFilterName {
					t.Errorf("%s has network RBAC", name)
				}
			}
		}
	}
}
