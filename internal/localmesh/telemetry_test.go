package localmesh

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

func TestPrometheusConfig(t *testing.T) {
	procs := []Proc{
		{Name: "reviews-v2-sidecar", Program: "mast-proxy", Admin: "127.0.1.4:15000", ProxyID: "sidecar~127.0.1.4~reviews-v2.default~default.svc.cluster.local"},
		{Name: "reviews-v2", Program: "bookinfo"},
		{Name: "istio-ingressgateway", Program: "mast-proxy", Admin: "127.0.0.1:15000", ProxyID: "router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local"},
	}
	cfg := PrometheusConfig(procs, "127.0.0.1:15014")
	for _, want := range []string{"- targets: ['127.0.0.1:15090']\n    labels: {pod: 'istio-ingressgateway', namespace: 'istio-system'}",
		"- targets: ['127.0.1.4:15090']\n    labels: {pod: 'reviews-v2', namespace: 'default'}", "metrics_path: /stats/prometheus",
		"job_name: pilot\n  static_configs:\n  - targets: ['127.0.0.1:15014']"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Count(cfg, "targets:") != 3 {
		t.Errorf("want 2 proxies and mastd:\n%s", cfg)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool (apt-get install -y prometheus) would check the file")
	}
	p := filepath.Join(t.TempDir(), "prometheus.yml")
	os.WriteFile(p, []byte(cfg), 0o644)
	if out, err := exec.Command(promtool, "check", "config", p).CombinedOutput(); err != nil {
		t.Fatalf("promtool rejects the config: %v\n%s", err, out)
	}
}

func TestParseAddons(t *testing.T) {
	if a, err := ParseAddons("prometheus,jaeger"); err != nil || len(a) != 2 {
		t.Fatalf("%v %v", a, err)
	}
	if _, err := ParseAddons("grafana"); err == nil || !strings.Contains(err.Error(), `"grafana"`) {
		t.Fatalf("unknown addon: %v", err)
	}
}

// mast up's MeshConfig parses with no warning, with the stdout-json access
// log provider always and the Jaeger providers with the addon.
func TestMeshConfigProviders(t *testing.T) {
	for _, addons := range [][]string{nil, {AddonJaeger}} {
		p, err := writeMeshConfig(t.TempDir(), addons, "policyCheckFailOpen: true\n")
		if err != nil {
			t.Fatal(err)
		}
		mc, warnings, err := model.LoadMeshConfigFile(p, model.MeshConfig{})
		if err != nil || len(warnings) > 0 {
			t.Fatalf("addons %v: %v %v", addons, err, warnings)
		}
		if fl := mc.ExtensionProvider("stdout-json").GetEnvoyFileAccessLog(); fl.GetPath() != "/dev/stdout" || fl.GetLogFormat().GetLabels() == nil {
			t.Errorf("addons %v: stdout-json provider %v", addons, fl)
		}
		jaeger := mc.ExtensionProvider("jaeger").GetOpentelemetry() != nil && mc.ExtensionProvider("zipkin").GetZipkin() != nil
		if jaeger != (addons != nil) || (len(mc.DefaultTracingProviders) == 1) != (addons != nil) {
			t.Errorf("addons %v: jaeger providers %v, default tracing %v", addons, jaeger, mc.DefaultTracingProviders)
		}
	}
}
