package autoregister

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// TestRegistration: an unauthenticated stream and a certificate of another
// service account register nothing; the group's proxy does, a reconnect
// within the grace period keeps the entry, the grace period after the last
// stream removes it.
func TestRegistration(t *testing.T) {
	wg := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "WorkloadGroup",
		"metadata": map[string]any{"name": "legacy", "namespace": "vm"},
		"spec":     map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "legacy"}}, "template": map[string]any{"serviceAccount": "legacy-sa", "network": "net-a"}},
	}}
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{groupsGVR: "WorkloadGroupList", entriesGVR: "WorkloadEntryList"}, wg)
	c := &Controller{Dynamic: dyn, Identity: "mastd-0", Grace: 50 * time.Millisecond}
	ctx := context.Background()
	proxy := func(ip, sa string) *model.Proxy {
		return &model.Proxy{ID: "sidecar~" + ip + "~vm.vm~vm.svc.cluster.local", Namespace: "vm", ServiceAccount: sa, IPAddresses: []string{ip},
			Labels: map[string]string{"version": "v1"}, Metadata: map[string]string{MetadataGroup: "legacy"}}
	}
	entries := dyn.Resource(entriesGVR).Namespace("vm")
	exists := func(name string) bool {
		_, err := entries.Get(ctx, name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}

	c.Connected(ctx, proxy("10.0.0.1", "legacy-sa"), false)
	c.Connected(ctx, proxy("10.0.0.2", "other"), true)
	if exists("legacy-10.0.0.1") || exists("legacy-10.0.0.2") {
		t.Fatal("registered without a certificate, or with another service account's")
	}
	c.Disconnected(proxy("10.0.0.1", "legacy-sa")) // never registered: nothing happens

	p := proxy("10.0.0.3", "legacy-sa")
	c.Connected(ctx, p, true)
	we, err := entries.Get(ctx, "legacy-10.0.0.3", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n, _, _ := unstructured.NestedString(we.Object, "spec", "network"); n != "net-a" {
		t.Errorf("spec.network %q, want the template's net-a", n)
	}
	// The proxy's own network (ISTIO_META_NETWORK) wins, as in istiod.
	pn := proxy("10.0.0.4", "legacy-sa")
	pn.Metadata["NETWORK"] = "net-b"
	c.Connected(ctx, pn, true)
	if we, err := entries.Get(ctx, "legacy-10.0.0.4-net-b", metav1.GetOptions{}); err != nil {
		t.Error(err)
	} else if n, _, _ := unstructured.NestedString(we.Object, "spec", "network"); n != "net-b" {
		t.Errorf("spec.network %q, want the proxy's net-b", n)
	}
	if a := we.GetAnnotations(); a[AnnotationGroup] != "legacy" || a[AnnotationController] != "mastd-0" || we.GetLabels()["app"] != "legacy" || we.GetLabels()["version"] != "v1" {
		t.Fatalf("WorkloadEntry %v", we.Object)
	}
	// Disconnect and reconnect within the grace period: kept.
	c.Disconnected(p)
	c.Connected(ctx, p, true)
	time.Sleep(150 * time.Millisecond)
	if !exists("legacy-10.0.0.3") {
		t.Fatal("deleted although the proxy reconnected within the grace period")
	}
	c.Disconnected(p)
	deadline := time.Now().Add(10 * time.Second)
	for exists("legacy-10.0.0.3") {
		if time.Now().After(deadline) {
			t.Fatal("not deleted after the grace period")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
