package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/mast-mesh/mast/internal/registry"
)

func svc(ns, name string, mut func(*corev1.Service), ports ...corev1.ServicePort) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"}, Ports: ports}}
	if mut != nil {
		mut(s)
	}
	return s
}

func slice(ns, svcName, name string, ports map[string]int32, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps}
	for n, p := range ports {
		s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: ptr.To(n), Port: ptr.To(p)})
	}
	return s
}

func podEP(ip, pod string, cond discoveryv1.EndpointConditions) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: cond}
	if pod != "" {
		e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: pod}
	}
	return e
}

func TestBuildPortsAndProtocols(t *testing.T) {
	s := svc("default", "reviews", nil,
		corev1.ServicePort{Name: "http", Port: 9080},
		corev1.ServicePort{Name: "grpc-api", Port: 9090},
		corev1.ServicePort{Name: "web", Port: 80, AppProtocol: ptr.To("kubernetes.io/h2c")},
		corev1.ServicePort{Name: "db", Port: 3306, AppProtocol: ptr.To("mysql")},
		corev1.ServicePort{Name: "other", Port: 7000, TargetPort: intstr.FromInt32(7001)},
		corev1.ServicePort{Name: "dns-udp", Port: 53, Protocol: corev1.ProtocolUDP},
	)
	snap := Build(Input{Services: []*corev1.Service{s}}, Options{})
	got := snap.Service("reviews.default.svc.cluster.local")
	if got == nil {
		t.Fatal("no service reviews.default.svc.cluster.local")
	}
	want := []registry.Port{
		{Name: "http", Number: 9080, Protocol: registry.HTTP},
		{Name: "grpc-api", Number: 9090, Protocol: registry.GRPC},
		{Name: "web", Number: 80, Protocol: registry.HTTP2},
		{Name: "db", Number: 3306, Protocol: registry.MySQL},
		{Name: "other", Number: 7000, Protocol: registry.Unknown, TargetPort: 7001},
	}
	if len(got.Ports) != len(want) {
		t.Fatalf("ports = %+v, want %+v", got.Ports, want)
	}
	for i := range want {
		if got.Ports[i] != want[i] {
			t.Errorf("port %d = %+v, want %+v", i, got.Ports[i], want[i])
		}
	}
	if got.Resolution != registry.ResolutionStatic || len(got.Addresses) != 1 || got.Addresses[0] != "10.96.0.10" || got.Registry != Name {
		t.Errorf("service = %+v", got)
	}
}

