// Package filtercorpus collects the filter configurations mastd's
// generators produce, for the filters' differential tests: every HTTP and
// network filter typed_config and every typed_per_filter_config of the
// listeners and route configurations generated for Bookinfo (with Istio's
// networking samples and a set of security policies) for a productpage
// sidecar, a reviews sidecar and the ingress gateway. Only tests import it.
package filtercorpus

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/generate"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry/serviceentry"
	bookinfoconfig "github.com/mast-mesh/mast/samples/bookinfo/config"
)

// Security is a set of AuthorizationPolicies and RequestAuthentications
// that reach the generators' RBAC and JWT paths.
const Security = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: productpage-viewer, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"], requestPrincipals: ["issuer.example/*"]}
    - source: {namespaces: ["default"], notPrincipals: ["*/sa/bad"], remoteIpBlocks: ["192.168.0.0/16"], notIpBlocks: ["10.1.0.0/16"]}
    to:
    - operation: {methods: ["GET", "HEAD"], paths: ["/productpage", "/static/*", "/api/v1/products/{*}", "/x/{**}"], hosts: ["bookinfo.example", "*.example"], notPaths: ["*.secret"], ports: ["9080"]}
    when:
    - {key: "request.auth.claims[groups]", values: ["admins"]}
    - {key: "request.auth.claims[nested][level]", values: ["a*"]}
    - {key: "request.headers[x-user]", values: ["jason", "*son"], notValues: ["bad*"]}
    - {key: destination.port, values: ["9080"]}
    - {key: source.namespace, values: ["default"]}
    - {key: request.auth.audiences, values: ["bookinfo"]}
    - {key: request.auth.presenter, values: ["web"]}
    - {key: source.ip, values: ["10.0.0.1"]}
    - {key: connection.sni, values: ["productpage.default.svc.cluster.local"]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: istio-system}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"], ports: ["9080"], notMethods: ["GET"]}}]
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
metadata: {name: audit, namespace: default}
spec:
  action: AUDIT
  rules: [{to: [{operation: {paths: ["/audit"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: tcp-only, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  rules: [{from: [{source: {principals: ["cluster.local/ns/default/sa/bookinfo-productpage"]}}], to: [{operation: {ports: ["9080"]}}]}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  jwtRules:
  - issuer: issuer.example
    jwks: '{"keys":[{"kty":"RSA","e":"AQAB","n":"xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV_xFj9VswgsCg4R6otmg5PV2He95lZdHtOcU5DXIg_pbhLdKXbi66GlVeK6ABZOUW3WYtnNHD-91gVuoeJT_DwtGGcp4ignkgXfkiEm4sw-4sfb4qdt5oLbyVpmW6x9cfa7vs2WTfURiCrBoUqgBo_-4WTiULmmHSGZHOjzwa8WtrtOQGsAFjIbno85jp6MnGGGZPYZbDAa_b3y5u-YpW7ypZrvD8BgtKVjgtQgZhLAGezMt0ua3DRrWnKqTZ0BJ_EyxOGuHJrLsn00fnMQ"}]}'
    audiences: ["bookinfo"]
    fromHeaders: [{name: x-jwt, prefix: "Bearer "}]
    fromParams: ["token"]
    outputPayloadToHeader: x-jwt-payload
    forwardOriginalToken: true
    outputClaimToHeaders: [{header: x-sub, claim: sub}]
  - issuer: other.example
    jwksUri: https://other.example/jwks
    fromCookies: ["session"]
`

// Configs returns the distinct typed_config values by type URL.
func Configs(t testing.TB, extraYAML ...string) map[string][][]byte {
	t.Helper()
	base := map[string][]byte{}
	err := fs.WalkDir(bookinfoconfig.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".yaml" {
			return err
		}
		b, err := fs.ReadFile(bookinfoconfig.Files, p)
		base[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, y := range append([]string{Security}, extraYAML...) {
		base["extra"+string(rune('a'+i))+".yaml"] = []byte(y)
	}
	variants := []map[string][]byte{base}
	_, self, _, _ := runtime.Caller(0)
	compat, _ := filepath.Glob(filepath.Join(filepath.Dir(self), "../../../../../shared/compat/istio/bookinfo/networking/*.yaml"))
	for _, f := range compat {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v := map[string][]byte{"compat/" + filepath.Base(f): b}
		for k, x := range base {
			v[k] = x
		}
		variants = append(variants, v)
	}
	nodes := []*corev3.Node{
		node("sidecar~127.0.1.1~productpage-v1.default~default.svc.cluster.local", map[string]string{"app": "productpage", "version": "v1"}, "bookinfo-productpage"),
		node("sidecar~127.0.1.4~reviews-v2.default~default.svc.cluster.local", map[string]string{"app": "reviews", "version": "v2"}, "bookinfo-reviews"),
		node("router~127.0.2.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local", map[string]string{"istio": "ingressgateway"}, "istio-ingressgateway"),
	}
	out := map[string][][]byte{}
	seen := map[string]bool{}
	add := func(a *anypb.Any) {
		if a == nil || seen[a.GetTypeUrl()+"\x00"+string(a.GetValue())] {
			return
		}
		seen[a.GetTypeUrl()+"\x00"+string(a.GetValue())] = true
		out[a.GetTypeUrl()] = append(out[a.GetTypeUrl()], a.GetValue())
	}
	addRoutes := func(rc *routev3.RouteConfiguration) {
		for _, vh := range rc.GetVirtualHosts() {
			for _, a := range vh.GetTypedPerFilterConfig() {
				add(a)
			}
			for _, r := range vh.GetRoutes() {
				for _, a := range r.GetTypedPerFilterConfig() {
					add(a)
				}
			}
		}
	}
	for _, files := range variants {
		names := make([]string, 0, len(files))
		for f := range files {
			names = append(names, f)
		}
		sort.Strings(names)
		var rs []config.Resource
		for _, f := range names {
			got, problems := config.Load(f, files[f])
			if problems.HasErrors() {
				if strings.HasPrefix(f, "extra") {
					t.Fatalf("%s: %v", f, problems)
				}
				continue
			}
			rs = append(rs, got...)
		}
		mesh := model.DefaultMeshConfig()
		snap := config.NewSnapshot(rs)
		reg := serviceentry.Build(snap, serviceentry.Options{TrustDomain: mesh.TrustDomain})
		pc := model.NewPushContext("corpus", mesh, snap, reg)
		for _, n := range nodes {
			p, err := model.ParseNode(n)
			if err != nil {
				t.Fatal(err)
			}
			for _, typ := range []string{generate.ListenerType, generate.RouteType} {
				got, err := generate.Generate(pc, p, typ, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range got {
					switch m := r.Resource.(type) {
					case *routev3.RouteConfiguration:
						addRoutes(m)
					case *listenerv3.Listener:
						for _, fc := range append(m.GetFilterChains(), m.GetDefaultFilterChain()) {
							for _, f := range fc.GetFilters() {
								add(f.GetTypedConfig())
								var hcm hcmv3.HttpConnectionManager
								if f.GetTypedConfig().MessageIs(&hcm) && f.GetTypedConfig().UnmarshalTo(&hcm) == nil {
									for _, hf := range hcm.GetHttpFilters() {
										add(hf.GetTypedConfig())
									}
									addRoutes(hcm.GetRouteConfig())
								}
							}
						}
					}
				}
			}
		}
	}
	// Deterministic order within a type.
	for k := range out {
		sort.Slice(out[k], func(i, j int) bool { return string(out[k][i]) < string(out[k][j]) })
	}
	return out
}

func node(id string, labels map[string]string, sa string) *corev3.Node {
	lf := map[string]any{}
	for k, v := range labels {
		lf[k] = v
	}
	parts := strings.Split(id, "~")
	name, ns, _ := strings.Cut(parts[2], ".")
	md, _ := structpb.NewStruct(map[string]any{"NAME": name, "NAMESPACE": ns, "INSTANCE_IPS": parts[1], "INTERCEPTION_MODE": "NONE",
		"SERVICE_ACCOUNT": sa, "LABELS": lf})
	return &corev3.Node{Id: id, Cluster: name, Metadata: md}
}
