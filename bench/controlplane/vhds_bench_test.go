package controlplane

import (
	"context"
	"testing"

	"github.com/mast-mesh/mast/internal/pilot/generate"
)

// onDemandServices is the mesh size of BenchmarkOnDemandChanges: small
// enough that its initial sync under callgrind ends before the server's
// keepalive gives up on the proxies.
const onDemandServices = 100

// BenchmarkOnDemandChanges runs mastd in process on a onDemandServices config
// directory with 100 Delta proxies taking their virtual hosts on demand
// (cpbench's delta+vhds); one op is a change until the last proxy has ACKed
// it: "config" a VirtualService write (one ~1 KB virtual host per proxy),
// "endpoint" a WorkloadEntry moved (one cluster's endpoints). Proxies and
// mastd share the process, so allocations and instructions (callgrind over
// two -benchtime values) include the proxies' side, which is the same
// before and after a change to mastd.
func BenchmarkOnDemandChanges(b *testing.B) {
	srv, dir := startMesh(b, onDemandServices)
	ctx := context.Background()
	f, err := Connect(ctx, FleetConfig{Addr: srv.XDSAddr(), Protocol: Delta, OnDemand: true, Clients: 100, Services: onDemandServices})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	change := func(b *testing.B, marker []byte, typeURL string, write func() error) {
		e := f.ExpectMarker(marker, typeURL)
		if err := write(); err != nil {
			b.Fatal(err)
		}
		if _, err := e.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	gen := 0
	b.Run("config", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			gen++
			change(b, ConfigMarker(gen), generate.VirtualHostType, func() error {
				return WriteFileAtomic(VirtualServiceFile(dir), RoutingYAML(gen))
			})
		}
	})
	moved := false
	b.Run("endpoint", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			moved = !moved
			alt := -1
			if moved {
				alt = EndpointsPerService - 1
			}
			change(b, EndpointMarker(moved), generate.EndpointType, func() error {
				return WriteFileAtomic(ServiceFile(dir, 0), ServiceYAML(0, alt))
			})
		}
	})
}
