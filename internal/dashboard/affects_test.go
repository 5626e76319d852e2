package dashboard

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry/serviceentry"
)

// perProxy is what affectedProxies computes, the slow way: every resource
// each proxy's configuration depends on, proxy by proxy.
func perProxy(pc *model.PushContext, proxies []*model.Proxy) map[string][]string {
	out := map[string][]string{}
	for _, p := range proxies {
		keys := map[string]bool{}
		if p.Type == model.Router {
			for _, g := range pc.GatewaysFor(p) {
				keys[resourceKey("Gateway", g.Namespace, g.Name)] = true
				for _, vs := range pc.GatewayVirtualServices(g.Key, p.Namespace) {
					keys[resourceKey("VirtualService", vs.Namespace, vs.Name)] = true
				}
			}
		} else {
			if sc := pc.SidecarFor(p); sc != nil {
				keys[resourceKey("Sidecar", sc.Namespace, sc.Name)] = true
			}
			for _, vs := range pc.Scope(p).VirtualServices {
				keys[resourceKey("VirtualService", vs.Namespace, vs.Name)] = true
			}
		}
		for _, s := range pc.Scope(p).Services {
			for _, r := range pc.Config.List(config.ServiceEntry) {
				if r.Namespace == s.Namespace && slices.Contains(r.Spec.(*networking.ServiceEntry).GetHosts(), s.Hostname) {
					keys[resourceKey("ServiceEntry", r.Namespace, r.Name)] = true
				}
			}
			for _, r := range pc.Config.List(config.WorkloadEntry) {
				for _, ep := range pc.EndpointsAt(r.Spec.(*networking.WorkloadEntry).GetAddress()) {
					if ep.Hostname == s.Hostname {
						keys[resourceKey("WorkloadEntry", r.Namespace, r.Name)] = true
					}
				}
			}
			if dr := pc.DestinationRule(p, s.Hostname); dr != nil {
				keys[resourceKey("DestinationRule", dr.Namespace, dr.Name)] = true
			}
		}
		for _, r := range pc.Config.List(config.WorkloadEntry) {
			if slices.Contains(p.IPAddresses, r.Spec.(*networking.WorkloadEntry).GetAddress()) {
				keys[resourceKey("WorkloadEntry", r.Namespace, r.Name)] = true
			}
		}
		for k := range keys {
			out[k] = append(out[k], p.ID)
		}
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}

// TestAffectedProxiesMatchesPerProxy checks the grouped computation
// against the per-proxy one, with and without a DestinationRule that
// selects workloads (which makes what a proxy sees depend on its labels)
// and with a Sidecar narrowing one namespace's scope.
func TestAffectedProxiesMatchesPerProxy(t *testing.T) {
	m := newSynthetic(t, 40)
	extra := []string{`apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: narrow, namespace: ns1}
spec:
  egress: [{hosts: ["./*"]}]
`, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc0002, namespace: ns2}
spec:
  host: svc0002.ns2.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}]
`, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc0003-for-svc0013, namespace: ns3}
spec:
  host: svc0003.ns3.svc.cluster.local
  workloadSelector: {matchLabels: {app: svc0013}}
`}
	for i, withSelector := range []int{2, 3} {
		var rs []config.Resource
		for _, y := range extra[:withSelector] {
			got, problems := config.Load(fmt.Sprintf("extra%d.yaml", i), []byte(y))
			if problems.HasErrors() {
				t.Fatal(problems.Errors())
			}
			rs = append(rs, got...)
		}
		snap := m.snap.Update(rs, nil)
		mesh := model.DefaultMeshConfig()
		pc := model.NewPushContext("v", mesh, snap, serviceentry.Build(snap, serviceentry.Options{TrustDomain: mesh.TrustDomain, DomainSuffix: mesh.DomainSuffix}))
		want := perProxy(pc, m.proxies)
		got := affectedProxies(pc, m.proxies)
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if ids := got.ids(k, -1); !slices.Equal(ids, want[k]) {
				t.Errorf("%d extra resources: %s shapes %v, want %v", withSelector, k, ids, want[k])
			}
			if n := got.count(k); n != len(want[k]) {
				t.Errorf("%d extra resources: %s count %d, want %d", withSelector, k, n, len(want[k]))
			}
			if first := got.ids(k, 3); !slices.Equal(first, want[k][:min(3, len(want[k]))]) {
				t.Errorf("%d extra resources: %s first 3 %v, want %v", withSelector, k, first, want[k][:min(3, len(want[k]))])
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok && got.count(k) > 0 {
				t.Errorf("%d extra resources: %s shapes %v, want none", withSelector, k, got.ids(k, -1))
			}
		}
	}
}
