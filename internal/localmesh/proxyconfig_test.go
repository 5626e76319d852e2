package localmesh

import (
	"slices"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/config"
)

// proxyConfigs: Istio's precedence levels, each overriding the one before.
const proxyConfigs = `apiVersion: networking.istio.io/v1beta1
kind: ProxyConfig
metadata: {name: mesh, namespace: istio-system}
spec:
  concurrency: 3
  environmentVariables: {ISTIO_META_LEVEL: mesh, MESH_ONLY: "yes"}
---
apiVersion: networking.istio.io/v1beta1
kind: ProxyConfig
metadata: {name: ns, namespace: default}
spec:
  environmentVariables: {ISTIO_META_LEVEL: namespace}
---
apiVersion: networking.istio.io/v1beta1
kind: ProxyConfig
metadata: {name: reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  concurrency: 1
  environmentVariables: {ISTIO_META_LEVEL: workload}
  image: {imageType: distroless}
`

// TestPlanAppliesProxyConfig: the local mesh starts each proxy with the
// environment its ProxyConfigs give (root namespace < namespace < workload
// selector < the WorkloadEntry's proxy.istio.io/config annotation),
// concurrency as GOMAXPROCS.
func TestPlanAppliesProxyConfig(t *testing.T) {
	rs, problems := config.Load("proxyconfig.yaml", []byte(proxyConfigs))
	if problems.HasErrors() {
		t.Fatal(problems)
	}
	snap := bookinfoSnapshot(t)
	all := append(snap.All(), rs...)
	// ratings-v1 carries the annotation.
	for i, r := range all {
		if r.Kind == config.WorkloadEntry && r.Name == "ratings-v1" {
			r.Annotations = map[string]string{"proxy.istio.io/config": "concurrency: 2\nproxyMetadata: {ISTIO_META_LEVEL: annotation}\n"}
			all[i] = r
		}
	}
	plan := func(rs []config.Resource) (map[string][]string, error) {
		procs, err := Plan(config.NewSnapshot(rs), Options{GatewayIP: "127.0.0.1", Bookinfo: true})
		out := map[string][]string{}
		for _, p := range procs {
			out[p.Name] = p.Env
		}
		return out, err
	}
	env, err := plan(all)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{
		"istio-ingressgateway":   {"GOMAXPROCS=3", "ISTIO_META_LEVEL=mesh", "MESH_ONLY=yes"},
		"productpage-v1-sidecar": {"GOMAXPROCS=3", "ISTIO_META_LEVEL=namespace", "MESH_ONLY=yes"},
		"reviews-v2-sidecar":     {"GOMAXPROCS=1", "ISTIO_META_LEVEL=workload", "MESH_ONLY=yes"},
		"ratings-v1-sidecar":     {"GOMAXPROCS=2", "ISTIO_META_LEVEL=annotation", "MESH_ONLY=yes"},
	} {
		if !slices.Equal(env[name], want) {
			t.Errorf("%s env %v, want %v", name, env[name], want)
		}
	}
	if e := env["reviews-v2"]; slices.ContainsFunc(e, func(s string) bool { return strings.HasPrefix(s, "GOMAXPROCS") }) {
		t.Errorf("the application got the proxy's environment: %v", e)
	}
	// An annotation field the local mesh does not apply is refused by name.
	for i, r := range all {
		if r.Kind == config.WorkloadEntry && r.Name == "ratings-v1" {
			r.Annotations = map[string]string{"proxy.istio.io/config": "drainDuration: 5s\n"}
			all[i] = r
		}
	}
	if _, err := plan(all); err == nil || !strings.Contains(err.Error(), "ratings-v1") || !strings.Contains(err.Error(), "field drainDuration is not applied by the local mesh") {
		t.Errorf("unapplied annotation field: %v", err)
	}
}
