package envoyfilter

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
	"sigs.k8s.io/yaml"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

func envoyFilter(t *testing.T, ns, name, spec string) config.Resource {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	ef := &networking.EnvoyFilter{}
	if err := protojson.Unmarshal(js, ef); err != nil {
		t.Fatal(err)
	}
	return config.Resource{Meta: config.Meta{Kind: config.EnvoyFilter, Name: name, Namespace: ns}, Spec: ef}
}

// timeoutPatch sets the connect timeout of every cluster to secs.
func timeoutPatch(selector string, priority int, secs string) string {
	s := "priority: " + itoa(priority) + "\n"
	if selector != "" {
		s += "workloadSelector: {labels: {" + selector + "}}\n"
	}
	return s + `configPatches:
- applyTo: CLUSTER
  patch: {operation: MERGE, value: {connect_timeout: ` + secs + `s}}
`
}

func itoa(n int) string {
	b, _ := yaml.Marshal(n)
	return strings.TrimSpace(string(b))
}

func TestSelectionAndOrder(t *testing.T) {
	shared := &clusterv3.Cluster{Name: "outbound|80||a.default.svc.cluster.local", ConnectTimeout: durationpb.New(10e9)}
	gen := func(*model.PushContext, *model.Proxy, string, []string) ([]model.XDSResource, error) {
		return []model.XDSResource{{Name: shared.Name, Resource: shared}}, nil
	}
	var logs bytes.Buffer
	a := New(Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	wrapped := a.Wrap(gen)
	timeout := func(t *testing.T, pc *model.PushContext, p *model.Proxy) float64 {
		t.Helper()
		rs, err := wrapped(pc, p, clusterType, nil)
		if err != nil || len(rs) != 1 {
			t.Fatal(rs, err)
		}
		return rs[0].Resource.(*clusterv3.Cluster).GetConnectTimeout().AsDuration().Seconds()
	}
	app := &model.Proxy{ID: "sidecar~10.0.0.1~app-1.default~default.svc.cluster.local", Type: model.SidecarProxy, Namespace: "default", Labels: map[string]string{"app": "a"}}
	other := &model.Proxy{ID: "sidecar~10.0.0.2~b-1.prod~prod.svc.cluster.local", Type: model.SidecarProxy, Namespace: "prod", Labels: map[string]string{"app": "b"}}
	push := func(rs ...config.Resource) *model.PushContext {
		return model.NewPushContext("v1", model.MeshConfig{}, config.NewSnapshot(rs), &registry.Snapshot{})
	}
	for _, tc := range []struct {
		name       string
		rs         []config.Resource
		app, other float64
	}{
		{"none", nil, 10, 10},
		{"namespace-wide: its namespace only", []config.Resource{envoyFilter(t, "default", "ns", timeoutPatch("", 0, "1"))}, 1, 10},
		{"root namespace: mesh-wide", []config.Resource{envoyFilter(t, "istio-system", "root", timeoutPatch("", 0, "2"))}, 2, 2},
		{"root namespace with a selector: matching workloads everywhere", []config.Resource{envoyFilter(t, "istio-system", "root", timeoutPatch("app: b", 0, "2"))}, 10, 2},
		{"selector in the namespace", []config.Resource{envoyFilter(t, "default", "sel", timeoutPatch("app: b", 0, "1"))}, 10, 10},
		{"root before the namespace at equal priority: the namespace's merge wins", []config.Resource{
			envoyFilter(t, "default", "aaa", timeoutPatch("", 0, "1")), envoyFilter(t, "istio-system", "zzz", timeoutPatch("", 0, "2"))}, 1, 2},
		{"priority orders first", []config.Resource{
			envoyFilter(t, "default", "late", timeoutPatch("", 5, "1")), envoyFilter(t, "default", "early", timeoutPatch("", -5, "3"))}, 1, 10},
		{"name orders equal priorities", []config.Resource{
			envoyFilter(t, "default", "b", timeoutPatch("", 0, "4")), envoyFilter(t, "default", "a", timeoutPatch("", 0, "3"))}, 4, 10},
		{"proxyVersion", []config.Resource{envoyFilter(t, "istio-system", "v", `configPatches:
- applyTo: CLUSTER
  match: {proxy: {proxyVersion: '^1\.2.*'}}
  patch: {operation: MERGE, value: {connect_timeout: 5s}}`)}, 5, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc := push(tc.rs...)
			app.Metadata = map[string]string{"ISTIO_VERSION": "1.2.3"}
			other.Metadata = map[string]string{"ISTIO_VERSION": "1.3.0"}
			if got := timeout(t, pc, app); got != tc.app {
				t.Errorf("app: connect timeout %vs, want %vs", got, tc.app)
			}
			if got := timeout(t, pc, other); got != tc.other {
				t.Errorf("other: connect timeout %vs, want %vs", got, tc.other)
			}
			if shared.GetConnectTimeout().AsDuration().Seconds() != 10 {
				t.Fatalf("the generator's (cached) cluster was changed: %v", shared)
			}
		})
	}
}

func TestUnmatchedPatchWarnsOnce(t *testing.T) {
	shared := &clusterv3.Cluster{Name: "outbound|80||a.default.svc.cluster.local"}
	gen := func(*model.PushContext, *model.Proxy, string, []string) ([]model.XDSResource, error) {
		return []model.XDSResource{{Name: shared.Name, Resource: shared}}, nil
	}
	var logs bytes.Buffer
	wrapped := New(Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}).Wrap(gen)
	p := &model.Proxy{ID: "sidecar~10.0.0.1~app-1.default~default.svc.cluster.local", Type: model.SidecarProxy, Namespace: "default"}
	ef := envoyFilter(t, "default", "miss", `configPatches:
- applyTo: CLUSTER
  match: {cluster: {service: a.default.svc.cluster.local}}
  patch: {operation: MERGE, value: {connect_timeout: 1s}}
- applyTo: CLUSTER
  match: {cluster: {service: nothing.example}}
  patch: {operation: MERGE, value: {connect_timeout: 1s}}`)
	for i := 0; i < 3; i++ {
		pc := model.NewPushContext("v"+itoa(i), model.MeshConfig{}, config.NewSnapshot([]config.Resource{ef}), &registry.Snapshot{})
		if _, err := wrapped(pc, p, clusterType, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "matched nothing"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "envoyfilter=default/miss patch=1 applyTo=CLUSTER") {
		t.Fatalf("warning does not name the patch:\n%s", logs.String())
	}
	// A new version of the EnvoyFilter is warned about again.
	ef2 := ef
	ef2.Spec = proto.Clone(ef.Spec)
	pc := model.NewPushContext("v9", model.MeshConfig{}, config.NewSnapshot([]config.Resource{ef2}), &registry.Snapshot{})
	if _, err := wrapped(pc, p, clusterType, nil); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "matched nothing"); n != 2 {
		t.Fatalf("%d warnings, want 2", n)
	}
}