func TestBuildEndpoints(t *testing.T) {
	s := svc("bookinfo", "reviews", nil, corev1.ServicePort{Name: "http", Port: 9080, TargetPort: intstr.FromString("web")})
	pods := []*corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "bookinfo", Name: "reviews-v1-abc-1", Labels: map[string]string{"app": "reviews", "version": "v1", "pod-template-hash": "abc"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "reviews-v1-abc", Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{ServiceAccountName: "bookinfo-reviews", NodeName: "n1"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "bookinfo", Name: "reviews-v2-1", Labels: map[string]string{"version": "v2", "pod-template-hash": "def"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "reviews-v2-def", Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{NodeName: "n2"}},
	}
	nodes := []*corev1.Node{
		{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{corev1.LabelTopologyRegion: "eu", corev1.LabelTopologyZone: "eu-1", LabelSubzone: "rack7"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "n2", Labels: map[string]string{corev1.LabelTopologyRegion: "us", corev1.LabelTopologyZone: "us-2"}}},
	}
	nss := []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "bookinfo", Labels: map[string]string{LabelNetwork: "net1"}}}}
	sl := slice("bookinfo", "reviews", "reviews-x", map[string]int32{"http": 9081},
		podEP("10.1.0.1", "reviews-v1-abc-1", discoveryv1.EndpointConditions{}),
		podEP("10.1.0.2", "reviews-v2-1", discoveryv1.EndpointConditions{Ready: ptr.To(true)}),
		podEP("10.1.0.3", "", discoveryv1.EndpointConditions{Ready: ptr.To(false)}),
		podEP("10.1.0.4", "", discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)}),
	)
	v6 := slice("bookinfo", "reviews", "reviews-y", map[string]int32{"http": 9081}, podEP("fd00::5", "", discoveryv1.EndpointConditions{}))
	v6.AddressType = discoveryv1.AddressTypeIPv6
	snap := Build(Input{Services: []*corev1.Service{s}, EndpointSlices: []*discoveryv1.EndpointSlice{sl, v6}, Pods: pods, Nodes: nodes, Namespaces: nss}, Options{TrustDomain: "example.org"})
	eps := snap.EndpointsFor("reviews.bookinfo.svc.cluster.local", 9080)
	if len(eps) != 3 {
		t.Fatalf("endpoints = %d, want 3 (two ready pods and the IPv6 one; not-ready and terminating left out): %+v", len(eps), eps)
	}
	e1, e2, e6 := eps[0], eps[1], eps[2]
	if e1.Address != "10.1.0.1" || e1.Port != 9081 {
		t.Errorf("endpoint 1 = %s:%d, want 10.1.0.1:9081 (named targetPort resolved by the slice)", e1.Address, e1.Port)
	}
	if e1.ServiceAccount != "spiffe://example.org/ns/bookinfo/sa/bookinfo-reviews" || e1.Locality != "eu/eu-1/rack7" || e1.Network != "net1" {
		t.Errorf("endpoint 1 = %+v", e1)
	}
	if e1.Labels[LabelCanonicalName] != "reviews" || e1.Labels[LabelCanonicalRevision] != "v1" || e1.Labels["version"] != "v1" {
		t.Errorf("endpoint 1 labels = %v", e1.Labels)
	}
	if e2.ServiceAccount != "spiffe://example.org/ns/bookinfo/sa/default" || e2.Locality != "us/us-2" ||
		e2.Labels[LabelCanonicalName] != "reviews-v2" || e2.Labels[LabelCanonicalRevision] != "v2" {
		t.Errorf("endpoint 2 = %+v labels %v (canonical name from the Deployment's name)", e2, e2.Labels)
	}
	if e6.Address != "fd00::5" {
		t.Errorf("endpoint 3 = %s, want fd00::5", e6.Address)
	}
	got := snap.Service("reviews.bookinfo.svc.cluster.local").ServiceAccounts
	if len(got) != 2 || got[0] != "spiffe://example.org/ns/bookinfo/sa/bookinfo-reviews" || got[1] != "spiffe://example.org/ns/bookinfo/sa/default" {
		t.Errorf("service accounts = %v", got)
	}

	// publishNotReadyAddresses: every address counts.
	s.Spec.PublishNotReadyAddresses = true
	snap = Build(Input{Services: []*corev1.Service{s}, EndpointSlices: []*discoveryv1.EndpointSlice{sl}}, Options{})
	if n := len(snap.EndpointsFor("reviews.bookinfo.svc.cluster.local", 9080)); n != 4 {
		t.Errorf("publishNotReadyAddresses: %d endpoints, want 4", n)
	}
}

func TestBuildHeadlessAndExternalName(t *testing.T) {
	headless := svc("db", "mongo", func(s *corev1.Service) {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = corev1.ClusterIPNone, []string{corev1.ClusterIPNone}
	},
		corev1.ServicePort{Name: "mongo", Port: 27017})
	ext := svc("default", "search", func(s *corev1.Service) {
		s.Spec.Type, s.Spec.ExternalName, s.Spec.ClusterIP, s.Spec.ClusterIPs = corev1.ServiceTypeExternalName, "search.example.com", "", nil
		s.Annotations = map[string]string{AnnotationExportTo: ".,istio-system"}
	}, corev1.ServicePort{Name: "https", Port: 443})
	sl := slice("db", "mongo", "mongo-1", map[string]int32{"mongo": 27017}, podEP("10.2.0.1", "", discoveryv1.EndpointConditions{}))
	snap := Build(Input{Services: []*corev1.Service{headless, ext}, EndpointSlices: []*discoveryv1.EndpointSlice{sl}}, Options{DomainSuffix: "corp.local"})
	h := snap.Service("mongo.db.svc.corp.local")
	if h == nil || h.Resolution != registry.ResolutionNone || len(h.Addresses) != 0 || h.Ports[0].Protocol != registry.Mongo {
		t.Fatalf("headless = %+v", h)
	}
	if eps := snap.EndpointsFor("mongo.db.svc.corp.local", 27017); len(eps) != 1 || eps[0].Address != "10.2.0.1" {
		t.Errorf("headless endpoints = %+v", eps)
	}
	e := snap.Service("search.default.svc.corp.local")
	if e == nil || e.Resolution != registry.ResolutionDNS || !e.MeshExternal || len(e.ExportTo) != 2 || e.ExportTo[0] != "." {
		t.Fatalf("ExternalName = %+v", e)
	}
	if eps := snap.EndpointsFor("search.default.svc.corp.local", 443); len(eps) != 1 || eps[0].Address != "search.example.com" || eps[0].Port != 443 {
		t.Errorf("ExternalName endpoints = %+v", eps)
	}
}
