package controlplane

import (
	"strconv"
	"testing"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
	"github.com/mast-mesh/mast/internal/registry/serviceentry"
)

// BenchmarkChangeFixedCost is the work mastd does for one change before it
// generates anything for a proxy: the config snapshot update (as the file
// store makes it), the ServiceEntry registry's rebuild, registry.Reuse and
// registry.Diff (as mastd's pipeline calls them), the push context built
// from the previous one (model.NextPushContext, as mastd's push does), and
// the sidecar scope of one proxy in each of the 10 namespaces. One op is one
// change: "vs" rewrites the VirtualService, "endpoint" moves a WorkloadEntry
// of one service. Run at 1,000 and 10,000 services x 5 endpoints.
func BenchmarkChangeFixedCost(b *testing.B) {
	for _, services := range []int{1000, 10000} {
		pc0, err := Mesh{Services: services}.PushContext()
		if err != nil {
			b.Fatal(err)
		}
		var nodes []*model.Proxy
		for k := range 10 {
			p, err := model.ParseNode(Node(k, services))
			if err != nil {
				b.Fatal(err)
			}
			nodes = append(nodes, p)
		}
		for _, change := range []string{"vs", "endpoint"} {
			b.Run(strconv.Itoa(services)+"services/"+change, func(b *testing.B) {
				opts := serviceentry.Options{TrustDomain: pc0.Mesh.TrustDomain, DomainSuffix: pc0.Mesh.DomainSuffix}
				var builder serviceentry.Builder
				cfg := pc0.Config
				reg := builder.Build(cfg, opts)
				pc := model.NextPushContext(nil, "0", pc0.Mesh, cfg, reg)
				gen := 0
				b.ReportAllocs()
				for b.Loop() {
					gen++
					var rs []config.Resource
					var problems config.Problems
					if change == "vs" {
						rs, problems = config.Load(VirtualServiceFile("mesh"), RoutingYAML(gen))
					} else {
						svc, alt := gen*37%services, -1
						if gen/services%2 == 0 {
							alt = EndpointsPerService - 1 // moved in even rounds, back in odd ones
						}
						rs, problems = config.Load(ServiceFile("mesh", svc), ServiceYAML(svc, alt))
					}
					if problems.HasErrors() {
						b.Fatal(problems)
					}
					cfg = cfg.Update(rs, nil)
					next := registry.Reuse(reg, builder.Build(cfg, opts))
					registry.Diff(reg, next)
					reg = next
					pc = model.NextPushContext(pc, strconv.Itoa(gen), pc0.Mesh, cfg, reg)
					for _, p := range nodes {
						pc.Scope(p)
					}
				}
			})
		}
	}
}
