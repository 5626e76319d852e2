package install

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"helm.sh/helm/v4/pkg/strvals"
	admv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/mast-mesh/mast/internal/inject"
)

const chartDir = "../../../deploy/helm/mast"

// TestRenderMatchesHelm renders the chart on disk the way `helm template
// --namespace istio-system --set ...` does (Helm's loader, engine and
// --set parser, called directly: Debian ships no helm binary) and compares
// every object with `mast manifest generate`'s (the embedded copy, through
// Options).
func TestRenderMatchesHelm(t *testing.T) {
	sets := []string{"mastd.replicas=2,sidecarInjector.holdApplicationUntilProxyStarts=true", "sidecarInjector.proxyImage=registry.example/mast-proxy:v1"}
	c, err := loader.LoadDir(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]any{}
	for _, s := range sets {
		if err := strvals.ParseInto(s, vals); err != nil {
			t.Fatal(err)
		}
	}
	rv, err := util.ToRenderValues(c, vals, common.ReleaseOptions{Name: "mast", Namespace: "istio-system", IsInstall: true, Revision: 1}, common.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(c, rv)
	if err != nil {
		t.Fatal(err)
	}
	helmObjs := map[string]map[string]any{}
	add := func(data string) {
		for _, doc := range strings.Split(data, "\n---") {
			var m map[string]any
			if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
				t.Fatal(err)
			}
			if len(m) == 0 {
				continue
			}
			md := m["metadata"].(map[string]any)
			ns, _ := md["namespace"].(string)
			helmObjs[m["kind"].(string)+"/"+ns+"/"+md["name"].(string)] = m
		}
	}
	for _, data := range files {
		add(data)
	}
	for _, crd := range c.CRDObjects() {
		add(string(crd.File.Data))
	}

	mc, err := LoadChart()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Render(mc, Options{Namespace: "istio-system", Set: sets})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != len(helmObjs) {
		t.Errorf("mast rendered %d objects, Helm %d", len(objs), len(helmObjs))
	}
	for _, o := range objs {
		key := o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName()
		h, ok := helmObjs[key]
		if !ok {
			t.Errorf("%s: not rendered by Helm", key)
			continue
		}
		if !reflect.DeepEqual(h, o.Object) {
			t.Errorf("%s differs from Helm's", key)
		}
	}

	// The typed objects decode strictly, and the values took effect.
	var dep appsv1.Deployment
	var cm corev1.ConfigMap
	var mwc admv1.MutatingWebhookConfiguration
	for _, o := range objs {
		var dst any
		switch o.GetKind() {
		case "Deployment":
			dst = &dep
		case "ConfigMap":
			dst = &cm
		case "MutatingWebhookConfiguration":
			dst = &mwc
		default:
			continue
		}
		b, _ := json.Marshal(o.Object)
		if err := yaml.UnmarshalStrict(b, dst); err != nil {
			t.Errorf("%s: %v", o.Source, err)
		}
	}
	if *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %d", *dep.Spec.Replicas)
	}
	ic, err := inject.ParseConfig([]byte(cm.Data["values.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	if !ic.HoldApplicationUntilProxyStarts || ic.ProxyImage != "registry.example/mast-proxy:v1" {
		t.Errorf("injection values %+v", ic)
	}
	if len(mwc.Webhooks) != 3 {
		t.Errorf("%d injection webhooks", len(mwc.Webhooks))
	}
}

// TestChartDefaultsAreInjectDefaults keeps values.yaml's sidecarInjector
// and inject.DefaultConfig the same.
func TestChartDefaultsAreInjectDefaults(t *testing.T) {
	data, err := os.ReadFile(chartDir + "/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		SidecarInjector json.RawMessage `json:"sidecarInjector"`
	}
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	got, err := inject.ParseConfig(v.SidecarInjector)
	if err != nil {
		t.Fatal(err)
	}
	if want := inject.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("values.yaml sidecarInjector\n%+v\ninject.DefaultConfig\n%+v", got, want)
	}
}

func TestRenderErrors(t *testing.T) {
	c, err := LoadChart()
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range []string{"mastd.replica=2", "nope=1", "sidecarInjector.proxyimage=x"} {
		if _, err := Render(c, Options{Set: []string{set}}); err == nil || !strings.Contains(err.Error(), "unknown key") {
			t.Errorf("--set %s: %v", set, err)
		}
	}
	objs, err := Render(c, Options{Namespace: "mesh"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Manifest(objs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(m, []byte("namespace: mesh\n")) || bytes.Contains(m, []byte("istio-system")) && !bytes.Contains(m, []byte("istiod.istio-system.svc")) {
		t.Error("namespace not applied")
	}
}

// TestChartCRDsCurrent keeps the chart's CRDs equal to deploy/crds.yaml,
// which is generated from istio.io/api (internal/kube/crdgen). Fix with
// cp deploy/crds.yaml deploy/helm/mast/crds/crds.yaml.
func TestChartCRDsCurrent(t *testing.T) {
	want, err := os.ReadFile("../../../deploy/crds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(chartDir + "/crds/crds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("deploy/helm/mast/crds/crds.yaml is stale: cp deploy/crds.yaml deploy/helm/mast/crds/crds.yaml")
	}
}
