package controlplane

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/proto"

	"github.com/mast-mesh/mast/internal/pilot/generate"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

func TestMeshLoadsWithoutProblems(t *testing.T) {
	for _, services := range []int{1, 12} {
		pc, err := Mesh{Services: services}.PushContext()
		if err != nil {
			t.Fatalf("%d services: %v", services, err)
		}
		if n := len(pc.Registry.Services); n != services {
			t.Errorf("%d services: registry has %d services", services, n)
		}
		for i := range services {
			if n := len(pc.Registry.Endpoints[Hostname(i)]); n != EndpointsPerService {
				t.Errorf("%s: %d endpoints, want %d", Hostname(i), n, EndpointsPerService)
			}
		}
		p, err := model.ParseNode(Node(1, services))
		if err != nil {
			t.Fatal(err)
		}
		sizes, err := FullConfig(pc, p)
		if err != nil {
			t.Fatal(err)
		}
		// One outbound cluster per service plus the two subsets of service 0.
		if got := sizes["eds"].Resources; got != services+2 {
			t.Errorf("%d services: %d load assignments, want %d", services, got, services+2)
		}
		for _, typ := range []string{"cds", "lds", "rds"} {
			if sizes[typ].Resources == 0 || sizes[typ].WireBytes == 0 {
				t.Errorf("%d services: no %s config: %+v", services, typ, sizes[typ])
			}
		}
	}
}

func TestEndpointChangeAltersOnlyOneWorkloadEntry(t *testing.T) {
	a, b := string(ServiceYAML(3, -1)), string(ServiceYAML(3, EndpointsPerService-1))
	if a == b {
		t.Fatal("endpoint change does not change the file")
	}
	if EndpointIP(3, EndpointsPerService-1, true) == EndpointIP(3, EndpointsPerService-1, false) {
		t.Fatal("alternative address equals the original")
	}
	// Simulated proxies never sit on the endpoint that moves, and have distinct IDs.
	ids := map[string]bool{}
	for k := range 40 {
		id := Node(k, 5).Id
		if ip := strings.Split(id, "~")[1]; ip == EndpointIP(k%5, EndpointsPerService-1, false) {
			t.Errorf("proxy %d is on the moving endpoint %s", k, ip)
		}
		if ids[id] {
			t.Errorf("duplicate node ID %s", id)
		}
		ids[id] = true
	}
	if RoutingYAML(1) == nil || string(RoutingYAML(1)) == string(RoutingYAML(2)) {
		t.Error("config changes do not change the VirtualService")
	}
}

func TestEDSServiceNameMatchesFullDecode(t *testing.T) {
	pc, err := Mesh{Services: 4}.PushContext()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := model.ParseNode(Node(0, 4))
	rs, err := generate.Generate(pc, p, generate.ClusterType, nil)
	if err != nil {
		t.Fatal(err)
	}
	eds := 0
	for _, r := range rs {
		b, err := proto.Marshal(r.Resource)
		if err != nil {
			t.Fatal(err)
		}
		c := r.Resource.(*clusterv3.Cluster)
		want, wantOK := "", c.GetType() == clusterv3.Cluster_EDS
		if wantOK {
			eds++
			want = c.GetEdsClusterConfig().GetServiceName()
			if want == "" {
				want = c.Name
			}
		}
		got, ok := edsServiceName(b)
		if string(got) != want || ok != wantOK {
			t.Errorf("%s: edsServiceName = %q, %v; want %q, %v", r.Name, got, ok, want, wantOK)
		}
	}
	if eds < 4 {
		t.Errorf("only %d EDS clusters", eds)
	}
	for _, bad := range [][]byte{{0xff}, {0x0a, 0x05, 'a'}, {0x1a, 0x03, 0x12, 0x05, 'x'}} {
		if n, ok := edsServiceName(bad); ok {
			t.Errorf("edsServiceName(%x) = %q, true; want false", bad, n)
		}
	}
}

