package generate

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// applyListenerFilters finishes the proxy's listeners with the filters of
// security policy (path normalization, RBAC), rate limits and the Mixer
// client, in that order, in one walk: each chain's HTTP connection manager
// is decoded and encoded once, however many of them apply. Listeners are
// fresh per generation, so they are changed in place.
func (g *gen) applyListenerFilters(out []model.XDSResource) {
	secHTTP, secTCP, secure := g.securityFilters()
	rlHTTP, rlTCP := g.rateLimitFilters()
	mixer := g.mixerActive()
	if !secure && len(rlHTTP) == 0 && len(rlTCP) == 0 && !mixer {
		return
	}
	norm := g.pc.Mesh.PathNormalization
	var mixerIn, mixerFwd *hcmv3.HttpFilter
	var mixerTCP *listenerv3.Filter
	for _, r := range out {
		l, ok := r.Resource.(*listenerv3.Listener)
		if !ok {
			continue
		}
		toWorkload := l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND || l.GetName() == virtualInboundName
		// Security and rate limits act on every gateway chain; the Mixer
		// checks only on a sidecar's inbound side.
		inbound := g.p.Type == model.Router || toWorkload
		var mixerFilter *hcmv3.HttpFilter
		var mixerNet *listenerv3.Filter
		if mixer {
			if g.p.Type != model.Router && toWorkload {
				if mixerIn == nil {
					in := g.mixerInbound()
					mixerIn = httpFilter(MixerFilterName, toAny(in))
					mixerTCP = &listenerv3.Filter{Name: MixerFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(mixerInboundTCP(in))}}
				}
				mixerFilter, mixerNet = mixerIn, mixerTCP
			} else {
				if mixerFwd == nil {
					mixerFwd = httpFilter(MixerFilterName, toAny(g.mixerForward()))
				}
				mixerFilter = mixerFwd
			}
		}
		chains := l.GetFilterChains()
		if l.GetDefaultFilterChain() != nil {
			chains = append(chains[:len(chains):len(chains)], l.GetDefaultFilterChain())
		}
		for _, fc := range chains {
			n := len(fc.GetFilters())
			if n == 0 {
				continue
			}
			last := fc.Filters[n-1]
			switch last.GetName() {
			case hcmFilterName:
				edit := secure || (inbound && len(rlHTTP) > 0) || mixerFilter != nil
				if !edit {
					continue
				}
				var m hcmv3.HttpConnectionManager
				if last.GetTypedConfig().UnmarshalTo(&m) != nil {
					continue
				}
				if secure {
					setPathNormalization(&m, norm)
					if inbound && len(secHTTP) > 0 {
						insertAfterJWT(&m, secHTTP)
					}
				}
				if inbound && len(rlHTTP) > 0 {
					insertBeforeFaultOrCORS(&m, rlHTTP)
				}
				if mixerFilter != nil {
					insertMixer(&m, mixerFilter)
				}
				fc.Filters[n-1] = hcmFilter(&m)
			case tcpProxyFilterName:
				if (!inbound || len(secTCP)+len(rlTCP) == 0) && mixerNet == nil {
					continue
				}
				fs := append([]*listenerv3.Filter{}, fc.Filters[:n-1]...)
				if inbound {
					fs = append(fs, secTCP...)
					fs = append(fs, rlTCP...)
				}
				if mixerNet != nil {
					fs = append(fs, mixerNet)
				}
				fc.Filters = append(fs, last)
			}
		}
	}
}

// insertHTTPFilters returns hs with fs inserted at index at, in a new slice.
func insertHTTPFilters(hs []*hcmv3.HttpFilter, at int, fs []*hcmv3.HttpFilter) []*hcmv3.HttpFilter {
	out := make([]*hcmv3.HttpFilter, 0, len(hs)+len(fs))
	out = append(out, hs[:at]...)
	out = append(out, fs...)
	return append(out, hs[at:]...)
}
