package analyze

import (
	"strings"
	"testing"

	meshconfig "istio.io/api/mesh/v1alpha1"
)

// authzTCPCluster: workload db (injected) behind Service db with a TCP port
// (5432) and an HTTP port (8080), and AuthorizationPolicies whose rules
// have HTTP-only fields.
const authzTCPCluster = `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: shop, labels: {app: db}}
spec: {containers: [{name: db, image: postgres}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  selector: {app: db}
  ports: [{name: tcp-postgres, port: 5432, targetPort: 15432}, {name: http-admin, port: 8080}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-get, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  action: ALLOW
  rules:
  - to: [{operation: {methods: ["GET"]}}]
  - from: [{source: {namespaces: ["shop"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: shop}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin"], ports: ["8080"]}}]
  - from: [{source: {requestPrincipals: ["*"]}}]
    when: [{key: "request.headers[x-token]", values: ["bad"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-http, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  action: CUSTOM
  provider: {name: authz-http}
  rules:
  - to: [{operation: {ports: ["15432"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-grpc, namespace: shop}
spec:
  action: CUSTOM
  provider: {name: authz-grpc}
  rules:
  - to: [{operation: {paths: ["/api"]}}]
`

// TestAuthzTCPPorts: istiod's enforcement of HTTP-only fields on a
// workload's TCP port (an ALLOW rule is dropped; DENY and CUSTOM rules
// lose the field and match more), an HTTP provider on a TCP port, and two
// CUSTOM providers on one workload, named with their policies.
func TestAuthzTCPPorts(t *testing.T) {
	in := NewInput()
	in.Add("cluster.yaml", []byte(authzTCPCluster))
	in.Mesh.ExtensionProviders = []*meshconfig.MeshConfig_ExtensionProvider{
		{Name: "authz-http", Provider: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp{
			EnvoyExtAuthzHttp: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider{Service: "a", Port: 80}}},
		{Name: "authz-grpc", Provider: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc{
			EnvoyExtAuthzGrpc: &meshconfig.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider{Service: "a", Port: 90}}},
	}
	var got []string
	for _, m := range Analyze(in) {
		if strings.HasPrefix(m.Type.Code, "MST") {
			got = append(got, m.String())
		}
	}
	want := []string{
		"Warning [MST0002] (AuthorizationPolicy shop/allow-get cluster.yaml:17) Rule 0 uses HTTP-only fields (methods) and applies to TCP port 15432 (Service shop/db port tcp-postgres): Istio leaves the whole rule out on TCP, so it allows no connection to that port.",
		"Warning [MST0002] (AuthorizationPolicy shop/deny-admin cluster.yaml:27) Rule 1 uses HTTP-only fields (requestPrincipals, when request.headers[x-token]) and applies to TCP port 15432 (Service shop/db port tcp-postgres): Istio ignores these fields on TCP, so this DENY rule matches every connection to that port its other fields match.",
		"Warning [MST0002] (AuthorizationPolicy shop/ext-grpc cluster.yaml:47) Rule 0 uses HTTP-only fields (paths) and applies to TCP port 15432 (Service shop/db port tcp-postgres): Istio ignores these fields on TCP, so this CUSTOM rule matches every connection to that port its other fields match.",
		"Error [MST0003] (AuthorizationPolicy shop/ext-grpc cluster.yaml:47) The CUSTOM AuthorizationPolicies shop/ext-grpc (authz-grpc), shop/ext-http (authz-http) select workload shop/db-0 with different providers (authz-grpc, authz-http); one provider per workload is supported, so the requests and connections these policies select on it are denied.",
		"Error [MST0003] (AuthorizationPolicy shop/ext-http cluster.yaml:37) The CUSTOM AuthorizationPolicies shop/ext-grpc (authz-grpc), shop/ext-http (authz-http) select workload shop/db-0 with different providers (authz-grpc, authz-http); one provider per workload is supported, so the requests and connections these policies select on it are denied.",
		"Warning [MST0004] (AuthorizationPolicy shop/ext-http cluster.yaml:37) The CUSTOM provider \"authz-http\" is an HTTP provider and the policy applies to TCP port 15432 (Service shop/db port tcp-postgres): connections cannot be checked over HTTP; istiod leaves them unchecked, Mast denies the connections the rules select.",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
