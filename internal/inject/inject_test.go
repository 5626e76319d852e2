package inject

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	networkingbeta "istio.io/api/networking/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// bookinfo is Istio's own Bookinfo manifest, kept unmodified outside the tree.
const bookinfo = "../../../shared/compat/istio/bookinfo/platform/kube/bookinfo.yaml"

// TestBookinfoGolden injects Istio's unmodified bookinfo.yaml as
// `mast kube-inject -f` does and compares with the golden output.
func TestBookinfoGolden(t *testing.T) {
	in, err := os.ReadFile(bookinfo)
	if err != nil {
		t.Skipf("Istio's Bookinfo corpus is absent (%v); it lives in ../shared/compat/istio", err)
	}
	cfg := DefaultConfig()
	var out bytes.Buffer
	warns, err := Manifest(&cfg, "default", bytes.NewReader(in), &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) > 0 {
		t.Errorf("warnings for Bookinfo: %q", warns)
	}
	golden := filepath.Join("testdata", "bookinfo.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("kube-inject output differs from %s (rerun with -update and review the diff)", golden)
	}
	// Every Deployment got the sidecar; Services and ServiceAccounts did not change.
	if n := strings.Count(out.String(), "name: "+ProxyContainerName+"\n"); n != 6 {
		t.Errorf("%d sidecars injected, want 6 (one per Bookinfo Deployment)", n)
	}
	// Injecting the output again changes nothing (already injected).
	var again bytes.Buffer
	if _, err := Manifest(&cfg, "default", bytes.NewReader(out.Bytes()), &again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), out.Bytes()) {
		t.Error("injecting an injected manifest changed it")
	}
}

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "details-v1-abc", Namespace: "default",
			Labels: map[string]string{"app": "details", "version": "v1"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "bookinfo-details",
			Containers: []corev1.Container{{
				Name: "details", Image: "details:1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9080}},
				LivenessProbe: &corev1.Probe{
					ProbeHandler:   corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/foo", Port: intstr.FromString("http")}},
					TimeoutSeconds: 1, PeriodSeconds: 5,
				},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:   corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9080)}},
					TimeoutSeconds: 2,
				},
				StartupProbe: &corev1.Probe{
					ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}},
				},
			}},
		},
	}
}

func inject(t *testing.T, p *corev1.Pod, ann map[string]string) (*corev1.Pod, Result, error) {
	t.Helper()
	p = p.DeepCopy()
	if ann != nil {
		p.Annotations = ann
	}
	cfg := DefaultConfig()
	res, err := Pod(&cfg, "default", "details-v1", &p.ObjectMeta, &p.Spec)
	return p, res, err
}

// injectWith is inject with cfg.
func injectWith(t *testing.T, cfg *Config, p *corev1.Pod, ann map[string]string) (*corev1.Pod, Result, error) {
	t.Helper()
	p = p.DeepCopy()
	if ann != nil {
		p.Annotations = ann
	}
	res, err := Pod(cfg, "default", "details-v1", &p.ObjectMeta, &p.Spec)
	return p, res, err
}

func container(p *corev1.Pod, name string) *corev1.Container {
	for i := range p.Spec.Containers {
		if p.Spec.Containers[i].Name == name {
			return &p.Spec.Containers[i]
		}
	}
	for i := range p.Spec.InitContainers {
		if p.Spec.InitContainers[i].Name == name {
			return &p.Spec.InitContainers[i]
		}
	}
	return nil
}

