package generate

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	meshconfig "istio.io/api/mesh/v1alpha1"
)

// securityFilters are the AuthorizationPolicy filters of the chains that
// receive traffic for the workload (sidecar inbound, every gateway chain):
// HTTP RBAC after jwt_authn (when present), network RBAC before tcp_proxy.
// active is false when neither they nor the mesh's path normalization
// change any chain.
func (g *gen) securityFilters() (httpFilters []*hcmv3.HttpFilter, tcpFilters []*listenerv3.Filter, active bool) {
	policies := g.authzPolicies()
	for _, s := range g.authzFilters(policies, false) {
		if s.custom {
			httpFilters = append(httpFilters, g.customHTTPFilters(s, policies)...)
			continue
		}
		if f := s.httpFilter(); f != nil {
			httpFilters = append(httpFilters, f)
		}
	}
	for _, s := range g.authzFilters(policies, true) {
		if s.custom {
			tcpFilters = append(tcpFilters, g.customNetworkFilters(s, policies)...)
			continue
		}
		if f := s.networkFilter(); f != nil {
			tcpFilters = append(tcpFilters, f)
		}
	}
	norm := g.pc.Mesh.PathNormalization
	active = len(httpFilters) > 0 || len(tcpFilters) > 0 ||
		(norm != meshconfig.MeshConfig_ProxyPathNormalization_DEFAULT && norm != meshconfig.MeshConfig_ProxyPathNormalization_BASE)
	return httpFilters, tcpFilters, active
}

// insertAfterJWT puts fs right after jwt_authn (first when there is none).
func insertAfterJWT(m *hcmv3.HttpConnectionManager, fs []*hcmv3.HttpFilter) {
	at := 0
	for i, f := range m.HttpFilters {
		if f.GetName() == "envoy.filters.http.jwt_authn" {
			at = i + 1
		}
	}
	m.HttpFilters = insertHTTPFilters(m.HttpFilters, at, fs)
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
