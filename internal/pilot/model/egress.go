package model

import (
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/registry"
)

// EgressListener is one Sidecar egress listener that names a port: the
// services its own hosts select (not the union of every egress listener's
// hosts, which is what the scope as a whole sees). Generators turn such a
// listener into a listener of its own when it binds (captureMode NONE, or a
// proxy without traffic capture).
type EgressListener struct {
	// Spec is the egress listener as written; never modified.
	Spec *networking.IstioEgressListener
	// Index is the listener's position in the Sidecar's egress list.
	Index    int
	Port     uint32
	Protocol registry.Protocol
	// Services are the visible services the listener's hosts select, sorted by hostname.
	Services []*registry.Service
}

// Bind returns the address the listener binds: its bind field, else def.
func (e *EgressListener) Bind(def string) string {
	if b := e.Spec.GetBind(); b != "" {
		return b
	}
	return def
}

// CaptureNone reports whether the listener asks for no capture (captureMode NONE).
func (e *EgressListener) CaptureNone() bool {
	return e.Spec.GetCaptureMode() == networking.CaptureMode_NONE
}

// buildEgressListeners scopes each port-carrying egress listener of sc to
// its own hosts; services must already be the scope's visible services.
func buildEgressListeners(sc *Sidecar, ns string, services []*registry.Service) []*EgressListener {
	var out []*EgressListener
	for i, l := range sc.Spec.GetEgress() {
		n := l.GetPort().GetNumber()
		if n == 0 || n > 65535 {
			continue
		}
		hosts := parseListenerHosts(l, ns)
		e := &EgressListener{Spec: l, Index: i, Port: n, Protocol: registry.PortProtocol(l.GetPort().GetProtocol(), l.GetPort().GetName())}
		for _, svc := range services {
			if egressAllows(hosts, svc.Namespace, svc.Hostname) {
				e.Services = append(e.Services, svc)
			}
		}
		out = append(out, e)
	}
	return out
}
