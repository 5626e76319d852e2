package kube_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/mast-mesh/mast/internal/kube/kubetest"
	"github.com/mast-mesh/mast/internal/registry/kube"
)

// BenchmarkRegistryMemory puts 1,000 Services (2 ports), 1,000 EndpointSlices
// and 5,000 Pods into a real kube-apiserver, syncs the registry's informers
// and reports the heap the registry holds (informer caches plus snapshot).
// MAST_KUBE_BENCH=1 runs it (it takes minutes to create the objects).
func BenchmarkRegistryMemory(b *testing.B) {
	if os.Getenv("MAST_KUBE_BENCH") == "" {
		b.Skip("set MAST_KUBE_BENCH=1: creates 7,000 objects in a real kube-apiserver")
	}
	c := kubetest.Start(b, kubetest.Options{})
	ctx := context.Background()
	const nsCount = 20
	for i := range nsCount {
		c.Namespace(b, fmt.Sprintf("ns-%d", i), nil)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	sem := make(chan struct{}, 32)
	for s := range 1000 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ns, name := fmt.Sprintf("ns-%d", s%nsCount), fmt.Sprintf("svc-%d", s)
			cl := c.Client
			if _, err := cl.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "grpc", Port: 9090}}}}, metav1.CreateOptions{}); err != nil {
				errs <- err
				return
			}
			sl := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080)}, {Name: ptr.To("grpc"), Port: ptr.To[int32](9090)}}}
			for p := range 5 {
				pod := fmt.Sprintf("%s-%d", name, p)
				if _, err := cl.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod, Labels: map[string]string{"app": name, "version": "v1"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:v1"}}}}, metav1.CreateOptions{}); err != nil {
					errs <- err
					return
				}
				sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", 1+s/250, s%250, p+1)},
					TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod, Namespace: ns}})
			}
			if _, err := cl.DiscoveryV1().EndpointSlices(ns).Create(ctx, sl, metav1.CreateOptions{}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	r, err := kube.New(kube.Config{Client: c.Client})
	if err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	synced := make(chan struct{}, 1)
	go r.Run(rctx, func() {
		select {
		case synced <- struct{}{}:
		default:
		}
	})
	<-synced
	if n := len(r.Snapshot().Services); n < 1000 {
		b.Fatalf("%d services in the snapshot", n)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	for b.Loop() {
	}
	b.ReportMetric(float64(ms1.HeapAlloc-ms0.HeapAlloc)/(1<<20), "registry-heap-MiB")
}
