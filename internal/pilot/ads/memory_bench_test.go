package ads

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// The connection memory benchmark serves a mesh of many services from this
// process and runs the proxies in a child process (this test binary again,
// TestMemoryFleetChild), so that the heap it measures is the server's alone.
const memFleetEnv = "MAST_ADS_MEM_FLEET" // "ADDR PROTOCOL FIRST PROXIES SERVICES" in the child

// memMesh is a generator of a fixed mesh: one cluster and one endpoint
// assignment per service, two listeners, one route configuration. Lookups
// by name are O(1), so that generating 10,000 names costs the benchmark
// little.
type memMesh struct {
	byType map[string][]model.XDSResource
	index  map[string]map[string]int // type -> name -> position
}

func newMemMesh(services int) *memMesh {
	m := &memMesh{byType: map[string][]model.XDSResource{}, index: map[string]map[string]int{}}
	add := func(t, n string, r model.XDSResource) {
		if m.index[t] == nil {
			m.index[t] = map[string]int{}
		}
		m.index[t][n] = len(m.byType[t])
		m.byType[t] = append(m.byType[t], r)
	}
	for i := range services {
		h := memHost(i)
		n := clusterName(h)
		add(ClusterType, n, model.XDSResource{Name: n, Resource: &clusterv3.Cluster{Name: n, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}}})
		add(EndpointType, n, model.XDSResource{Name: n, Resource: cla(n, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))})
	}
	for _, l := range []string{"0.0.0.0_80", "0.0.0.0_15001"} {
		add(ListenerType, l, model.XDSResource{Name: l, Resource: &listenerv3.Listener{Name: l}})
	}
	add(RouteType, "80", model.XDSResource{Name: "80", Resource: &routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{{Name: "80", Domains: []string{"*"}}}}})
	return m
}

func memHost(i int) string { return fmt.Sprintf("svc%d.ns%d.svc.cluster.local", i, i%10) }

