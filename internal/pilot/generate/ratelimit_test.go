package generate

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse/xdsparsetest"
)

const rateLimitYAML = `apiVersion: ratelimit.mast.io/v1alpha1
kind: RateLimit
metadata: {name: global, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  dimensions: [{name: user, requestHeader: x-user}, {name: client, remoteAddress: true}]
  maxAmount: 5
  validDuration: 1m
  overrides: [{dimensions: {user: john}, maxAmount: 1}]
---
apiVersion: ratelimit.mast.io/v1alpha1
kind: RateLimit
metadata: {name: local, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  mode: LOCAL
  dimensions: [{name: user, requestHeader: x-user}]
  maxAmount: 10
  validDuration: 1s
  overrides: [{dimensions: {user: john}, maxAmount: 1}]
`

func rateLimitPush(t *testing.T, service string) *model.PushContext {
	rs, ps := config.Load("rl.yaml", []byte(rateLimitYAML))
	if ps.HasErrors() {
		t.Fatal(ps)
	}
	mesh := model.DefaultMeshConfig()
	mesh.RateLimitService = service
	return model.NewPushContext("v1", mesh, config.NewSnapshot(append(bookinfoConfig(), rs...)), bookinfoRegistry())
}

// filterNames lists the HTTP filters of every HCM of a proxy, and checks
// that mast-proxy's parser accepts every listener.
func rlFilterNames(t *testing.T, pc *model.PushContext, p *model.Proxy) map[string]string {
	t.Helper()
	rs, err := Generate(pc, p, ListenerType, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if _, err := xdsparsetest.ParseListener(r.Resource.(*listenerv3.Listener)); err != nil {
			t.Fatalf("mast-proxy refuses %s: %v", r.Name, err)
		}
	}
	out := map[string]string{}
	for name, m := range hcmsOf(t, pc, p) {
		var names []string
		for _, f := range m.GetHttpFilters() {
			names = append(names, f.GetName())
		}
		out[name] = strings.Join(names, ",")
	}
	return out
}

func TestRateLimitFilters(t *testing.T) {
	pc := rateLimitPush(t, "127.0.0.1:8081")
	gw := rlFilterNames(t, pc, gatewayProxy())
	if len(gw) == 0 {
		t.Fatal("gateway has no HTTP connection manager")
	}
	for name, fs := range gw {
		if !strings.Contains(fs, "envoy.filters.http.ratelimit/istio-system/global,envoy.filters.http.fault") || strings.Contains(fs, "local_ratelimit") {
			t.Errorf("gateway %s: %s", name, fs)
		}
	}
	inbound := 0
	for name, fs := range rlFilterNames(t, pc, productpageProxy()) {
		has := strings.Contains(fs, "envoy.filters.http.local_ratelimit/default/local,envoy.filters.http.fault")
		if has {
			inbound++
		}
		if strings.Contains(fs, "envoy.filters.http.ratelimit/") {
			t.Errorf("productpage %s has the gateway's global limit: %s", name, fs)
		}
	}
	if inbound == 0 {
		t.Error("productpage's inbound listener has no local_ratelimit")
	}
	for name, fs := range rlFilterNames(t, pc, reviewsNoneProxy()) {
		if strings.Contains(fs, "ratelimit") {
			t.Errorf("reviews %s is not selected: %s", name, fs)
		}
	}
	// Without mastd's service, GLOBAL limits are not generated (mastd warns).
	for name, fs := range rlFilterNames(t, rateLimitPush(t, ""), gatewayProxy()) {
		if strings.Contains(fs, "ratelimit") {
			t.Errorf("gateway %s without a service: %s", name, fs)
		}
	}
}
