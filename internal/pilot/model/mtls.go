package model

import (
	security "istio.io/api/security/v1beta1"

	"github.com/mast-mesh/mast/internal/config"
	"github.com/mast-mesh/mast/internal/registry"
)

// MetaWorkloadCert is the node metadata key ("true") by which a proxy says
// that its agent holds a workload certificate: only such proxies get TLS
// inbound chains and auto mTLS clusters.
const MetaWorkloadCert = "MAST_WORKLOAD_CERT"

// HasWorkloadCert reports whether the proxy can take part in mTLS.
func (p *Proxy) HasWorkloadCert() bool { return p.Metadata[MetaWorkloadCert] == "true" }

// TLSModeLabel is the workload label by which Istio marks workloads with a
// sidecar that accepts mTLS ("istio") or not ("disabled").
const TLSModeLabel = "security.istio.io/tlsMode"

// MTLSMode is a resolved PeerAuthentication mode.
type MTLSMode uint8

// Modes; the zero value is Istio's default, PERMISSIVE.
const (
	MTLSPermissive MTLSMode = iota
	MTLSStrict
	MTLSDisable
)

func (m MTLSMode) String() string {
	switch m {
	case MTLSStrict:
		return "STRICT"
	case MTLSDisable:
		return "DISABLE"
	}
	return "PERMISSIVE"
}

// peerAuthKey memoizes the push's PeerAuthentication index.
type peerAuthKey struct{}

// peerAuthIndex holds a push's PeerAuthentications by namespace, in name
// order (the snapshot's order).
type peerAuthIndex struct {
	byNS map[string][]*security.PeerAuthentication
}

func (pc *PushContext) peerAuth() *peerAuthIndex {
	return pc.Memo(peerAuthKey{}, func() any {
		ix := &peerAuthIndex{byNS: map[string][]*security.PeerAuthentication{}}
		if pc.Config == nil {
			return ix
		}
		for _, r := range pc.Config.List(config.PeerAuthentication) {
			if pa, ok := r.Spec.(*security.PeerAuthentication); ok {
				ix.byNS[r.Namespace] = append(ix.byNS[r.Namespace], pa)
			}
		}
		return ix
	}).(*peerAuthIndex)
}

// MTLSModeFor resolves the PeerAuthentication mode of port (the workload's
// own port) of a workload in namespace ns with labels, as Istio does: the
// workload's policy (a selector matching its labels, port-level settings
// first), else the namespace's policy (no selector), else the mesh's (the
// root namespace, no selector), else PERMISSIVE; UNSET inherits from the
// next level. Among several candidates of a level the first by name wins.
func (pc *PushContext) MTLSModeFor(ns string, labels map[string]string, port uint32) MTLSMode {
	ix := pc.peerAuth()
	var workload, namespace, mesh *security.PeerAuthentication
	for _, pa := range ix.byNS[ns] {
		sel := pa.GetSelector().GetMatchLabels()
		switch {
		case len(sel) > 0:
			if workload == nil && LabelsMatch(sel, labels) {
				workload = pa
			}
		case namespace == nil:
			namespace = pa
		}
	}
	for _, pa := range ix.byNS[pc.Mesh.RootNamespace] {
		if len(pa.GetSelector().GetMatchLabels()) == 0 {
			mesh = pa
			break
		}
	}
	if workload != nil {
		if pm, ok := workload.GetPortLevelMtls()[port]; ok {
			if m, ok := mode(pm.GetMode()); ok {
				return m
			}
		}
	}
	for _, pa := range []*security.PeerAuthentication{workload, namespace, mesh} {
		if pa == nil {
			continue
		}
		if m, ok := mode(pa.GetMtls().GetMode()); ok {
			return m
		}
	}
	return MTLSPermissive
}

func mode(m security.PeerAuthentication_MutualTLS_Mode) (MTLSMode, bool) {
	switch m {
	case security.PeerAuthentication_MutualTLS_STRICT:
		return MTLSStrict, true
	case security.PeerAuthentication_MutualTLS_PERMISSIVE:
		return MTLSPermissive, true
	case security.PeerAuthentication_MutualTLS_DISABLE:
		return MTLSDisable, true
	}
	return 0, false
}

// EndpointAcceptsMTLS reports whether a client may use mTLS to ep (auto
// mTLS): its workload has a sidecar — the tlsMode label says "istio", or,
// without the label, it has a service account, as Istio decides for
// WorkloadEntries — and its PeerAuthentication for the port is not DISABLE.
// ns is the endpoint's namespace, port its workload port.
func (pc *PushContext) EndpointAcceptsMTLS(ep *registry.Endpoint, ns string, port uint32) bool {
	switch v, ok := ep.Labels[TLSModeLabel]; {
	case ok && v != "istio":
		return false
	case !ok && ep.ServiceAccount == "":
		return false
	}
	return pc.MTLSModeFor(ns, ep.Labels, port) != MTLSDisable
}