func env(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// TestDecision follows Istio's injection policy documentation: the
// sidecar.istio.io/inject label or annotation, host networking, pods
// already injected.
func TestDecision(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*corev1.Pod)
		want   bool
	}{
		{"default", func(*corev1.Pod) {}, true},
		{"annotation false", func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationInject: "false"} }, false},
		{"annotation n", func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationInject: "n"} }, false},
		{"label false", func(p *corev1.Pod) { p.Labels[AnnotationInject] = "false" }, false},
		{"label true wins over annotation false", func(p *corev1.Pod) {
			p.Labels[AnnotationInject] = "true"
			p.Annotations = map[string]string{AnnotationInject: "false"}
		}, true},
		{"not a boolean", func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationInject: "maybe"} }, false},
		{"hostNetwork", func(p *corev1.Pod) { p.Spec.HostNetwork = true }, false},
		{"already has istio-proxy", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: ProxyContainerName})
		}, false},
		{"already injected", func(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationStatus: "{}"} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPod()
			tc.mutate(p)
			got, res, err := inject(t, p, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Injected != tc.want {
				t.Fatalf("injected = %v (%s), want %v", res.Injected, res.Reason, tc.want)
			}
			if !tc.want && (len(got.Spec.InitContainers) > 0 || len(got.Spec.Containers) != len(p.Spec.Containers)) {
				t.Error("pod changed although not injected")
			}
		})
	}
	cfg := DefaultConfig()
	p := testPod()
	if res, _ := Pod(&cfg, "kube-system", "", &p.ObjectMeta, &p.Spec); res.Injected {
		t.Error("kube-system pod injected")
	}
	if !NamespaceEnabled(map[string]string{"istio-injection": "enabled"}) || !NamespaceEnabled(map[string]string{"mast-injection": "enabled"}) ||
		NamespaceEnabled(map[string]string{"istio-injection": "disabled"}) {
		t.Error("NamespaceEnabled")
	}
}

// TestIptablesArgs checks the init container against Istio's
// istio-iptables arguments and the traffic.sidecar.istio.io annotations.
func TestIptablesArgs(t *testing.T) {
	p, _, err := inject(t, testPod(), nil)
	if err != nil {
		t.Fatal(err)
	}
	init := container(p, InitContainerName)
	want := []string{"iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"}
	if !slices.Equal(init.Args, want) {
		t.Errorf("default args\n got %q\nwant %q", init.Args, want)
	}
	caps := init.SecurityContext.Capabilities.Add
	if !slices.Equal(caps, []corev1.Capability{"NET_ADMIN", "NET_RAW"}) || *init.SecurityContext.RunAsUser != 0 {
		t.Errorf("init security context %+v", init.SecurityContext)
	}
	p, _, err = inject(t, testPod(), map[string]string{
		annotationIncludeOutboundIPRanges: "10.96.0.0/12,192.168.0.0/16",
		annotationExcludeOutboundIPRanges: "10.96.0.1/32",
		annotationIncludeInboundPorts:     "9080,9443",
		annotationExcludeInboundPorts:     "8081",
		annotationExcludeOutboundPorts:    "5432,6379",
		annotationIncludeOutboundPorts:    "443",
		annotationExcludeInterfaces:       "eth1",
	})
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
		"-i", "10.96.0.0/12,192.168.0.0/16", "-x", "10.96.0.1/32", "-b", "9080,9443", "-d", "15090,15021,15020,8081",
		"-q", "443", "-o", "5432,6379", "-c", "eth1"}
	if got := container(p, InitContainerName).Args; !slices.Equal(got, want) {
		t.Errorf("annotated args\n got %q\nwant %q", got, want)
	}
	for ann, bad := range map[string]string{
		annotationExcludeOutboundPorts:    "5432,http",
		annotationIncludeOutboundIPRanges: "10.0.0.0/33",
		annotationInterceptionMode:        "TPROXY",
		annotationProxyCPU:                "lots",
		annotationProxyConfig:             "holdApplicationUntilProxyStarts: maybe",
		annotationRewriteProbers:          "sometimes",
	} {
		if _, _, err := inject(t, testPod(), map[string]string{ann: bad}); err == nil {
			t.Errorf("%s=%q accepted", ann, bad)
		}
	}
}

