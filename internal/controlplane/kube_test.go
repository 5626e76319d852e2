package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/mast-mesh/mast/internal/kube/kubetest"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
var vsGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

// applyYAML server-side applies every document of a multi-document YAML file
// (kubectl apply --server-side) to the resource gvrOf gives.
func applyYAML(t *testing.T, dyn dynamic.Interface, data []byte, gvrOf func(*unstructured.Unstructured) schema.GroupVersionResource) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatal(err)
		}
		if obj == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		j, err := u.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		ri := dyn.Resource(gvrOf(u))
		var r dynamic.ResourceInterface = ri
		if u.GetNamespace() != "" {
			r = ri.Namespace(u.GetNamespace())
		}
		got, err := r.Patch(context.Background(), u.GetName(), types.ApplyPatchType, j, metav1.PatchOptions{FieldManager: "kubectl", Force: new(true)})
		if err != nil {
			t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		out = append(out, got)
	}
	return out
}

// installCRDs applies deploy/crds.yaml and waits until every CRD is established.
func installCRDs(t *testing.T, dyn dynamic.Interface) {
	t.Helper()
	data, err := os.ReadFile("../../deploy/crds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	crds := applyYAML(t, dyn, data, func(*unstructured.Unstructured) schema.GroupVersionResource { return crdGVR })
	for _, c := range crds {
		eventually(t, "CRD "+c.GetName()+" established", func() error {
			u, err := dyn.Resource(crdGVR).Get(context.Background(), c.GetName(), metav1.GetOptions{})
			if err != nil {
				return err
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, c := range conds {
				m := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return nil
				}
			}
			return fmt.Errorf("conditions %v", conds)
		})
	}
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runReplica starts one mastd with --registry kubernetes against the cluster.
func runReplica(t *testing.T, c *kubetest.Cluster, identity string) (mon string, stop func()) {
	t.Helper()
	f := kubeFlags{kubeconfig: c.Kubeconfig, namespace: "istio-system", identity: identity, lease: 2 * time.Second}
	kc, err := f.config()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := newKubeRegistry(kc, "cluster.local", "cluster.local", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			XDSAddr: "127.0.0.1:0", MonitoringAddr: "127.0.0.1:0", Mesh: model.DefaultMeshConfig(),
			DebounceQuiet: 10 * time.Millisecond, DebounceMax: time.Second,
			Registries: []registry.Watcher{reg}, Kube: kc,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)).With("replica", identity),
			Ready:  func(_, m net.Addr) { ready <- m.String() },
		})
	}()
	select {
	case mon = <-ready:
	case err := <-done:
		t.Fatalf("mastd %s: %v", identity, err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mastd %s: %v", identity, err)
		}
	}
	t.Cleanup(stop)
	return mon, stop
}

func reconciled(dyn dynamic.Interface, ns, name string) (status, message string, codes []string, err error) {
	u, err := dyn.Resource(vsGVR).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return "", "", nil, err
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m := c.(map[string]any)
		if m["type"] == "Reconciled" {
			status, message = fmt.Sprint(m["status"]), fmt.Sprint(m["message"])
		}
	}
	vms, _, _ := unstructured.NestedSlice(u.Object, "status", "validationMessages")
	for _, v := range vms {
		code, _, _ := unstructured.NestedString(v.(map[string]any), "type", "code")
		codes = append(codes, code)
	}
	if status == "" {
		return "", "", nil, fmt.Errorf("no Reconciled condition yet (status %v)", u.Object["status"])
	}
	return status, message, codes, nil
}

// TestKubeConfigStoreStatusAndLeader runs two mastd replicas with --registry
// kubernetes against a real kube-apiserver with Mast's generated CRDs: the
// API server accepts the CRDs and Istio resources; the leader writes each
// resource's status (Reconciled True for a resource in force, with Istio's
// IST0101 for a missing host; False, naming the field, for one validation
// rejects); when the leader stops, the other replica takes the Lease and
// keeps writing status.
func TestKubeConfigStoreStatusAndLeader(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{})
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	installCRDs(t, dyn)
	c.Namespace(t, "istio-system", nil)
	c.Namespace(t, "bookinfo", nil)
	ctx := context.Background()
	svcs := `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec:
  ports: [{name: http, port: 9080}]
  selector: {app: reviews}
`
	applyYAML(t, dyn, []byte(svcs), func(*unstructured.Unstructured) schema.GroupVersionResource {
		return schema.GroupVersionResource{Version: "v1", Resource: "services"}
	})
	vs := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: bookinfo}
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {host: ratings}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
      weight: -5
`
	applyYAML(t, dyn, []byte(vs), func(*unstructured.Unstructured) schema.GroupVersionResource { return vsGVR })

	_, stopA := runReplica(t, c, "mastd-a")
	_, stopB := runReplica(t, c, "mastd-b")
	stops := map[string]func(){"mastd-a": stopA, "mastd-b": stopB}

	eventually(t, "status of the VirtualService in force", func() error {
		st, msg, codes, err := reconciled(dyn, "bookinfo", "reviews")
		if err != nil {
			return err
		}
		if st != "True" || len(codes) != 0 {
			return fmt.Errorf("Reconciled=%s %q codes %v, want True and no messages", st, msg, codes)
		}
		return nil
	})
	eventually(t, "IST0101 on the VirtualService to a missing host", func() error {
		st, msg, codes, err := reconciled(dyn, "bookinfo", "ratings")
		if err != nil {
			return err
		}
		if st != "True" || len(codes) == 0 || codes[0] != "IST0101" || !strings.Contains(msg, "ratings") {
			return fmt.Errorf("Reconciled=%s %q codes %v, want True with IST0101 naming ratings", st, msg, codes)
		}
		return nil
	})
	eventually(t, "Reconciled False on the invalid VirtualService", func() error {
		st, msg, _, err := reconciled(dyn, "bookinfo", "broken")
		if err != nil {
			return err
		}
		if st != "False" || !strings.Contains(msg, "weight") {
			return fmt.Errorf("Reconciled=%s %q, want False naming weight", st, msg)
		}
		return nil
	})

	lease, err := c.Client.CoordinationV1().Leases("istio-system").Get(ctx, LeaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := *lease.Spec.HolderIdentity
	stop, ok := stops[first]
	if !ok {
		t.Fatalf("lease holder %q, want mastd-a or mastd-b", first)
	}
	other := "mastd-a"
	if first == other {
		other = "mastd-b"
	}
	// Stop the leader; the other replica takes over and writes the status
	// of a resource created afterwards.
	stop()
	applyYAML(t, dyn, []byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: later, namespace: bookinfo}
spec:
  hosts: [reviews.bookinfo.svc.cluster.local]
  http:
  - route:
    - destination: {host: reviews.bookinfo.svc.cluster.local}
`), func(*unstructured.Unstructured) schema.GroupVersionResource { return vsGVR })
	eventually(t, "status written after the leader left", func() error {
		st, msg, _, err := reconciled(dyn, "bookinfo", "later")
		if err != nil {
			return err
		}
		if st != "True" {
			return fmt.Errorf("Reconciled=%s %q", st, msg)
		}
		return nil
	})
	lease, err = c.Client.CoordinationV1().Leases("istio-system").Get(ctx, LeaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := *lease.Spec.HolderIdentity; got != other {
		t.Errorf("lease holder after %s stopped = %q, want %s", first, got, other)
	}
}