func (m *memMesh) generate(_ *model.PushContext, _ *model.Proxy, typeURL string, names []string) ([]model.XDSResource, error) {
	all := m.byType[typeURL]
	if len(names) == 0 {
		return all, nil
	}
	out := make([]model.XDSResource, 0, len(names))
	for _, n := range names {
		if i, ok := m.index[typeURL][n]; ok {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// BenchmarkConnMemory reports the ADS server's heap per connected proxy
// after the initial sync: Delta and SotW proxies subscribing like Envoy
// (CDS and LDS wildcard, EDS for every cluster, RDS "80") to a mesh of 1,000
// and 10,000 services. heap-B/proxy is the growth of the heap in use (after
// a GC) from before 100 proxies connect to after every one has ACKed every
// type, divided by 100, as cpbench reports it (so it includes what the
// first proxies fill in once: marshaled resources, interned names);
// marginal-heap-B/proxy is the growth from 50 to 100 proxies, divided by
// 50. The live-B figures are the same for the bytes of live objects. The
// proxies run in child processes. Run with -benchtime 1x;
// MAST_ADS_HEAP_PROFILE=PATH writes the server's heap profile (inuse)
// while connected.
func BenchmarkConnMemory(b *testing.B) {
	for _, services := range []int{1000, 10000} {
		for _, proto := range []string{"delta", "sotw"} {
			b.Run(fmt.Sprintf("%s/%d", proto, services), func(b *testing.B) {
				for range b.N {
					heap, live, mheap, mlive := connMemory(b, proto, 100, services)
					b.ReportMetric(heap, "heap-B/proxy")
					b.ReportMetric(live, "live-B/proxy")
					b.ReportMetric(mheap, "marginal-heap-B/proxy")
					b.ReportMetric(mlive, "marginal-live-B/proxy")
				}
			})
		}
	}
}

// connMemory serves a mesh of services, connects proxies from a child
// process and returns the heap in use and live heap per proxy.
func connMemory(b *testing.B, protocol string, proxies, services int) (heap, live, marginalHeap, marginalLive float64) {
	b.Helper()
	if os.Getenv("MAST_ADS_HEAP_PROFILE") != "" {
		runtime.MemProfileRate = 1
	}
	mesh := newMemMesh(services)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	g := grpc.NewServer(grpc.ForceServerCodecV2(Codec())) // as mastd: grpc-go pools the read and write buffers
	s := New(Config{
		Generate:    mesh.generate,
		ClusterHost: parseClusterHost,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	s.Register(g)
	go g.Serve(lis)
	defer g.Stop()
	s.Push(model.NewPushContext("v1", model.DefaultMeshConfig(), nil, nil), nil)

	before := settledHeap()
	half := proxies / 2
	startFleet(b, s, lis.Addr().String(), protocol, 0, half, services)
	mid := settledHeap()
	startFleet(b, s, lis.Addr().String(), protocol, half, proxies-half, services)
	after := settledHeap()
	if path := os.Getenv("MAST_ADS_HEAP_PROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	runtime.KeepAlive(mesh)
	per := func(a, b uint64, n int) float64 { return (float64(a) - float64(b)) / float64(n) }
	return per(after.HeapInuse, before.HeapInuse, proxies), per(after.HeapAlloc, before.HeapAlloc, proxies),
		per(after.HeapInuse, mid.HeapInuse, proxies-half), per(after.HeapAlloc, mid.HeapAlloc, proxies-half)
}

// startFleet connects n proxies (numbered from first) from a child process,
// which stays until the benchmark ends, and waits until the server has every
// connected proxy ACK every type.
func startFleet(b *testing.B, s *Server, addr, protocol string, first, n, services int) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMemoryFleetChild$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d %d %d", memFleetEnv, addr, protocol, first, n, services))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close() // the child disconnects and exits
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "synced" {
		b.Fatalf("fleet child: %q, %v", line, err)
	}
	eventually(b, "every proxy ACKs every type", func() bool {
		ps := s.Status()
		if len(ps) != first+n {
			return false
		}
		for _, p := range ps {
			if len(p.Types) != 4 {
				return false
			}
			for _, t := range p.Types {
				if t.State != StateSynced {
					return false
				}
			}
		}
		return true
	})
}

func settledHeap() runtime.MemStats {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}

// TestMemoryFleetChild is BenchmarkConnMemory's proxies; it runs only in the
// child process the benchmark starts.
func TestMemoryFleetChild(t *testing.T) {
	spec := os.Getenv(memFleetEnv)
	if spec == "" {
		t.Skip("runs only as BenchmarkConnMemory's child process")
	}
	f := strings.Fields(spec)
	addr, protocol := f[0], f[1]
	first, _ := strconv.Atoi(f[2])
	proxies, _ := strconv.Atoi(f[3])
	services, _ := strconv.Atoi(f[4])
	var clusters []string
	for i := range services {
		clusters = append(clusters, clusterName(memHost(i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, proxies)
	sem := make(chan struct{}, 10) // connect a few at a time, as a fleet rolls out
	for i := range proxies {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
			if err != nil {
				errs <- err
				return
			}
			synced := make(chan struct{})
			go func() {
				<-ctx.Done()
				cc.Close()
			}()
			id := nodeID(fmt.Sprintf("mem%d", first+i))
			if protocol == "delta" {
				go memDeltaProxy(ctx, cc, id, clusters, synced, errs)
			} else {
				go memSotwProxy(ctx, cc, id, clusters, synced, errs)
			}
			select {
			case <-synced:
			case <-ctx.Done():
			}
			<-sem
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	fmt.Println("synced")
	io.Copy(io.Discard, os.Stdin) // until the benchmark is done
}

var memTypes = []string{ClusterType, EndpointType, ListenerType, RouteType}

func memNames(typeURL string, clusters []string) []string {
	switch typeURL {
	case EndpointType:
		return clusters
	case RouteType:
		return []string{"80"}
	}
	return nil
}

func memDeltaProxy(ctx context.Context, cc *grpc.ClientConn, id string, clusters []string, synced chan<- struct{}, errs chan<- error) {
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
	if err != nil {
		errs <- err
		return
	}
	for i, t := range memTypes {
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: memNames(t, clusters)}
		if i == 0 {
			req.Node = &corev3.Node{Id: id}
		}
		if err := st.Send(req); err != nil {
			errs <- err
			return
		}
	}
	seen := map[string]bool{}
	for {
		r, err := st.Recv()
		if err != nil {
			if ctx.Err() == nil {
				errs <- err
			}
			return
		}
		if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce}); err != nil {
			errs <- err
			return
		}
		if seen[r.TypeUrl] = true; len(seen) == len(memTypes) && synced != nil {
			close(synced)
			synced = nil
		}
	}
}

func memSotwProxy(ctx context.Context, cc *grpc.ClientConn, id string, clusters []string, synced chan<- struct{}, errs chan<- error) {
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		errs <- err
		return
	}
	for i, t := range memTypes {
		req := &discoveryv3.DiscoveryRequest{TypeUrl: t, ResourceNames: memNames(t, clusters)}
		if i == 0 {
			req.Node = &corev3.Node{Id: id}
		}
		if err := st.Send(req); err != nil {
			errs <- err
			return
		}
	}
	seen := map[string]bool{}
	for {
		r, err := st.Recv()
		if err != nil {
			if ctx.Err() == nil {
				errs <- err
			}
			return
		}
		ack := &discoveryv3.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce, ResourceNames: memNames(r.TypeUrl, clusters)}
		if err := st.Send(ack); err != nil {
			errs <- err
			return
		}
		if seen[r.TypeUrl] = true; len(seen) == len(memTypes) && synced != nil {
			close(synced)
			synced = nil
		}
	}
}