// TestProbeRewrite follows Istio's "Health Checking of Istio Services":
// HTTP and TCP probes go to the sidecar's /app-health/ on 15020, the
// originals travel in ISTIO_KUBE_APP_PROBERS with named ports resolved;
// exec probes stay.
func TestProbeRewrite(t *testing.T) {
	p, _, err := inject(t, testPod(), nil)
	if err != nil {
		t.Fatal(err)
	}
	app := container(p, "details")
	if h := app.LivenessProbe.HTTPGet; h == nil || h.Path != "/app-health/details/livez" || h.Port.IntValue() != 15020 || app.LivenessProbe.PeriodSeconds != 5 {
		t.Errorf("liveness probe %+v", app.LivenessProbe)
	}
	if h := app.ReadinessProbe.HTTPGet; h == nil || h.Path != "/app-health/details/readyz" || app.ReadinessProbe.TCPSocket != nil {
		t.Errorf("readiness probe %+v", app.ReadinessProbe)
	}
	if app.StartupProbe.Exec == nil || app.StartupProbe.HTTPGet != nil {
		t.Errorf("exec startup probe rewritten: %+v", app.StartupProbe)
	}
	got := env(container(p, ProxyContainerName), EnvAppProbers)
	want := `{"/app-health/details/livez":{"httpGet":{"path":"/foo","port":9080,"scheme":"HTTP"},"timeoutSeconds":1},` +
		`"/app-health/details/readyz":{"tcpSocket":{"port":9080},"timeoutSeconds":2}}`
	if got != want {
		t.Errorf("%s\n got %s\nwant %s", EnvAppProbers, got, want)
	}
	p, _, err = inject(t, testPod(), map[string]string{annotationRewriteProbers: "false"})
	if err != nil {
		t.Fatal(err)
	}
	if container(p, "details").LivenessProbe.HTTPGet.Path != "/foo" || env(container(p, ProxyContainerName), EnvAppProbers) != "" {
		t.Error("rewriteAppHTTPProbers=false still rewrote")
	}
}

// TestHoldAndProxyConfig: proxy.istio.io/config holdApplicationUntilProxyStarts
// puts the sidecar first with a postStart hook that waits for it.
func TestHoldAndProxyConfig(t *testing.T) {
	p, res, err := inject(t, testPod(), map[string]string{annotationProxyConfig: "holdApplicationUntilProxyStarts: true\n" +
		"terminationDrainDuration: 20s\nproxyMetadata:\n  ISTIO_META_DNS_CAPTURE: \"true\"\nconcurrency: 2\n"})
	if err != nil {
		t.Fatal(err)
	}
	first := p.Spec.Containers[0]
	if first.Name != ProxyContainerName || first.Lifecycle == nil || !slices.Equal(first.Lifecycle.PostStart.Exec.Command, []string{"mast-proxy", "wait"}) {
		t.Errorf("hold: first container %q lifecycle %+v", first.Name, first.Lifecycle)
	}
	args := strings.Join(first.Args, " ")
	for _, w := range []string{"--drain-period 20s", "--meta DNS_CAPTURE=true"} {
		if !strings.Contains(args, w) {
			t.Errorf("args lack %q: %s", w, args)
		}
	}
	if env(&first, "ISTIO_META_DNS_CAPTURE") != "true" {
		t.Error("proxyMetadata not in the environment")
	}
	if env(&first, "GOMAXPROCS") != "2" {
		t.Errorf("concurrency 2: GOMAXPROCS %q, want 2", env(&first, "GOMAXPROCS"))
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings %q, want none", res.Warnings)
	}
	p, _, err = inject(t, testPod(), map[string]string{annotationProxyConfig: "concurrency: 0\n"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Spec.Containers {
		if c.Name == ProxyContainerName && env(&c, "GOMAXPROCS") != "" {
			t.Errorf("concurrency 0 (every core) set GOMAXPROCS %q", env(&c, "GOMAXPROCS"))
		}
	}
	if _, res, _ = inject(t, testPod(), map[string]string{annotationProxyConfig: "tracing: {}\n"}); len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "tracing") {
		t.Errorf("warnings %q, want one naming tracing", res.Warnings)
	}
	p, _, err = inject(t, testPod(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if last := p.Spec.Containers[len(p.Spec.Containers)-1]; last.Name != ProxyContainerName || last.Lifecycle != nil {
		t.Errorf("without hold the sidecar is last without a hook, got %q", last.Name)
	}
	_, res, _ = inject(t, testPod(), map[string]string{"sidecar.istio.io/bootstrapOverride": "x"})
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "bootstrapOverride") {
		t.Errorf("unknown annotation warnings %q", res.Warnings)
	}
}

// TestMetadata checks Istio's labels and annotations on an injected pod.
func TestMetadata(t *testing.T) {
	p, _, err := inject(t, testPod(), map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090"})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"security.istio.io/tlsMode": "istio", "service.istio.io/canonical-name": "details",
		"service.istio.io/canonical-revision": "v1"} {
		if p.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, p.Labels[k], v)
		}
	}
	for k, v := range map[string]string{"prometheus.io/port": "15020", "prometheus.io/path": "/stats/prometheus",
		"kubectl.kubernetes.io/default-container": "details",
		AnnotationStatus: `{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["istio-token","istiod-ca-cert"],"imagePullSecrets":null,"revision":"default"}`} {
		if p.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, p.Annotations[k], v)
		}
	}
	if got := env(container(p, ProxyContainerName), "ISTIO_PROMETHEUS_ANNOTATIONS"); got != `{"port":"9090","scrape":"true"}` {
		t.Errorf("ISTIO_PROMETHEUS_ANNOTATIONS = %s", got)
	}
	var token *corev1.Volume
	for i := range p.Spec.Volumes {
		if p.Spec.Volumes[i].Name == volumeToken {
			token = &p.Spec.Volumes[i]
		}
	}
	if token == nil || token.Projected.Sources[0].ServiceAccountToken.Audience != "istio-ca" {
		t.Errorf("no projected token for audience istio-ca: %+v", token)
	}
}

