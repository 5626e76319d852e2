package generate

import (
	"os"
	"path/filepath"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/mixer/api/clientpb"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse/xdsparsetest"
)

// A sidecar with Mixer rules gets the Mixer filter on its inbound HTTP
// chains and the Mixer network filter before tcp_proxy on its inbound TCP
// chains; both ask for exact quotas (disable_quota_cache) unless the mesh
// opts into Istio's prefetch; mast-proxy accepts every listener.
func TestMixerFilters(t *testing.T) {
	p := filepath.Join("..", "..", "mixer", "testdata", "policy-mixer-era", "mixer-rule-productpage-ratelimit.yaml")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	rs, ps := config.Load(p, data)
	if ps.HasErrors() {
		t.Fatal(ps)
	}
	for _, prefetch := range []bool{false, true} {
		mesh := model.DefaultMeshConfig()
		mesh.MixerCheckServer, mesh.MixerQuotaPrefetch = "127.0.0.1:9091", prefetch
		pc := model.NewPushContext("v1", mesh, config.NewSnapshot(append(bookinfoConfig(), rs...)), bookinfoRegistry())
		out, err := Generate(pc, productpageProxy(), ListenerType, nil)
		if err != nil {
			t.Fatal(err)
		}
		httpSeen, tcpSeen := 0, 0
		for _, r := range out {
			l := r.Resource.(*listenerv3.Listener)
			if _, err := xdsparsetest.ParseListener(l); err != nil {
				t.Fatalf("mast-proxy refuses %s: %v", l.GetName(), err)
			}
			for _, fc := range l.GetFilterChains() {
				fs := fc.GetFilters()
				for i, f := range fs {
					if f.GetName() != MixerFilterName {
						continue
					}
					var tc clientpb.TcpClientConfig
					if err := f.GetTypedConfig().UnmarshalTo(&tc); err != nil {
						t.Fatalf("%s: mixer network filter: %v", l.GetName(), err)
					}
					if i != len(fs)-2 || fs[i+1].GetName() != tcpProxyFilterName {
						t.Errorf("%s: mixer network filter at %d of %d, want just before tcp_proxy", l.GetName(), i, len(fs))
					}
					if tc.GetTransport().GetDisableQuotaCache() == prefetch {
						t.Errorf("%s TCP: disable_quota_cache %v with prefetch %v", l.GetName(), tc.GetTransport().GetDisableQuotaCache(), prefetch)
					}
					if tc.GetMixerAttributes().GetAttributes()["destination.service.host"].GetStringValue() != "productpage.default.svc.cluster.local" {
						t.Errorf("%s TCP: attributes %v", l.GetName(), tc.GetMixerAttributes())
					}
					tcpSeen++
				}
			}
		}
		for name, m := range hcmsOf(t, pc, productpageProxy()) {
			for _, f := range m.GetHttpFilters() {
				var hc clientpb.HttpClientConfig
				if f.GetName() != MixerFilterName || f.GetTypedConfig().UnmarshalTo(&hc) != nil || hc.GetServiceConfigs()["*"] != nil {
					continue // outbound chains only forward attributes
				}
				httpSeen++
				if hc.GetTransport().GetDisableQuotaCache() == prefetch {
					t.Errorf("%s HTTP: disable_quota_cache %v with prefetch %v", name, hc.GetTransport().GetDisableQuotaCache(), prefetch)
				}
			}
		}
		if httpSeen == 0 || tcpSeen == 0 {
			t.Errorf("prefetch %v: %d inbound HTTP and %d TCP Mixer filters, want both", prefetch, httpSeen, tcpSeen)
		}
	}
}