func TestRDSNamesAreGeneratedRouteConfigs(t *testing.T) {
	pc, err := Mesh{Services: 4}.PushContext()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := model.ParseNode(Node(0, 4))
	ls, err := generate.Generate(pc, p, generate.ListenerType, nil)
	if err != nil {
		t.Fatal(err)
	}
	var anys [][]byte
	for _, l := range ls {
		a, err := proto.Marshal(l.Resource)
		if err != nil {
			t.Fatal(err)
		}
		anys = append(anys, a)
	}
	names, err := rdsNames(anys)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, "8080") {
		t.Errorf("route names %v lack the service port's \"8080\"", names)
	}
	routes, err := generate.Generate(pc, p, generate.RouteType, names)
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) == 0 {
		t.Errorf("no route configuration for %v", names)
	}
	if _, err := rdsNames([][]byte{{0xff}}); err == nil {
		t.Error("rdsNames accepted a malformed listener")
	}
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in       []time.Duration
		p50, p99 float64
	}{
		{nil, 0, 0},
		{[]time.Duration{5 * time.Millisecond}, 5, 5},
		{[]time.Duration{4 * time.Millisecond, 1 * time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond}, 2, 4},
	} {
		l := Summarize(tc.in)
		if l.P50 != tc.p50 || l.P99 != tc.p99 || l.N != len(tc.in) {
			t.Errorf("Summarize(%v) = %+v, want p50 %v p99 %v", tc.in, l, tc.p50, tc.p99)
		}
	}
}

