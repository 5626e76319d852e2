package xdsparse

import (
	"fmt"

	"github.com/mast-mesh/mast/internal/proxy/pbwire"
)

// UpstreamProxyProtocolSocket is Envoy's transport socket that writes a
// PROXY protocol header on each upstream connection before the inner
// socket's bytes (Istio's DestinationRule proxyProtocol).
const UpstreamProxyProtocolSocket = "envoy.transport_sockets.upstream_proxy_protocol"

var proxyProtocolRules = rules(
	ruleRow{"envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport", honoured, "config"},
	// the inner socket is parsed as a cluster's own (parseTransportSocketWire)
	ruleRow{"envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport", parsedApart, "transport_socket"},
	ruleRow{"envoy.config.core.v3.ProxyProtocolConfig", honoured, "version"},
)

// unwrapProxyProtocolWire returns the socket inside an
// upstream_proxy_protocol transport socket and the PROXY protocol version
// it asks for (1 or 2); any other socket comes back as it is, with
// version 0.
func unwrapProxyProtocolWire(ts *pbwire.Msg) (*pbwire.Msg, uint8, error) {
	name := ts.Str(tsName)
	a := typedConfig(ts, tsTypedConfig)
	if a == nil || !anyIs(a.GetTypeUrl(), proxyProtocolName) {
		if name == UpstreamProxyProtocolSocket {
			return nil, 0, fmt.Errorf("transport_socket %q: typed_config is not a ProxyProtocolUpstreamTransport", name)
		}
		return ts, 0, nil
	}
	p, err := unpackTyped(descProxyProtocolUpstream, a.GetValue())
	if err != nil {
		return nil, 0, fmt.Errorf("transport_socket %q: %w", name, err)
	}
	if err := checkWire(p, proxyProtocolRules); err != nil {
		return nil, 0, fmt.Errorf("transport_socket %q: %w", name, err)
	}
	var v uint8
	cfg := p.Sub(ppConfig)
	switch version := int32(cfg.U64(ppcVersion)); version {
	case proxyProtocolV1:
		v = 1
	case proxyProtocolV2:
		v = 2
	default:
		return nil, 0, fmt.Errorf("transport_socket %q: config.version %s not supported", name, enumName(cfg, ppcVersion, version))
	}
	inner := transportSocket(p, ppTransportSocket)
	if inner == nil {
		return nil, 0, fmt.Errorf("transport_socket %q: transport_socket missing", name)
	}
	if _, nested, _ := unwrapProxyProtocolWire(inner); nested != 0 {
		return nil, 0, fmt.Errorf("transport_socket %q: nested PROXY protocol sockets", name)
	}
	return inner, v, nil
}

// clusterProxyProtocolWire is the PROXY protocol version of a cluster whose
// transport_socket and transport_socket_matches are wrapped in
// upstream_proxy_protocol sockets (istiod wraps each of them); 0 for none.
// Every socket must ask for the same version: a cluster sending the header
// to some endpoints only is refused. The wrapped sockets themselves are
// parsed by parseTransportSocketWire, which unwraps them.
func clusterProxyProtocolWire(socket *pbwire.Msg, matches []*pbwire.Msg) (uint8, error) {
	var (
		version uint8
		seen    bool
	)
	check := func(ts *pbwire.Msg, what string) error {
		if ts == nil {
			return nil
		}
		_, v, err := unwrapProxyProtocolWire(ts)
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
