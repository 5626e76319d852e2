package generate

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/mast-mesh/mast/internal/pilot/model"
)

// applyHTTPSecurity finishes the proxy's listeners: every HTTP connection
// manager gets the mesh's path normalization, and the chains that receive
// traffic for the workload (sidecar inbound, every gateway chain) get the
// AuthorizationPolicy filters: HTTP RBAC after jwt_authn (when present),
// network RBAC before tcp_proxy. Listeners are fresh per generation, so
// they are changed in place.
func (g *gen) applyHTTPSecurity(out []model.XDSResource) {
	policies := g.authzPolicies()
	var httpFilters []*hcmv3.HttpFilter
	var tcpFilters []*listenerv3.Filter
	for _, s := range g.authzFilters(policies, false) {
		if f := s.httpFilter(); f != nil {
			httpFilters = append(httpFilters, f)
		}
	}
	for _, s := range g.authzFilters(policies, true) {
		if f := s.networkFilter(); f != nil {
			tcpFilters = append(tcpFilters, f)
		}
	}
	norm := g.pc.Mesh.PathNormalization
	if len(httpFilters) == 0 && len(tcpFilters) == 0 && (norm == meshconfig.MeshConfig_ProxyPathNormalization_DEFAULT ||
		norm == meshconfig.MeshConfig_ProxyPathNormalization_BASE) {
		return
	}
	for _, r := range out {
		l, ok := r.Resource.(*listenerv3.Listener)
		if !ok {
			continue
		}
		inbound := g.p.Type == model.Router || l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND || l.GetName() == virtualInboundName
		chains := l.GetFilterChains()
		if l.GetDefaultFilterChain() != nil {
			chains = append(chains[:len(chains):len(chains)], l.GetDefaultFilterChain())
		}
		for _, fc := range chains {
			g.secureChain(fc, inbound, httpFilters, tcpFilters, norm)
		}
	}
}

func (g *gen) secureChain(fc *listenerv3.FilterChain, inbound bool, httpFilters []*hcmv3.HttpFilter, tcpFilters []*listenerv3.Filter,
	norm meshconfig.MeshConfig_ProxyPathNormalization_NormalizationType) {
	n := len(fc.GetFilters())
	if n == 0 {
		return
	}
	last := fc.Filters[n-1]
	switch last.GetName() {
	case hcmFilterName:
		var m hcmv3.HttpConnectionManager
		if last.GetTypedConfig().UnmarshalTo(&m) != nil {
			return
		}
		setPathNormalization(&m, norm)
		if inbound && len(httpFilters) > 0 {
			at := 0
			for i, f := range m.HttpFilters {
				if f.GetName() == "envoy.filters.http.jwt_authn" {
					at = i + 1
				}
			}
			fs := append([]*hcmv3.HttpFilter{}, m.HttpFilters[:at]...)
			fs = append(fs, httpFilters...)
			m.HttpFilters = append(fs, m.HttpFilters[at:]...)
		}
		fc.Filters[n-1] = hcmFilter(&m)
	case tcpProxyFilterName:
		if inbound && len(tcpFilters) > 0 {
			fs := append([]*listenerv3.Filter{}, fc.Filters[:n-1]...)
			fs = append(fs, tcpFilters...)
			fc.Filters = append(fs, last)
		}
	}
}

// setPathNormalization sets the HCM's path fields as Istio does for the
// mesh's pathNormalization.
func setPathNormalization(m *hcmv3.HttpConnectionManager, norm meshconfig.MeshConfig_ProxyPathNormalization_NormalizationType) {
	switch norm {
	case meshconfig.MeshConfig_ProxyPathNormalization_NONE:
		m.NormalizePath, m.MergeSlashes = boolv(false), false
		m.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_KEEP_UNCHANGED
	case meshconfig.MeshConfig_ProxyPathNormalization_MERGE_SLASHES:
		m.NormalizePath, m.MergeSlashes = boolv(true), true
	case meshconfig.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES:
		m.NormalizePath, m.MergeSlashes = boolv(true), true
		m.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD
	default: // DEFAULT, BASE
		m.NormalizePath = boolv(true)
	}
}
