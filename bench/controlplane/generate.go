package controlplane

import (
	"fmt"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/generate"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry/serviceentry"
)

// XDSTypes are the four types a sidecar receives, in push order.
var XDSTypes = []string{generate.ClusterType, generate.EndpointType, generate.ListenerType, generate.RouteType}

// CountedTypes are the types the fleet counts: XDSTypes and the on-demand
// virtual hosts (VHDS) of FleetConfig.OnDemand proxies.
var CountedTypes = append(XDSTypes[:len(XDSTypes):len(XDSTypes)], generate.VirtualHostType)

// ShortType returns "cds", "eds", "lds", "rds" or "vhds".
func ShortType(typeURL string) string {
	switch typeURL {
	case generate.ClusterType:
		return "cds"
	case generate.EndpointType:
		return "eds"
	case generate.ListenerType:
		return "lds"
	case generate.RouteType:
		return "rds"
	case generate.VirtualHostType:
		return "vhds"
	}
	return typeURL
}

// PushContext loads the mesh's YAML through the same path as mastd
// (config.Load per file, serviceentry.Build, model.NewPushContext). Any
// problem in the generated YAML is an error: the benchmark must not measure
// a mesh with resources silently dropped.
func (m Mesh) PushContext() (*model.PushContext, error) {
	var rs []config.Resource
	add := func(file string, data []byte) error {
		got, problems := config.Load(file, data)
		if len(problems) > 0 {
			return fmt.Errorf("generated mesh: %w", problems)
		}
		rs = append(rs, got...)
		return nil
	}
	for i := range m.Services {
		if err := add(ServiceFile("mesh", i), ServiceYAML(i, -1)); err != nil {
			return nil, err
		}
	}
	if err := add(VirtualServiceFile("mesh"), RoutingYAML(0)); err != nil {
		return nil, err
	}
	mesh := model.DefaultMeshConfig()
	reg := serviceentry.Build(config.NewSnapshot(rs), serviceentry.Options{TrustDomain: mesh.TrustDomain})
	return model.NewPushContext("bench", mesh, config.NewSnapshot(rs), reg), nil
}

// Node returns the xDS node of simulated proxy k in a mesh of services
// services: a sidecar of service k%services at one of that service's
// endpoint addresses (endpoints 0-3; endpoint 4 is the one endpoint-only
// changes move), with Istio's ID format and metadata.
func Node(k, services int) *corev3.Node {
	i := k % services
	j := (k / services) % (EndpointsPerService - 1)
	ns := Namespace(i)
	labels, _ := structpb.NewStruct(map[string]any{"app": ServiceName(i), "version": fmt.Sprintf("v%d", j%2+1)})
	return &corev3.Node{
		Id: fmt.Sprintf("sidecar~%s~%s-%d.%s~%s.svc.cluster.local", EndpointIP(i, j, false), ServiceName(i), k, ns, ns),
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			"NAMESPACE":       structpb.NewStringValue(ns),
			"SERVICE_ACCOUNT": structpb.NewStringValue(ServiceName(i)),
			"LABELS":          structpb.NewStructValue(labels),
		}},
	}
}

// TypeSize is the generated configuration of one xDS type for one proxy.
type TypeSize struct {
	Resources int `json:"resources"`
	// WireBytes is the size of the SotW DiscoveryResponse carrying them (the
	// gRPC message payload; HTTP/2 and gRPC framing add about 14 bytes).
	WireBytes int `json:"wire_bytes"`
}

// FullConfig generates every type for proxy p and returns its sizes, keyed by
// short type name.
func FullConfig(pc *model.PushContext, p *model.Proxy) (map[string]TypeSize, error) {
	out := map[string]TypeSize{}
	for _, t := range XDSTypes {
		rs, err := generate.Generate(pc, p, t, nil)
		if err != nil {
			return nil, err
		}
		resp := &discoveryv3.DiscoveryResponse{VersionInfo: pc.Version, TypeUrl: t, Nonce: "1"}
		for _, r := range rs {
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r.Resource)
			if err != nil {
				return nil, err
			}
			resp.Resources = append(resp.Resources, &anypb.Any{TypeUrl: t, Value: b})
		}
		out[ShortType(t)] = TypeSize{Resources: len(rs), WireBytes: proto.Size(resp)}
	}
	return out, nil
}

// GenerateResult is the cost of generating one sidecar's full configuration.
type GenerateResult struct {
	Services      int                 `json:"services"`
	Endpoints     int                 `json:"endpoints"`
	NsPerOp       int64               `json:"ns_per_op"` // all four types
	AllocsPerOp   int64               `json:"allocs_per_op"`
	BytesPerOp    int64               `json:"alloc_bytes_per_op"`
	PerType       map[string]int64    `json:"ns_per_type"`
	Config        map[string]TypeSize `json:"config"`
	ConfigBytes   int                 `json:"config_wire_bytes"`
	PushContextNs int64               `json:"push_context_ns"` // model.NewPushContext, indexes included
	// ColdNsPerOp is the first proxy's generation on a fresh push context,
	// which also fills the push context's per-push memo (shared EDS, routes).
	ColdNsPerOp int64 `json:"cold_ns_per_op"`
	Iterations  int   `json:"iterations"`
}

// BenchmarkGenerate measures generate.Generate for all four types for one
// sidecar, with testing.Benchmark so that it runs outside `go test` too.
func BenchmarkGenerate(services int) (GenerateResult, error) {
	m := Mesh{Services: services}
	pc, err := m.PushContext()
	if err != nil {
		return GenerateResult{}, err
	}
	p, err := model.ParseNode(Node(1, services))
	if err != nil {
		return GenerateResult{}, err
	}
	res := GenerateResult{Services: services, Endpoints: services * EndpointsPerService, PerType: map[string]int64{}}
	if res.Config, err = FullConfig(pc, p); err != nil {
		return res, err
	}
	for _, s := range res.Config {
		res.ConfigBytes += s.WireBytes
	}
	var genErr error
	all := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, t := range XDSTypes {
				if _, err := generate.Generate(pc, p, t, nil); err != nil {
					genErr = err
					b.FailNow()
				}
			}
		}
	})
	if genErr != nil {
		return res, genErr
	}
	res.NsPerOp, res.AllocsPerOp, res.BytesPerOp, res.Iterations = all.NsPerOp(), all.AllocsPerOp(), all.AllocedBytesPerOp(), all.N
	for _, t := range XDSTypes {
		r := testing.Benchmark(func(b *testing.B) {
			for b.Loop() {
				generate.Generate(pc, p, t, nil)
			}
		})
		res.PerType[ShortType(t)] = r.NsPerOp()
	}
	cold := testing.Benchmark(func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			fresh := model.NewPushContext("bench", pc.Mesh, pc.Config, pc.Registry)
			b.StartTimer()
			for _, t := range XDSTypes {
				generate.Generate(fresh, p, t, nil)
			}
		}
	})
	res.ColdNsPerOp = cold.NsPerOp()
	// NewPushContext is paid once per push, before any proxy is served.
	start := time.Now()
	n := 0
	for time.Since(start) < time.Second || n < 3 {
		model.NewPushContext("bench", pc.Mesh, pc.Config, pc.Registry)
		n++
	}
	res.PushContextNs = time.Since(start).Nanoseconds() / int64(n)
	return res, nil
}