// startMesh writes a mesh and runs mastd on it in process.
func startMesh(tb testing.TB, services int) (*InProcess, string) {
	dir := tb.TempDir()
	if err := (Mesh{Services: services}).Write(dir); err != nil {
		tb.Fatal(err)
	}
	srv, err := StartInProcess(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	return srv, dir
}

// TestFleetSeesChangesFromMastd runs mastd on a config directory with SotW
// and Delta fleets, and checks what a config change and an endpoint-only
// change send to each proxy.
func TestFleetSeesChangesFromMastd(t *testing.T) {
	srv, dir := startMesh(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		proto Protocol
		// a VirtualService change: responses per proxy by type (routes
		// only: the listeners it could alter are unchanged)
		full map[string]int64
	}{
		{SotW, map[string]int64{"cds": 0, "eds": 0, "lds": 0, "rds": 1}},
		{Delta, map[string]int64{"cds": 0, "eds": 0, "lds": 0, "rds": 1}},
		// on demand: the route configurations (VHDS stubs) are unchanged;
		// only the changed service's virtual host is sent
		{DeltaVHDS, map[string]int64{"cds": 0, "eds": 0, "lds": 0, "rds": 0, "vhds": 1}},
	} {
		t.Run(string(tc.proto), func(t *testing.T) {
			const clients = 3
			fc := FleetConfig{Addr: srv.XDSAddr(), Protocol: tc.proto, Clients: clients, Services: 3}
			want := []string{generate.RouteType} // a VirtualService change alters routes only
			if tc.proto == DeltaVHDS {
				fc.Protocol, fc.OnDemand = Delta, true
				want = []string{generate.VirtualHostType}
			}
			// Connect waits for every type, virtual hosts included: the
			// on-demand proxies' first subscriptions (misses) are served.
			f, err := Connect(ctx, fc)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			gen := map[Protocol]int{SotW: 100, Delta: 200, DeltaVHDS: 300}[tc.proto]
			change := func(gen int) {
				t.Helper()
				// Each proxy must receive the new timeout itself, not only a new version.
				e := f.ExpectMarker(ConfigMarker(gen), want...)
				if err := WriteFileAtomic(VirtualServiceFile(dir), RoutingYAML(gen)); err != nil {
					t.Fatal(err)
				}
				if _, err := e.Wait(ctx); err != nil {
					t.Fatal(err)
				}
			}
			before := f.Totals()
			change(gen)
			afterFull := f.Totals()
			for typ, n := range tc.full {
				if got := afterFull[typ].Responses - before[typ].Responses; got != n*clients {
					t.Errorf("config change: %d %s responses, want %d", got, typ, n*clients)
				}
			}
			// Endpoint-only change, then another config change: streams are
			// ordered, so any LDS/RDS wrongly pushed for the endpoint change
			// has arrived once the second config change is ACKed.
			alt := map[Protocol]int{SotW: EndpointsPerService - 1, Delta: -1, DeltaVHDS: EndpointsPerService - 1}[tc.proto]
			e := f.ExpectMarker(EndpointMarker(alt >= 0), generate.EndpointType)
			if err := WriteFileAtomic(ServiceFile(dir, 0), ServiceYAML(0, alt)); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			afterEDS := f.Totals()
			if got := afterEDS["eds"].Responses - afterFull["eds"].Responses; got != clients {
				t.Errorf("endpoint change: %d EDS responses, want %d", got, clients)
			}
			if tc.proto == DeltaVHDS {
				if b := (afterFull["vhds"].Bytes - before["vhds"].Bytes) / clients; b > 4096 {
					t.Errorf("config change: %d B of virtual hosts per proxy, want one virtual host's (< 4 KB)", b)
				}
				if b := afterFull["rds"].Bytes - before["rds"].Bytes; b != 0 {
					t.Errorf("config change: %d B of route configurations sent to on-demand proxies", b)
				}
			}
			change(gen + 1)
			afterSecond := f.Totals()
			for typ, n := range tc.full {
				if got := afterSecond[typ].Responses - afterEDS[typ].Responses; got != n*clients {
					t.Errorf("endpoint change then config change: %d %s responses, want %d (LDS/RDS/CDS sent for an endpoint change?)", got, typ, n*clients)
				}
			}
		})
	}
}

// BenchmarkGenerateSidecar is generate.Generate for one sidecar's four types
// in a mesh loaded from the benchmark's YAML (target: <= 20 ms at 1,000
// services x 5 endpoints).
func BenchmarkGenerateSidecar(b *testing.B) {
	for _, services := range []int{100, 1000} {
		b.Run(strconv.Itoa(services)+"services", func(b *testing.B) {
			pc, err := Mesh{Services: services}.PushContext()
			if err != nil {
				b.Fatal(err)
			}
			p, _ := model.ParseNode(Node(1, services))
			sizes, err := FullConfig(pc, p)
			if err != nil {
				b.Fatal(err)
			}
			total := 0
			for _, s := range sizes {
				total += s.WireBytes
			}
			b.ReportAllocs()
			for b.Loop() {
				for _, t := range XDSTypes {
					if _, err := generate.Generate(pc, p, t, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(total), "wire-bytes/config")
		})
	}
}

// BenchmarkConfigChangeToLastACK runs mastd in process on a 1,000-service
// config directory with 100 SotW proxies; one op is a VirtualService file
// write until the last proxy has ACKed all four types. Proxies and mastd
// share the CPUs; profile with -cpuprofile. Use -benchtime=20x.
func BenchmarkConfigChangeToLastACK(b *testing.B) {
	srv, dir := startMesh(b, 1000)
	ctx := context.Background()
	f, err := Connect(ctx, FleetConfig{Addr: srv.XDSAddr(), Protocol: SotW, Clients: 100, Services: 1000})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var lat []time.Duration
	gen := 0
	for b.Loop() {
		e := f.Expect(XDSTypes...)
		gen++
		t0 := time.Now()
		if err := WriteFileAtomic(VirtualServiceFile(dir), RoutingYAML(gen)); err != nil {
			b.Fatal(err)
		}
		tm, err := e.Wait(ctx)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, tm.LastACK.Sub(t0))
	}
	s := Summarize(lat)
	b.ReportMetric(s.P50, "p50-ms")
	b.ReportMetric(s.P99, "p99-ms")
}
