package controlplane

import (
	"bytes"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/generate"
	"github.com/mast-mesh/mast/internal/pilot/model"
)

// BenchmarkPushWork is mastd's generation and marshaling work for one
// VirtualService change pushed to 1,000 sidecars of a 1,000-service mesh,
// without gRPC: "all-types/uncached" is what every change cost before
// (every type regenerated and marshaled for every proxy), "lds+rds/cached"
// what it costs now (only the types a VirtualService alters, through
// generate.Cache, each shared resource marshaled once). One op is one
// change (a new push context).
func BenchmarkPushWork(b *testing.B) {
	const services, proxies = 1000, 1000
	pc0, err := Mesh{Services: services}.PushContext()
	if err != nil {
		b.Fatal(err)
	}
	var nodes []*model.Proxy
	for k := range proxies {
		p, err := model.ParseNode(Node(k, services))
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, p)
	}
	vsFile := VirtualServiceFile("mesh")
	all := []string{generate.ClusterType, generate.EndpointType, generate.ListenerType, generate.RouteType}
	ldsRDS := []string{generate.ListenerType, generate.RouteType}
	for _, bc := range []struct {
		name  string
		types []string
		cache bool
	}{
		{"all-types/uncached", all, false},
		{"lds+rds/uncached", ldsRDS, false},
		{"lds+rds/cached", ldsRDS, true},
		{"all-types/cached", all, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			gen := generate.Generate
			if bc.cache {
				gen = generate.NewCache(generate.CacheConfig{}).Generate
			}
			base := without(pc0.Config.All(), config.VirtualService)
			gen0 := 0
			bytes := 0
			for b.Loop() {
				gen0++
				rs, problems := config.Load(vsFile, RoutingYAML(gen0))
				if problems.HasErrors() {
					b.Fatal(problems)
				}
				cfg := config.NewSnapshot(append(append([]config.Resource{}, base...), rs...))
				pc := model.NewPushContext(fmt.Sprint(gen0), pc0.Mesh, cfg, pc0.Registry)
				bytes = 0
				for _, p := range nodes {
					for _, t := range bc.types {
						out, err := gen(pc, p, t, nil)
						if err != nil {
							b.Fatal(err)
						}
						for _, r := range out {
							bytes += len(marshalShared(b, t, r).Value)
						}
					}
				}
			}
			b.ReportMetric(float64(bytes)/proxies/1024, "KB/proxy")
		})
	}
}

func without(rs []config.Resource, k config.Kind) []config.Resource {
	var out []config.Resource
	for _, r := range rs {
		if r.Kind != k {
			out = append(out, r)
		}
	}
	return out
}

// marshalShared marshals r as the ADS server does: once per shared Encoded.
func marshalShared(b *testing.B, typeURL string, r model.XDSResource) *anypb.Any {
	enc := func() (*anypb.Any, uint64, error) {
		if w := r.Encoded.Wire(); w != nil { // assembled by the generator
			return &anypb.Any{TypeUrl: typeURL, Value: bytes.Join(w, nil)}, 0, nil
		}
		v, err := proto.MarshalOptions{Deterministic: true}.Marshal(r.Resource)
		return &anypb.Any{TypeUrl: typeURL, Value: v}, 0, err
	}
	if r.Encoded == nil {
		a, _, err := enc()
		if err != nil {
			b.Fatal(err)
		}
		return a
	}
	a, _, err := r.Encoded.Get(enc)
	if err != nil {
		b.Fatal(err)
	}
	return a
}
