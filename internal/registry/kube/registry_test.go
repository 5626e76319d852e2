package kube_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/mast-mesh/mast/internal/kube/kubetest"
	"github.com/mast-mesh/mast/internal/registry"
	"github.com/mast-mesh/mast/internal/registry/kube"
)

// TestRegistryAgainstAPIServer runs the registry's informers against a real
// kube-apiserver: objects created, changed and deleted there show in the
// snapshot, and every change calls notify.
func TestRegistryAgainstAPIServer(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.Namespace(t, "shop", nil)
	cl := c.Client
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(cl.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a",
		Labels: map[string]string{corev1.LabelTopologyRegion: "eu-west", corev1.LabelTopologyZone: "eu-west-1a"}}}, metav1.CreateOptions{}))
	must(cl.CoreV1().ServiceAccounts("shop").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "cart"}}, metav1.CreateOptions{}))
	must(cl.CoreV1().Services("shop").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "cart"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "cart"}, Ports: []corev1.ServicePort{
			{Name: "http-api", Port: 80}, {Name: "metrics", Port: 9090, AppProtocol: ptr.To("http")}}},
	}, metav1.CreateOptions{}))
	must(cl.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "cart-1", Labels: map[string]string{"app": "cart", "version": "v2"}},
		Spec:       corev1.PodSpec{ServiceAccountName: "cart", NodeName: "node-a", Containers: []corev1.Container{{Name: "c", Image: "cart"}}},
	}, metav1.CreateOptions{}))
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "cart-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "cart"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.20.0.5"}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "cart-1", Namespace: "shop"}, NodeName: ptr.To("node-a")},
			{Addresses: []string{"10.20.0.6"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http-api"), Port: ptr.To[int32](8080)}, {Name: ptr.To("metrics"), Port: ptr.To[int32](9090)}},
	}
	slice, err := cl.DiscoveryV1().EndpointSlices("shop").Create(ctx, slice, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	r, err := kube.New(kube.Config{Client: cl, Options: kube.Options{TrustDomain: "td.example"}})
	if err != nil {
		t.Fatal(err)
	}
	notified := make(chan struct{}, 100)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, func() { notified <- struct{}{} }) }()
	const host = "cart.shop.svc.cluster.local"
	waitFor(t, r, notified, "service and ready endpoint", func(s *registry.Snapshot) error {
		svc := s.Service(host)
		if svc == nil {
			return fmt.Errorf("no %s", host)
		}
		if len(svc.Addresses) != 1 || svc.Ports[0].Protocol != registry.HTTP || svc.Ports[1].Protocol != registry.HTTP {
			return fmt.Errorf("service %+v", svc)
		}
		eps := s.EndpointsFor(host, 80)
		if len(eps) != 1 {
			return fmt.Errorf("%d endpoints on port 80, want 1 (the not-ready one left out)", len(eps))
		}
		e := eps[0]
		if e.Address != "10.20.0.5" || e.Port != 8080 || e.ServiceAccount != "spiffe://td.example/ns/shop/sa/cart" ||
			e.Locality != "eu-west/eu-west-1a" || e.Labels["service.istio.io/canonical-revision"] != "v2" {
			return fmt.Errorf("endpoint %+v labels %v", e, e.Labels)
		}
		return nil
	})
	if st := r.Status(); !st.Synced || st.Services < 1 {
		t.Errorf("status = %+v, want synced", st)
	}

	// The pod turns not ready: its endpoint leaves.
	slice.Endpoints[0].Conditions.Ready = ptr.To(false)
	if _, err := cl.DiscoveryV1().EndpointSlices("shop").Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, notified, "endpoint gone after not ready", func(s *registry.Snapshot) error {
		if n := len(s.EndpointsFor(host, 80)); n != 0 {
			return fmt.Errorf("%d endpoints", n)
		}
		return nil
	})
	// The Service is deleted: it leaves.
	if err := cl.CoreV1().Services("shop").Delete(ctx, "cart", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, notified, "service deleted", func(s *registry.Snapshot) error {
		if s.Service(host) != nil {
			return fmt.Errorf("%s still there", host)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after cancel", err)
	}
}

// waitFor waits for notifications until check passes on the snapshot.
func waitFor(t *testing.T, r *kube.Registry, notified <-chan struct{}, what string, check func(*registry.Snapshot) error) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		err := check(r.Snapshot())
		if err == nil {
			return
		}
		select {
		case <-notified:
		case <-deadline:
			t.Fatalf("%s: %v", what, err)
		}
	}
}
