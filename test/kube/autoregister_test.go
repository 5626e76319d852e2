package kube_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/mast-mesh/mast/internal/kube/install"
	"github.com/mast-mesh/mast/internal/kube/kubetest"
	"github.com/mast-mesh/mast/test/netns"
)

// TestWorkloadAutoRegistration: a VM's mast-proxy (a network namespace of
// its own, outside any pod) connects to mastd's TLS xDS port with a
// certificate issued against its service account's token and asks to join
// a WorkloadGroup (ISTIO_META_AUTO_REGISTER_GROUP); mastd creates its
// WorkloadEntry through the API server from the group's template, refuses a
// proxy whose certificate is another service account, and deletes the entry
// a grace period after the proxy goes away. The proxy runs a readiness probe
// (--readiness-probe), so its entry is annotated for health checks.
func TestWorkloadAutoRegistration(t *testing.T) {
	netns.Require(t, "iptables", "setpriv")
	c := kubetest.Start(t, kubetest.Options{})
	ctx := context.Background()
	dir := netns.SharedDir(t)
	mastdBin, proxyBin := buildMast(t, dir)
	k := &kubelet{c: c, net: newPodNetwork(t), dir: dir, proxyBin: proxyBin,
		hosts: map[string][]string{}, eps: map[string]map[string]endpoint{}, pods: map[string]*podRun{}}
	k.hosts["istiod.istio-system.svc"] = []string{k.net.hostIP}

	cl, err := install.NewClient(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	chart, err := install.LoadChart()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := install.Render(chart, install.Options{Namespace: "istio-system"})
	if err != nil {
		t.Fatal(err)
	}
	var crds []install.Object
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, o)
		}
	}
	if err := cl.Apply(ctx, crds, false, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := cl.WaitEstablished(ctx, crds); err != nil {
		t.Fatal(err)
	}
	c.Namespace(t, "istio-system", nil)
	c.Namespace(t, "vm", nil)
	for _, sa := range []string{"legacy-sa", "other"} {
		if _, err := c.Client.CoreV1().ServiceAccounts("vm").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.Apply(ctx, yamlObjects(t, []byte(`apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: legacy, namespace: vm}
spec:
  metadata:
    labels: {app: legacy}
    annotations: {team: legacy-owners}
  template:
    serviceAccount: legacy-sa
    ports: {http: 8080}
`), "vm"), false, io.Discard); err != nil {
		t.Fatal(err)
	}
	monitor := startMastd(t, mastdBin, c.Kubeconfig, filepath.Join(dir, "ca"), k.net.hostIP+":15012", "127.0.0.1:"+freePort(t),
		"--workload-entry-grace-period", "2s").monitor

	var root string
	eventually(t, time.Minute, "istio-ca-root-cert in vm", func() error {
		cm, err := c.Client.CoreV1().ConfigMaps("vm").Get(ctx, "istio-ca-root-cert", metav1.GetOptions{})
		if err != nil {
			return err
		}
		root = cm.Data["root-cert.pem"]
		return nil
	})
	// vm starts a VM's proxy with a token of service account sa.
	vm := func(name, sa string) *podRun {
		ns, ip := k.net.add(t)
		k.writeEtc(t, ns, ip, name)
		tr, err := c.Client.CoreV1().ServiceAccounts("vm").CreateToken(ctx, sa, &authnv1.TokenRequest{
			Spec: authnv1.TokenRequestSpec{Audiences: []string{"istio-ca"}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name, "token"), tr.Status.Token)
		writeFile(t, filepath.Join(dir, name, "root-cert.pem"), root)
		r := &podRun{pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "vm"}}, ns: ns, ip: ip}
		p := k.start(t, r, corev1.Container{Name: "istio-proxy", Image: "mast-proxy", Args: []string{
			"--ca-addr", "istiod.istio-system.svc:15012", "--ca-root-file", filepath.Join(dir, name, "root-cert.pem"),
			"--ca-server-name", "istiod.istio-system.svc", "--token-file", filepath.Join(dir, name, "token"),
			"--ip", ip, "--name", name, "--namespace", "vm", "--service-account", sa, "--labels", "version=v1",
			"--meta", "AUTO_REGISTER_GROUP=legacy", "--meta", "INTERCEPTION_MODE=NONE",
			"--readiness-probe", `{"periodSeconds":1,"tcpSocket":{"port":8080}}`}}, nil)
		r.procs = append(r.procs, p)
		return r
	}
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	entries := dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadentries"}).Namespace("vm")

	good := vm("vm-1", "legacy-sa")
	name := "legacy-" + good.ip
	t.Run("WorkloadEntry created from the group's template", func(t *testing.T) {
		eventually(t, time.Minute, "WorkloadEntry "+name, func() error {
			we, err := entries.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			spec := we.Object["spec"].(map[string]any)
			labels, _ := spec["labels"].(map[string]any)
			if spec["address"] != good.ip || spec["serviceAccount"] != "legacy-sa" || labels["app"] != "legacy" || labels["version"] != "v1" ||
				we.GetAnnotations()["istio.io/autoRegistrationGroup"] != "legacy" || we.GetAnnotations()["team"] != "legacy-owners" || len(we.GetOwnerReferences()) != 1 ||
				we.GetAnnotations()["proxy.istio.io/health-checks-enabled"] != "true" { // the proxy runs a readiness probe
				return fmt.Errorf("WorkloadEntry %v", we.Object)
			}
			return nil
		})
	})
	t.Run("a proxy with another service account is not registered", func(t *testing.T) {
		bad := vm("vm-2", "other")
		waitConverged(t, monitor, 2, "") // both proxies connected and served
		if _, err := entries.Get(ctx, "legacy-"+bad.ip, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("WorkloadEntry for a proxy of service account other: %v", err)
		}
	})
	t.Run("deleted after the grace period once the proxy is gone", func(t *testing.T) {
		good.kill()
		eventually(t, time.Minute, "WorkloadEntry "+name+" deleted", func() error {
			we, err := entries.Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("still there, annotations %v", we.GetAnnotations())
		})
	})
}
