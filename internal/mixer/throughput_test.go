package mixer

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb"
	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb/mixergrpc"
	"github.com/mast-mesh/mast/internal/mixer/attribute"
)

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCheckThroughput: Checks served over loopback gRPC by a Mixer
// holding Istio's deny-label configuration, from parallel clients with
// distinct bags (no cache anywhere), as a proxy fleet sends them. The
// checks/cpu-s metric (Checks per CPU-second of the whole process, both
// the clients and the Mixer) is Mixer's throughput per core whatever the
// machine's load; ns/op depends on it.
func BenchmarkCheckThroughput(b *testing.B) {
	var all []config.Resource
	p := filepath.Join("testdata", "policy-mixer-era", "mixer-rule-deny-label.yaml")
	data, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	rs, probs := config.Load(p, data)
	if probs.HasErrors() {
		b.Fatal(probs)
	}
	all = append(all, rs...)
	svc := NewService(Options{}, discard())
	svc.Update(config.NewSnapshot(all))
	defer svc.Close()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	svc.Register(gs)
	go gs.Serve(lis)
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := mixergrpc.NewMixerClient(conn)
	enc := attribute.NewEncoder(attribute.GlobalDictionary())
	bag := reviewsToRatings("v2")
	bag["request.path"] = "/ratings/0"
	bag["request.method"] = "GET"
	bag["source.principal"] = "cluster.local/ns/default/sa/bookinfo-reviews"
	req := &mixerpb.CheckRequest{Attributes: enc.Encode(bag), GlobalWordCount: uint32(attribute.GlobalDictionary().Len())}
	b.ReportAllocs()
	b.SetParallelism(8)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Check(context.Background(), req)
			if err != nil || resp.GetPrecondition().GetStatus().GetCode() != 0 {
				b.Fatalf("check: %v %v", resp, err)
			}
		}
	})
	b.StopTimer()
	if cpu := cpuTime(b) - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "checks/cpu-s")
	}
}
