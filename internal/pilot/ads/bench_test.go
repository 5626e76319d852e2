package ads

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// benchTarget is what the benchmark clients wait for: the response type that
// ends a push and the version it must carry.
type benchTarget struct {
	typeURL, version string
}

// runBenchClient subscribes like Envoy (CDS, EDS for clusters, LDS, RDS "80"),
// then ACKs every response and signals done when the target arrives.
func runBenchClient(b *testing.B, stream grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse],
	id string, clusters []string, target *atomic.Pointer[benchTarget], done chan<- struct{}) {
	names := map[string][]string{EndpointType: clusters, RouteType: {"80"}}
	for i, t := range []string{ClusterType, EndpointType, ListenerType, RouteType} {
		req := &discoveryv3.DiscoveryRequest{TypeUrl: t, ResourceNames: names[t]}
		if i == 0 {
			req.Node = &corev3.Node{Id: id}
		}
		if err := stream.Send(req); err != nil {
			b.Error(err)
			return
		}
	}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce, ResourceNames: names[r.TypeUrl]}); err != nil {
				return
			}
			if t := target.Load(); r.TypeUrl == t.typeURL && r.VersionInfo == t.version {
				done <- struct{}{}
			}
		}
	}()
}

// BenchmarkPush100 measures one push to 100 connected SotW streams (real gRPC
// on loopback), from Push until every client has received, decoded and ACKed
// it. Allocations include the clients' side, which runs in this process.
func BenchmarkPush100(b *testing.B) {
	const proxies, services = 100, 10
	m := newTestMesh()
	m.noRecord = true
	st := &meshState{endpoints: map[string]string{}, listeners: []string{"0.0.0.0_80", "0.0.0.0_15001"}, routes: map[string]string{"80": "*"}}
	var clusters []string
	for i := range services {
		h := fmt.Sprintf("svc%d.default.svc.cluster.local", i)
		st.endpoints[h] = fmt.Sprintf("10.4.0.%d", i)
		clusters = append(clusters, clusterName(h))
	}
	e := newEnv(b, m)
	target := &atomic.Pointer[benchTarget]{}
	target.Store(&benchTarget{RouteType, "v0"})
	e.ads.Push(m.set("v0", st), nil)
	done := make(chan struct{}, proxies)
	// No deadline (streamCtx's 20 s): on a loaded machine a run of a few
	// hundred pushes outlasts it, the streams end, and wait never returns.
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	for i := range proxies {
		stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(e.dial(b)).StreamAggregatedResources(ctx)
		if err != nil {
			b.Fatal(err)
		}
		runBenchClient(b, stream, nodeID(fmt.Sprintf("p%d", i)), clusters, target, done)
	}
	wait := func() {
		for range proxies {
			<-done
		}
	}
	wait() // everyone has the initial config

	// Pre-register the states so the loop measures only the push.
	versions := func(prefix string, n int) []string {
		vs := make([]string, n)
		for i := range vs {
			vs[i] = fmt.Sprintf("%s%d", prefix, i)
		}
		return vs
	}

	b.Run("full", func(b *testing.B) {
		vs := versions("full", b.N)
		pcs := make([]*model.PushContext, b.N)
		for i, v := range vs {
			pcs[i] = m.set(v, st)
		}
		req := &model.PushRequest{Full: true}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			target.Store(&benchTarget{RouteType, vs[i]})
			e.ads.Push(pcs[i], req)
			wait()
		}
	})
	b.Run("eds", func(b *testing.B) {
		vs := versions("eds", b.N)
		pcs := make([]*model.PushContext, b.N)
		for i, v := range vs {
			pcs[i] = m.set(v, st)
		}
		req := edsPush("svc3.default.svc.cluster.local")
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			target.Store(&benchTarget{EndpointType, vs[i]})
			e.ads.Push(pcs[i], req)
			wait()
		}
	})
}