// TestPatch applies the JSON Patch with a real RFC 6902 implementation and
// gets the injected pod.
func TestPatch(t *testing.T) {
	before := testPod()
	before.Annotations = nil
	after, _, err := inject(t, before, nil)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := Patch(before, after)
	if err != nil {
		t.Fatal(err)
	}
	pj, _ := json.Marshal(ops)
	patch, err := jsonpatch.DecodePatch(pj)
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := json.Marshal(before)
	patched, err := patch.Apply(orig)
	if err != nil {
		t.Fatal(err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	a, _ := yaml.Marshal(&got)
	b, _ := yaml.Marshal(after)
	if !bytes.Equal(a, b) {
		t.Errorf("patched pod differs from the injected one:\n%s\n---\n%s", a, b)
	}
}

// TestProxyConfigResources: ProxyConfig resources with Istio's precedence
// (root namespace < namespace < workload selector < annotation) set the
// sidecar's GOMAXPROCS (concurrency), environment and image type.
func TestProxyConfigResources(t *testing.T) {
	rule := func(ns, name, yamlSpec string) ProxyConfigRule {
		js, err := yaml.YAMLToJSON([]byte(yamlSpec))
		if err != nil {
			t.Fatal(err)
		}
		spec := &networkingbeta.ProxyConfig{}
		if err := protojson.Unmarshal(js, spec); err != nil {
			t.Fatal(err)
		}
		return ProxyConfigRule{Namespace: ns, Name: name, Spec: spec}
	}
	cfg := DefaultConfig()
	cfg.ProxyImage = "example.com/mast-proxy:1.0"
	cfg.ProxyConfigs = []ProxyConfigRule{
		rule("istio-system", "mesh", "concurrency: 1\nenvironmentVariables: {A: mesh, B: mesh}\nimage: {imageType: debug}"),
		rule("default", "ns", "concurrency: 3\nenvironmentVariables: {B: ns}"),
		rule("default", "workload", "selector: {matchLabels: {app: details}}\nenvironmentVariables: {C: workload}\nimage: {imageType: distroless}"),
		rule("default", "elsewhere", "selector: {matchLabels: {app: other}}\nconcurrency: 9"),
		rule("other", "ns", "concurrency: 7"),
	}
	sidecar := func(p *corev1.Pod) *corev1.Container {
		for i := range p.Spec.Containers {
			if p.Spec.Containers[i].Name == ProxyContainerName {
				return &p.Spec.Containers[i]
			}
		}
		t.Fatal("no sidecar")
		return nil
	}
	p, _, err := injectWith(t, &cfg, testPod(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := sidecar(p)
	for k, want := range map[string]string{"GOMAXPROCS": "3", "A": "mesh", "B": "ns", "C": "workload"} {
		if got := env(c, k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if c.Image != "example.com/mast-proxy:1.0-distroless" {
		t.Errorf("image %q, want the workload's distroless type", c.Image)
	}
	p, _, err = injectWith(t, &cfg, testPod(), map[string]string{annotationProxyConfig: "concurrency: 5\n"})
	if err != nil {
		t.Fatal(err)
	}
	if got := env(sidecar(p), "GOMAXPROCS"); got != "5" {
		t.Errorf("the annotation's concurrency: GOMAXPROCS %q, want 5", got)
	}
}
