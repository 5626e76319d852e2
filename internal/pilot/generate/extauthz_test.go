package generate

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	netextauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse/xdsparsetest"
)

// extAuthzMesh is Istio's ext-authz task's MeshConfig, pointed at services
// of the test registry.
const extAuthzMesh = `
extensionProviders:
- name: sample-ext-authz-grpc
  envoyExtAuthzGrpc:
    service: echo.default.svc.cluster.local
    port: 7070
    failOpen: true
    timeout: 0.5s
- name: sample-ext-authz-http
  envoyExtAuthzHttp:
    service: default/details.default.svc.cluster.local
    port: 9080
    pathPrefix: /check
    statusOnError: "503"
    includeRequestHeadersInCheck: ["x-ext-authz", "x-prefix-*"]
    includeAdditionalHeadersInCheck: {x-b: "2", x-a: "1"}
    headersToUpstreamOnAllow: ["x-ext-authz-check-result"]
    headersToDownstreamOnDeny: ["x-ext-authz-check-result", "content-type"]
    headersToDownstreamOnAllow: ["set-cookie"]
    includeRequestBodyInCheck: {maxRequestBytes: 1024, allowPartialMessage: true}
- name: nowhere
  envoyExtAuthzHttp: {service: missing.default.svc.cluster.local, port: 80}
`

