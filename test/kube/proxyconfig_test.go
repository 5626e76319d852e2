package kube_test

import (
	"strings"
	"testing"
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
