package xdsparse

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	proxyprotocolv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/proxy_protocol/v3"
)

// UpstreamProxyProtocolSocket is Envoy's transport socket that writes a
// PROXY protocol header on each upstream connection before the inner
// socket's bytes (Istio's DestinationRule proxyProtocol).
const UpstreamProxyProtocolSocket = "envoy.transport_sockets.upstream_proxy_protocol"

var proxyProtocolRules = rules(
	ruleRow{"envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport", honoured, "config"},
	// the inner socket is parsed as a cluster's own (parseTransportSocket)
	ruleRow{"envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport", parsedApart, "transport_socket"},
	ruleRow{"envoy.config.core.v3.ProxyProtocolConfig", honoured, "version"},
)

// unwrapProxyProtocol returns the socket inside an upstream_proxy_protocol
// transport socket and the PROXY protocol version it asks for (1 or 2);
// any other socket comes back as it is, with version 0.
func unwrapProxyProtocol(ts *corev3.TransportSocket) (*corev3.TransportSocket, uint8, error) {
	a := ts.GetTypedConfig()
	if a == nil || !a.MessageIs((*proxyprotocolv3.ProxyProtocolUpstreamTransport)(nil)) {
		if ts.GetName() == UpstreamProxyProtocolSocket {
			return nil, 0, fmt.Errorf("transport_socket %q: typed_config is not a ProxyProtocolUpstreamTransport", ts.GetName())
		}
		return ts, 0, nil
	}
	var p proxyprotocolv3.ProxyProtocolUpstreamTransport
	if err := a.UnmarshalTo(&p); err != nil {
		return nil, 0, fmt.Errorf("transport_socket %q: %w", ts.GetName(), err)
	}
	if err := checkFields(&p, proxyProtocolRules); err != nil {
		return nil, 0, fmt.Errorf("transport_socket %q: %w", ts.GetName(), err)
	}
	var v uint8
	switch p.GetConfig().GetVersion() {
	case corev3.ProxyProtocolConfig_V1:
		v = 1
	case corev3.ProxyProtocolConfig_V2:
		v = 2
	default:
		return nil, 0, fmt.Errorf("transport_socket %q: config.version %v not supported", ts.GetName(), p.GetConfig().GetVersion())
	}
	if p.GetTransportSocket() == nil {
		return nil, 0, fmt.Errorf("transport_socket %q: transport_socket missing", ts.GetName())
	}
	if _, nested, _ := unwrapProxyProtocol(p.GetTransportSocket()); nested != 0 {
		return nil, 0, fmt.Errorf("transport_socket %q: nested PROXY protocol sockets", ts.GetName())
	}
	return p.GetTransportSocket(), v, nil
}

// clusterProxyProtocol is the PROXY protocol version of a cluster whose
// transport_socket and transport_socket_matches are wrapped in
// upstream_proxy_protocol sockets (istiod wraps each of them); 0 for none.
// Every socket must ask for the same version: a cluster sending the header
// to some endpoints only is refused. The wrapped sockets themselves are
// parsed by parseTransportSocket, which unwraps them.
func clusterProxyProtocol(socket *corev3.TransportSocket, matches []*corev3.TransportSocket) (uint8, error) {
	var (
		version uint8
		seen    bool
	)
	check := func(ts *corev3.TransportSocket, what string) error {
		if ts == nil {
			return nil
		}
		_, v, err := unwrapProxyProtocol(ts)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if seen && v != version {
			return fmt.Errorf("%s: PROXY protocol version %d differs from another transport socket's %d", what, v, version)
		}
		version, seen = v, true
		return nil
	}
	if err := check(socket, "transport_socket"); err != nil {
		return 0, err
	}
	for i, m := range matches {
		if err := check(m, fmt.Sprintf("transport_socket_matches[%d]", i)); err != nil {
			return 0, err
		}
	}
	return version, nil
}
