package kube

import (
	"fmt"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// bigCluster is 1,000 Services with 5 pods each (5,000 Pods), one
// EndpointSlice per Service, over 10 Nodes.
func bigCluster() Input {
	var in Input
	for n := range 10 {
		in.Nodes = append(in.Nodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", n),
			Labels: map[string]string{corev1.LabelTopologyRegion: "r", corev1.LabelTopologyZone: fmt.Sprintf("z%d", n%3)}}})
	}
	for s := range 1000 {
		ns := fmt.Sprintf("ns-%d", s%20)
		name := fmt.Sprintf("svc-%d", s)
		in.Services = append(in.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{ClusterIP: fmt.Sprintf("10.96.%d.%d", s/250, s%250+1), Ports: []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "grpc", Port: 9090}}}})
		sl := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080)}, {Name: ptr.To("grpc"), Port: ptr.To[int32](9090)}}}
		for p := range 5 {
			pod := fmt.Sprintf("%s-%d", name, p)
			in.Pods = append(in.Pods, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod, Labels: map[string]string{"app": name, "version": "v1"}},
				Spec: corev1.PodSpec{ServiceAccountName: name, NodeName: fmt.Sprintf("node-%d", p%10)}})
			sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", 1+s/250, s%250, p+1)},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod}})
		}
		in.EndpointSlices = append(in.EndpointSlices, sl)
	}
	return in
}

// BenchmarkBuild1000Services5000Pods is one registry rebuild (what every
// batch of informer events costs) for 1,000 Services and 5,000 Pods; it
// reports the retained heap of one snapshot.
func BenchmarkBuild1000Services5000Pods(b *testing.B) {
	in := bigCluster()
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	keep := Build(in, Options{})
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	if n := len(keep.Services); n != 1000 {
		b.Fatalf("%d services", n)
	}
	b.ResetTimer()
	for b.Loop() {
		Build(in, Options{})
	}
	b.ReportMetric(float64(ms1.HeapAlloc-ms0.HeapAlloc), "snapshot-bytes")
}
