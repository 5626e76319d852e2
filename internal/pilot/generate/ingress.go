package generate

import (
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/pilot/model"
	"github.com/mast-mesh/mast/internal/registry"
)

// Sidecar ingress listeners, as istiod builds them (listener_inbound.go):
// an ingress port whose captureMode is NONE (or DEFAULT on a proxy without
// capture) gets a listener of its own, bound to ingress.bind (else the
// proxy's address), named BIND_PORT; IPTABLES (or DEFAULT with capture)
// puts the port's chains into virtualInbound, which a proxy without
// capture does not have, so such a port is not served there. An ingress
// tls terminates TLS on the port when its PeerAuthentication mode is
// DISABLE (with mTLS in force, mTLS takes the port, as in istiod).

// afterTLSTermination is the protocol an application sees behind a
// sidecar terminating TLS (Istio's AfterTLSTermination).
func afterTLSTermination(p registry.Protocol) registry.Protocol {
	switch p {
	case registry.HTTPS:
		return registry.HTTP
	case registry.TLS:
		return registry.TCP
	}
	return p
}

// inboundBinds reports whether an inbound port gets a listener bound to a
// real port (istiod's getBindToPort).
func (g *gen) inboundBinds(in inboundPort) bool {
	switch in.ingress.GetCaptureMode() {
	case networking.CaptureMode_NONE:
		return true
	case networking.CaptureMode_IPTABLES:
		return false
	}
	return g.p.InterceptionNone()
}

// inboundBindIP is the address of an inbound port's bound listener: the
// ingress listener's bind, else the proxy's address without capture, and
// with capture its global unicast address or 0.0.0.0 (istiod's
// getSidecarInboundBindIPs).
func (g *gen) inboundBindIP(in inboundPort) string {
	if b := in.ingress.GetBind(); b != "" {
		return b
	}
	ip := g.p.IP()
	if g.p.InterceptionNone() {
		return ip
	}
	if a, err := netip.ParseAddr(ip); err == nil && a.IsGlobalUnicast() {
		return ip
	}
	return wildcardIP
}

// boundInbound is an inbound port served by a listener of its own.
type boundInbound struct {
	inboundPort
	ip string
}

func (b boundInbound) name() string { return listenerName(b.ip, b.port) }

// boundInbounds lists the inbound ports with listeners of their own.
func (g *gen) boundInbounds() []boundInbound {
	var out []boundInbound
	for _, in := range g.inboundPorts() {
		if !g.inboundBinds(in) {
			continue
		}
		ip := g.inboundBindIP(in)
		if ip == "" {
			continue // no address to bind (a proxy without capture and without IP)
		}
		out = append(out, boundInbound{inboundPort: in, ip: ip})
	}
	return out
}

// boundInboundListeners are the listeners of boundInbounds.
func (g *gen) boundInboundListeners() []model.XDSResource {
	var out []model.XDSResource
	for _, b := range g.boundInbounds() {
		l := &listenerv3.Listener{
			Name:             b.name(),
			Address:          socketAddress(b.ip, b.port),
			TrafficDirection: corev3.TrafficDirection_INBOUND,
			FilterChains:     g.inboundChains(b.inboundPort, 0),
		}
		if needsTLSInspector(l.FilterChains) {
			l.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspector()}
		}
		out = append(out, listenerResource(l))
	}
	return out
}

// ingressTLSChain is the chain of a port whose Sidecar ingress terminates
// TLS: TLS connections only, with the configured certificate (istiod's
// getTLSFilterChainMatchOptions and BuildListenerTLSContext).
func (g *gen) ingressTLSChain(in inboundPort, matchPort uint32) *listenerv3.FilterChain {
	m := &listenerv3.FilterChainMatch{TransportProtocol: transportTLS}
	if matchPort != 0 {
		m.DestinationPort = u32(matchPort)
	}
	return &listenerv3.FilterChain{
		Name:             InboundClusterName(in.port),
		FilterChainMatch: m,
		TransportSocket:  downstreamTLS(in.tls(), in.protocol.IsHTTP(), nil),
		Filters:          []*listenerv3.Filter{g.inboundFilter(in)},
	}
}