const extAuthzPolicy = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-authz, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  action: CUSTOM
  provider: {name: %s}
  rules:
  - to: [{operation: {paths: ["/headers"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin"]}}]
`

// inboundHTTPFilters generates productpage's inbound HTTP chain with the
// CUSTOM policy naming provider; the listener must pass go-control-plane's
// validation and mast-proxy's own parser.
func inboundHTTPFilters(t *testing.T, provider string) []*hcmv3.HttpFilter {
	t.Helper()
	mesh, warns, err := model.ParseMeshConfig("mesh.yaml", []byte(extAuthzMesh), model.DefaultMeshConfig())
	if err != nil || len(warns) > 0 {
		t.Fatalf("mesh config: %v %v", err, warns)
	}
	rs, err := config.Decode("authz.yaml", []byte(strings.ReplaceAll(extAuthzPolicy, "%s", provider)))
	if err != nil {
		t.Fatal(err)
	}
	pc := model.NewPushContext("v1", mesh, config.NewSnapshot(append(bookinfoConfig(), rs...)), bookinfoRegistry())
	vi := gen1(t, pc, productpageProxy(), ListenerType)[virtualInboundName].(*listenerv3.Listener)
	if err := vi.ValidateAll(); err != nil {
		t.Fatalf("generated listener fails go-control-plane validation: %v", err)
	}
	if _, err := xdsparsetest.ParseListener(vi); err != nil {
		t.Fatalf("mast-proxy NACKs the generated listener: %v", err)
	}
	for _, fc := range vi.GetFilterChains() {
		last := fc.Filters[len(fc.Filters)-1]
		if last.GetName() != hcmFilterName {
			continue
		}
		var m hcmv3.HttpConnectionManager
		if err := last.GetTypedConfig().UnmarshalTo(&m); err != nil {
			t.Fatal(err)
		}
		return m.HttpFilters
	}
	t.Fatal("no HTTP chain")
	return nil
}

func httpFilterNames(fs []*hcmv3.HttpFilter) string {
	var names []string
	for _, f := range fs {
		names = append(names, f.GetName())
	}
	return strings.Join(names, ",")
}

func TestCustomToExtAuthz(t *testing.T) {
	for _, provider := range []string{"sample-ext-authz-http", "sample-ext-authz-grpc"} {
		fs := inboundHTTPFilters(t, provider)
		want := "envoy.filters.http.rbac,envoy.filters.http.ext_authz,envoy.filters.http.rbac,envoy.filters.http.fault,envoy.filters.http.cors,envoy.filters.http.router"
		if got := httpFilterNames(fs); got != want {
			t.Fatalf("%s: http_filters %s, want %s", provider, got, want)
		}
		var shadow rbachttpv3.RBAC
		fs[0].GetTypedConfig().UnmarshalTo(&shadow)
		if shadow.GetRules() != nil || shadow.GetShadowRulesStatPrefix() != "istio_ext_authz_" || shadow.GetShadowRules().GetAction() != rbacv3.RBAC_DENY ||
			shadow.GetShadowRules().GetPolicies()["istio-ext-authz-ns[default]-policy[ext-authz]-rule[0]"] == nil {
			t.Errorf("%s: CUSTOM shadow RBAC: %v", provider, &shadow)
		}
		var ext extauthzv3.ExtAuthz
		fs[1].GetTypedConfig().UnmarshalTo(&ext)
		m := ext.GetFilterEnabledMetadata()
		if m.GetFilter() != "envoy.filters.http.rbac" || m.GetPath()[0].GetKey() != "istio_ext_authz_shadow_effective_policy_id" ||
			m.GetValue().GetStringMatch().GetPrefix() != "istio-ext-authz" {
			t.Errorf("%s: filter_enabled_metadata %v", provider, m)
		}
		switch provider {
		case "sample-ext-authz-grpc":
			g := ext.GetGrpcService()
			if g.GetEnvoyGrpc().GetClusterName() != "outbound|7070||echo.default.svc.cluster.local" ||
				g.GetEnvoyGrpc().GetAuthority() != "outbound_.7070_._.echo.default.svc.cluster.local" ||
				g.GetTimeout().AsDuration().Milliseconds() != 500 || !ext.GetFailureModeAllow() || ext.GetStatusOnError() != nil {
				t.Errorf("gRPC provider: %v", &ext)
			}
		default:
			h := ext.GetHttpService()
			rq, rs := h.GetAuthorizationRequest(), h.GetAuthorizationResponse()
			if h.GetServerUri().GetCluster() != "outbound|9080||details.default.svc.cluster.local" || h.GetPathPrefix() != "/check" ||
				h.GetServerUri().GetTimeout().GetSeconds() != 600 || ext.GetStatusOnError().GetCode() != 503 || ext.GetFailureModeAllow() ||
				rq.GetAllowedHeaders().GetPatterns()[1].GetPrefix() != "x-prefix-" || rq.GetHeadersToAdd()[0].GetKey() != "x-a" ||
				rs.GetAllowedUpstreamHeaders().GetPatterns()[0].GetExact() != "x-ext-authz-check-result" ||
				len(rs.GetAllowedClientHeaders().GetPatterns()) != 2 || rs.GetAllowedClientHeadersOnSuccess().GetPatterns()[0].GetExact() != "set-cookie" ||
				ext.GetWithRequestBody().GetMaxRequestBytes() != 1024 || !ext.GetWithRequestBody().GetAllowPartialMessage() {
				t.Errorf("HTTP provider: %v", &ext)
			}
		}
	}
}

// A provider that is unknown or cannot be resolved fails closed: the
// CUSTOM rules become enforced DENY rules, as istiod builds them.
func TestCustomBadProviderDenies(t *testing.T) {
	for _, provider := range []string{"unknown", "nowhere"} {
		fs := inboundHTTPFilters(t, provider)
		want := "envoy.filters.http.rbac,envoy.filters.http.rbac,envoy.filters.http.fault,envoy.filters.http.cors,envoy.filters.http.router"
		if got := httpFilterNames(fs); got != want {
			t.Fatalf("%s: http_filters %s, want %s", provider, got, want)
		}
		var r rbachttpv3.RBAC
		fs[0].GetTypedConfig().UnmarshalTo(&r)
		if r.GetRules().GetAction() != rbacv3.RBAC_DENY ||
			r.GetRules().GetPolicies()["istio-ext-authz-ns[default]-policy[ext-authz]-rule[0]-deny-due-to-bad-CUSTOM-action"] == nil {
			t.Errorf("%s: %v", provider, &r)
		}
	}
}

// inboundTCPFilters are the network filters of productpage's first inbound
// TCP chain (tcp_proxy) with the CUSTOM policy naming provider.
func inboundTCPFilters(t *testing.T, provider string) []*listenerv3.Filter {
	t.Helper()
	mesh, _, err := model.ParseMeshConfig("mesh.yaml", []byte(extAuthzMesh), model.DefaultMeshConfig())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := config.Decode("authz.yaml", []byte(strings.ReplaceAll(extAuthzPolicy, "%s", provider)))
	if err != nil {
		t.Fatal(err)
	}
	pc := model.NewPushContext("v1", mesh, config.NewSnapshot(append(bookinfoConfig(), rs...)), bookinfoRegistry())
	vi := gen1(t, pc, productpageProxy(), ListenerType)[virtualInboundName].(*listenerv3.Listener)
	if err := vi.ValidateAll(); err != nil {
		t.Fatalf("generated listener fails go-control-plane validation: %v", err)
	}
	if _, err := xdsparsetest.ParseListener(vi); err != nil {
		t.Fatalf("mast-proxy NACKs the generated listener: %v", err)
	}
	for _, fc := range vi.GetFilterChains() {
		if fc.Filters[len(fc.Filters)-1].GetName() == "envoy.filters.network.tcp_proxy" {
			return fc.Filters
		}
	}
	t.Fatal("no TCP chain")
	return nil
}

func networkFilterNames(fs []*listenerv3.Filter) string {
	var names []string
	for _, f := range fs {
		names = append(names, f.GetName())
	}
	return strings.Join(names, ",")
}

// TestCustomOnTCP: a gRPC provider's CUSTOM rules on a TCP chain become
// network RBAC shadow rules marking the connections they match (the
// HTTP-only paths field is ignored, so the rule selects every connection,
// as istiod builds it) and envoy.filters.network.ext_authz gated on that
// mark; an HTTP provider (which cannot check connections) and a bad
// provider deny the connections the rules match.
func TestCustomOnTCP(t *testing.T) {
	fs := inboundTCPFilters(t, "sample-ext-authz-grpc")
	want := "envoy.filters.network.rbac,envoy.filters.network.ext_authz,envoy.filters.network.rbac,envoy.filters.network.tcp_proxy"
	if got := networkFilterNames(fs); !strings.HasSuffix(got, want) {
		t.Fatalf("filters %s, want ...%s", got, want)
	}
	fs = fs[len(fs)-4:]
	var shadow rbacnetv3.RBAC
	fs[0].GetTypedConfig().UnmarshalTo(&shadow)
	rule := shadow.GetShadowRules().GetPolicies()["istio-ext-authz-ns[default]-policy[ext-authz]-rule[0]"]
	if shadow.GetRules() != nil || shadow.GetShadowRulesStatPrefix() != "istio_ext_authz_" || shadow.GetStatPrefix() != "tcp." ||
		shadow.GetShadowRules().GetAction() != rbacv3.RBAC_DENY || rule == nil || !rule.GetPermissions()[0].GetAny() {
		t.Errorf("CUSTOM shadow network RBAC: %v", &shadow)
	}
	var ext netextauthzv3.ExtAuthz
	fs[1].GetTypedConfig().UnmarshalTo(&ext)
	m := ext.GetFilterEnabledMetadata()
	if m.GetFilter() != "envoy.filters.network.rbac" || m.GetPath()[0].GetKey() != "istio_ext_authz_shadow_effective_policy_id" ||
		m.GetValue().GetStringMatch().GetPrefix() != "istio-ext-authz" || ext.GetStatPrefix() != "tcp." || !ext.GetFailureModeAllow() ||
		ext.GetGrpcService().GetEnvoyGrpc().GetClusterName() != "outbound|7070||echo.default.svc.cluster.local" ||
		ext.GetGrpcService().GetTimeout().AsDuration().Milliseconds() != 500 {
		t.Errorf("network ext_authz: %v", &ext)
	}
	for provider, suffix := range map[string]string{"sample-ext-authz-http": "-deny-due-to-CUSTOM-HTTP-provider-on-TCP",
		"unknown": "-deny-due-to-bad-CUSTOM-action", "nowhere": "-deny-due-to-bad-CUSTOM-action"} {
		fs := inboundTCPFilters(t, provider)
		want := "envoy.filters.network.rbac,envoy.filters.network.rbac,envoy.filters.network.tcp_proxy"
		if got := networkFilterNames(fs); !strings.HasSuffix(got, want) || strings.Contains(got, "ext_authz") {
			t.Fatalf("%s: filters %s, want ...%s", provider, got, want)
		}
		var r rbacnetv3.RBAC
		fs[len(fs)-3].GetTypedConfig().UnmarshalTo(&r)
		if r.GetRules().GetAction() != rbacv3.RBAC_DENY || r.GetRules().GetPolicies()["istio-ext-authz-ns[default]-policy[ext-authz]-rule[0]"+suffix] == nil {
			t.Errorf("%s: %v", provider, &r)
		}
	}
}

// A dry-run CUSTOM policy (which validation refuses, as Istio's does) is
// neither enforced nor sent to the authorizer if it reaches mastd anyway:
// istiod before multiple-provider support ignored it the same way.
func TestDryRunCustomIgnored(t *testing.T) {
	mesh, _, err := model.ParseMeshConfig("mesh.yaml", []byte(extAuthzMesh), model.DefaultMeshConfig())
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(strings.ReplaceAll(extAuthzPolicy, "%s", "sample-ext-authz-grpc"),
		"metadata: {name: ext-authz, namespace: default}", "metadata: {name: ext-authz, namespace: default, annotations: {istio.io/dry-run: \"true\"}}", 1)
	rs, err := config.Decode("authz.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	pc := model.NewPushContext("v1", mesh, config.NewSnapshot(append(bookinfoConfig(), rs...)), bookinfoRegistry())
	vi := gen1(t, pc, productpageProxy(), ListenerType)[virtualInboundName].(*listenerv3.Listener)
	for _, fc := range vi.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			if strings.Contains(f.GetName(), "ext_authz") {
				t.Errorf("a dry-run CUSTOM policy made a network ext_authz filter")
			}
			var m hcmv3.HttpConnectionManager
			if f.GetName() != hcmFilterName || f.GetTypedConfig().UnmarshalTo(&m) != nil {
				continue
			}
			if got := httpFilterNames(m.HttpFilters); strings.Contains(got, "ext_authz") || strings.Count(got, "envoy.filters.http.rbac") != 1 {
				t.Errorf("http_filters with a dry-run CUSTOM policy: %s", got)
			}
		}
	}
}
