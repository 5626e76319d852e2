package kube_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testProxyConfigOnKubernetes: `mast proxy-config` and `mast x authz check`
// name a sidecar by its pod and read its admin, which listens on the pod's
// loopback only (inside the pod's network namespace, out of the test's
// reach), through the API server's pods/portforward as kubectl
// port-forward does, served by the played kubelet. The CLI is given nothing
// but the kubeconfig.
func testProxyConfigOnKubernetes(t *testing.T, kubeconfig string, pod *podRun) {
	name := pod.pod.Name
	out, err := mast(t, "proxy-config", "cluster", name+".bookinfo", "--kubeconfig", kubeconfig,
		"--fqdn", "reviews.bookinfo.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mast proxy-config cluster %s.bookinfo on Kubernetes:\n%s", name, out)
	// The DESTINATION RULE column comes from the cluster's custom resources.
	found := false
	for _, line := range strings.Split(out, "\n") {
		found = found || strings.Join(strings.Fields(line), " ") == "reviews.bookinfo.svc.cluster.local 9080 v1 outbound EDS reviews.bookinfo"
	}
	if !found {
		t.Errorf("proxy-config cluster lacks reviews' v1 cluster with its DestinationRule:\n%s", out)
	}
	// -n names the namespace; the bootstrap carries the node ID the pod's
	// sidecar sent, with the pod's IP.
	out, err = mast(t, "proxy-config", "bootstrap", name, "-n", "bookinfo", "--kubeconfig", kubeconfig, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if id := "sidecar~" + pod.ip + "~" + name + ".bookinfo~bookinfo.svc.cluster.local"; !strings.Contains(out, id) {
		t.Errorf("proxy-config bootstrap does not carry the pod's node ID %s:\n%.2000s", id, out)
	}
	out, err = mast(t, "proxy-config", "secret", name+".bookinfo", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "default") || !strings.Contains(out, "ROOTCA") {
		t.Errorf("proxy-config secret lacks the workload certificate and trust bundle:\n%s", out)
	}
	if _, err := mast(t, "x", "authz", "check", name+".bookinfo", "--kubeconfig", kubeconfig); err != nil {
		t.Errorf("x authz check on Kubernetes: %v", err)
	}
	_, err = mast(t, "proxy-config", "cluster", "no-such-pod.bookinfo", "--kubeconfig", kubeconfig)
	if err == nil || !strings.Contains(err.Error(), "no pod no-such-pod in namespace bookinfo") {
		t.Errorf("proxy-config of a pod that does not exist: %v, want it named", err)
	}
}

// testProxyStatusOnKubernetes: `mast proxy-status` and `mast version`, given
// only the kubeconfig, find mastd's pod by the chart's label and reach its
// monitoring port through pods/portforward, as istioctl reaches istiod.
// mastd runs on the host here, so its pod is a host-network pod whose
// monitoring port is the one the host's mastd listens on (127.0.0.1 only):
// the played kubelet forwards to the node's loopback as a real one does for
// such a pod.
func testProxyStatusOnKubernetes(t *testing.T, k *kubelet, monitor, kubeconfig string, proxies int) {
	ctx := context.Background()
	_, port, err := net.SplitHostPort(monitor)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "mastd-7d4b9c5f6-host", Namespace: "istio-system",
		Labels: map[string]string{"app.kubernetes.io/name": "mastd"}},
		Spec: corev1.PodSpec{NodeName: nodeName, HostNetwork: true, Containers: []corev1.Container{{Name: "mastd", Image: "mast/mastd",
			Ports: []corev1.ContainerPort{{Name: "http-monitoring", ContainerPort: int32(p)}}}}}}
	// Before the pod runs, the CLI says where it looked.
	_, err = mast(t, "proxy-status", "--kubeconfig", kubeconfig)
	if err == nil || !strings.Contains(err.Error(), "no running mastd pod (app.kubernetes.io/name=mastd) in namespace istio-system") {
		t.Errorf("proxy-status with no mastd pod: %v, want the namespace and label it looked for", err)
	}
	pod, err = k.c.Client.CoreV1().Pods("istio-system").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	k.hostPods["istio-system/"+pod.Name] = true
	k.mu.Unlock()
	t.Cleanup(func() {
		zero := int64(0)
		_ = k.c.Client.CoreV1().Pods("istio-system").Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = k.net.hostIP
	if _, err := k.c.Client.CoreV1().Pods("istio-system").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := mast(t, "proxy-status", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mast proxy-status on Kubernetes:\n%s", out)
	synced := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && strings.HasSuffix(f[0], ".bookinfo") && f[2] == "SYNCED" && f[3] == "SYNCED" && f[4] == "SYNCED" && f[5] == "SYNCED" {
			synced++
		}
	}
	if synced != proxies {
		t.Errorf("proxy-status shows %d bookinfo proxies SYNCED on CDS, LDS, EDS and RDS, want %d:\n%s", synced, proxies, out)
	}
	// One proxy: what mastd would send it, compared with what its admin
	// (a second port-forward, to the pod) shows.
	one := ""
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "productpage-") {
			one = f[0]
		}
	}
	out, err = mast(t, "proxy-status", one, "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Clusters Match", "Endpoints Match", "Listeners Match", "Routes Match"} {
		if !strings.Contains(out, want) {
			t.Errorf("proxy-status %s on Kubernetes lacks %q:\n%s", one, want, out)
		}
	}
	out, err = mast(t, "version", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("data plane: %d proxies connected", proxies); !strings.Contains(out, want) {
		t.Errorf("mast version on Kubernetes lacks %q:\n%s", want, out)
	}
}
