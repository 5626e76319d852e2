package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/mast-mesh/mast/internal/inject"
	"github.com/mast-mesh/mast/internal/kube/install"
)

// kubeProxyConfigs: ProxyConfig resources at two of Istio's precedence
// levels, the root namespace (every sidecar) and a workload selector in
// bookinfo (ratings, overriding it).
const kubeProxyConfigs = `apiVersion: networking.istio.io/v1beta1
kind: ProxyConfig
metadata: {name: mesh, namespace: istio-system}
spec:
  environmentVariables: {ISTIO_META_MAST_PROXYCONFIG: mesh}
---
apiVersion: networking.istio.io/v1beta1
kind: ProxyConfig
metadata: {name: ratings, namespace: bookinfo}
spec:
  selector: {matchLabels: {app: ratings}}
  concurrency: 2
  environmentVariables: {ISTIO_META_MAST_PROXYCONFIG: ratings}
  image: {imageType: distroless}
`

// applyProxyConfigs stores kubeProxyConfigs through the API server (and its
// validation webhook) and waits until mastd's injection webhook applies
// them: a dry-run pod, which the API server sends through the webhooks
// without storing it, comes back with them.
func applyProxyConfigs(t *testing.T, cl *install.Client, c kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	if err := cl.Apply(ctx, yamlObjects(t, []byte(kubeProxyConfigs), ""), false, io.Discard); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the injection webhook applies the ProxyConfigs", func() error {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "proxyconfig-probe", Labels: map[string]string{"app": "ratings"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app"}}}}
		got, err := c.CoreV1().Pods("bookinfo").Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return err
		}
		env := proxyEnv(got)
		if env["GOMAXPROCS"] != "2" || env["ISTIO_META_MAST_PROXYCONFIG"] != "ratings" || !strings.HasSuffix(proxyImage(got), "-distroless") {
			return fmt.Errorf("dry-run ratings pod's sidecar env %v, image %q", env, proxyImage(got))
		}
		return nil
	})
}

// proxyImage is the injected sidecar's image.
func proxyImage(p *corev1.Pod) string {
	for _, c := range p.Spec.Containers {
		if c.Name == inject.ProxyContainerName {
			return c.Image
		}
	}
	return ""
}

// proxyEnv is the injected sidecar's environment (plain values).
func proxyEnv(p *corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, c := range p.Spec.Containers {
		if c.Name != inject.ProxyContainerName {
			continue
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				out[e.Name] = e.Value
			}
		}
	}
	return out
}

// testProxyConfigResources: pods injected through the API server carry
// their ProxyConfigs (concurrency as GOMAXPROCS, environmentVariables), and
// their running mast-proxy shows both on its admin /server_info (read
// inside the pod's network namespace): the ratings pod runs with
// concurrency 2, the selector's variable and the distroless image type,
// productpage with the root namespace's variable and the runtime's own
// GOMAXPROCS.
func testProxyConfigResources(t *testing.T, pods map[string]*podRun) {
	want := map[string]struct {
		gomaxprocs string
		meta       string
	}{"ratings": {"2", "ratings"}, "productpage": {"", "mesh"}}
	seen := 0
	for _, r := range pods {
		w, ok := want[r.pod.Labels["app"]]
		if !ok {
			continue
		}
		seen++
		if typed := strings.HasSuffix(proxyImage(r.pod), "-distroless"); typed != (w.meta == "ratings") {
			t.Errorf("%s: sidecar image %q (imageType distroless for ratings only)", r.pod.Name, proxyImage(r.pod))
		}
		env := proxyEnv(r.pod)
		if env["GOMAXPROCS"] != w.gomaxprocs || env["ISTIO_META_MAST_PROXYCONFIG"] != w.meta {
			t.Errorf("%s: injected sidecar env GOMAXPROCS=%q ISTIO_META_MAST_PROXYCONFIG=%q, want %q and %q",
				r.pod.Name, env["GOMAXPROCS"], env["ISTIO_META_MAST_PROXYCONFIG"], w.gomaxprocs, w.meta)
		}
		ns := r.ns
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ctx, ns, network, addr)
		}}}
		resp, err := client.Get("http://127.0.0.1:15000/server_info")
		if err != nil {
			t.Errorf("%s: /server_info: %v", r.pod.Name, err)
			continue
		}
		var info struct {
			Options struct {
				Concurrency int `json:"concurrency"`
			} `json:"command_line_options"`
			Node struct {
				Metadata map[string]any `json:"metadata"`
			} `json:"node"`
		}
		err = json.NewDecoder(resp.Body).Decode(&info)
		resp.Body.Close()
		if err != nil {
			t.Errorf("%s: /server_info: %v", r.pod.Name, err)
			continue
		}
		if info.Node.Metadata["MAST_PROXYCONFIG"] != w.meta {
			t.Errorf("%s: /server_info node metadata MAST_PROXYCONFIG %v, want %q", r.pod.Name, info.Node.Metadata["MAST_PROXYCONFIG"], w.meta)
		}
		if w.gomaxprocs != "" && fmt.Sprint(info.Options.Concurrency) != w.gomaxprocs {
			t.Errorf("%s: /server_info concurrency %d, want %s", r.pod.Name, info.Options.Concurrency, w.gomaxprocs)
		}
		t.Logf("%s: /server_info concurrency %d, MAST_PROXYCONFIG %v", r.pod.Name, info.Options.Concurrency, info.Node.Metadata["MAST_PROXYCONFIG"])
	}
	if seen < len(want) {
		t.Errorf("found %d of the %d pods", seen, len(want))
	}
}
