package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mastd "github.com/mast-mesh/mast/internal/controlplane"
	"github.com/mast-mesh/mast/internal/kube/kubetest"
	"github.com/mast-mesh/mast/internal/pilot/generate"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
	kuberegistry "github.com/mast-mesh/mast/internal/registry/kube"
)

// BenchmarkKubeEndpointSliceToLastACK is the Kubernetes push path end to
// end: a real kube-apiserver and etcd (internal/kube/kubetest; skipped when
// absent) hold 100 Services with an EndpointSlice of five endpoints each;
// mastd runs in process with the Kubernetes registry (informers, as
// `mastd --registry kubernetes`) and its default 100 ms push debounce; 100
// SotW proxies (this package's Fleet) are connected. One op updates service
// 0's EndpointSlice (one endpoint moved to another address) through the API
// server and lasts until the last proxy has ACKed the new EDS. Use
// -benchtime=20x; p50-ms and p99-ms are the figures.
func BenchmarkKubeEndpointSliceToLastACK(b *testing.B) {
	const services, clients = 100, 100
	c := kubetest.Start(b, kubetest.Options{})
	ctx := context.Background()
	c.Namespace(b, "istio-system", nil)
	for i := range 10 {
		c.Namespace(b, Namespace(i), nil)
	}
	slice := func(i int, alt bool) *discoveryv1.EndpointSlice {
		name, port, proto, ready := "http", int32(8080), corev1.ProtocolTCP, true
		s := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: ServiceName(i) + "-bench", Namespace: Namespace(i), Labels: map[string]string{discoveryv1.LabelServiceName: ServiceName(i)}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
		}
		for j := range EndpointsPerService {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{EndpointIP(i, j, alt && j == EndpointsPerService-1)},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
		}
		return s
	}
	for i := range services {
		if _, err := c.Client.CoreV1().Services(Namespace(i)).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: ServiceName(i), Namespace: Namespace(i)},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": ServiceName(i)},
				Ports: []corev1.ServicePort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}}},
		}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Client.DiscoveryV1().EndpointSlices(Namespace(i)).Create(ctx, slice(i, false), metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}

	log := slog.New(slog.DiscardHandler)
	reg, err := kuberegistry.New(kuberegistry.Config{Client: c.Client, Source: c.URL, Logger: log,
		Options: kuberegistry.Options{TrustDomain: "cluster.local", DomainSuffix: "cluster.local"}})
	if err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	ready := make(chan net.Addr, 1)
	go func() {
		errc <- mastd.Run(rctx, mastd.Config{
			XDSAddr: "127.0.0.1:0", MonitoringAddr: "127.0.0.1:0", Mesh: model.DefaultMeshConfig(), Logger: log,
			DebounceQuiet: 100 * time.Millisecond, DebounceMax: 10 * time.Second,
			Registries: []registry.Watcher{reg},
			Kube:       &mastd.KubeConfig{Rest: c.Config, Namespace: "istio-system", Identity: "bench"},
			Ready:      func(xds, _ net.Addr) { ready <- xds },
		})
	}()
	defer func() { cancel(); <-errc }()
	var addr string
	select {
	case a := <-ready:
		addr = a.String()
	case err := <-errc:
		b.Fatal(err)
	}
	f, err := Connect(ctx, FleetConfig{Addr: addr, Protocol: SotW, Clients: clients, Services: services})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()

	api := c.Client.DiscoveryV1().EndpointSlices(Namespace(0))
	var lat []time.Duration
	alt := false
	for b.Loop() {
		alt = !alt
		cur, err := api.Get(ctx, ServiceName(0)+"-bench", metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		next := slice(0, alt)
		next.ResourceVersion = cur.ResourceVersion
		e := f.Expect(generate.EndpointType)
		t0 := time.Now()
		if _, err := api.Update(ctx, next, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		tm, err := e.Wait(wctx)
		wcancel()
		if err != nil {
			b.Fatal(fmt.Errorf("waiting for EDS ACKs: %w", err))
		}
		lat = append(lat, tm.LastACK.Sub(t0))
	}
	s := Summarize(lat)
	b.ReportMetric(s.P50, "p50-ms")
	b.ReportMetric(s.P99, "p99-ms")
}
