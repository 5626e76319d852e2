package generate

import (
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// TestForwardedForSettings pins what decides x-forwarded-for in the proxy,
// as Istio configures it: the gateway is the edge (use_remote_address, no
// trusted hops in front of it); sidecars, inbound and outbound, are not.
func TestForwardedForSettings(t *testing.T) {
	pc := bookinfoPush()
	tests := []struct {
		name     string
		listener func(t *testing.T) *listenerv3.Listener
		edge     bool
	}{
		{"gateway http", func(t *testing.T) *listenerv3.Listener {
			return gen1(t, pc, gatewayProxy(), ListenerType)["0.0.0.0_80"].(*listenerv3.Listener)
		}, true},
		{"gateway https", func(t *testing.T) *listenerv3.Listener {
			return gen1(t, pc, gatewayProxy(), ListenerType)["0.0.0.0_443"].(*listenerv3.Listener)
		}, true},
		{"sidecar inbound (no capture)", func(t *testing.T) *listenerv3.Listener {
			return gen1(t, pc, reviewsNoneProxy(), ListenerType)["10.1.0.2_9080"].(*listenerv3.Listener)
		}, false},
		{"sidecar forward proxy", func(t *testing.T) *listenerv3.Listener {
			return gen1(t, pc, reviewsNoneProxy(), ListenerType)["10.1.0.2_15001"].(*listenerv3.Listener)
		}, false},
		{"sidecar bound egress port", func(t *testing.T) *listenerv3.Listener {
			return gen1(t, pc, egressNoneProxy(), ListenerType)["127.0.1.7_9080"].(*listenerv3.Listener)
		}, false},
		{"sidecar virtualInbound", func(t *testing.T) *listenerv3.Listener {
			return gen1(t, pc, productpageProxy(), ListenerType)[virtualInboundName].(*listenerv3.Listener)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			for _, fc := range tt.listener(t).GetFilterChains() {
				f := fc.GetFilters()[len(fc.GetFilters())-1]
				if f.GetName() != hcmFilterName {
					continue
				}
				n++
				m := unpackHCM(t, f)
				if m.GetUseRemoteAddress().GetValue() != tt.edge || m.GetXffNumTrustedHops() != 0 || m.GetSkipXffAppend() {
					t.Errorf("chain %q: use_remote_address %v, xff_num_trusted_hops %d, skip_xff_append %v; want edge %v",
						fc.GetName(), m.GetUseRemoteAddress().GetValue(), m.GetXffNumTrustedHops(), m.GetSkipXffAppend(), tt.edge)
				}
			}
			if n == 0 {
				t.Fatal("no HTTP connection manager")
			}
		})
	}
}
