package generate

import (
	"net"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	proxyprotocolv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/proxy_protocol/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	networking "istio.io/api/networking/v1alpha3"
)

const upstreamProxyProtocolSocketName = "envoy.transport_sockets.upstream_proxy_protocol"

// applyProxyProtocol wraps the cluster's transport sockets in Envoy's
// upstream_proxy_protocol socket, as istiod does for a DestinationRule's
// proxyProtocol: the transport_socket and each transport_socket_matches
// entry, or a raw buffer when the cluster has neither.
func applyProxyProtocol(c *clusterv3.Cluster, pp *networking.TrafficPolicy_ProxyProtocol) {
	if pp == nil {
		return
	}
	version := corev3.ProxyProtocolConfig_V1
	if pp.GetVersion() == networking.TrafficPolicy_ProxyProtocol_V2 {
		version = corev3.ProxyProtocolConfig_V2
	}
	wrap := func(inner *corev3.TransportSocket) *corev3.TransportSocket {
		return &corev3.TransportSocket{
			Name: upstreamProxyProtocolSocketName,
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(&proxyprotocolv3.ProxyProtocolUpstreamTransport{
				Config:          &corev3.ProxyProtocolConfig{Version: version},
				TransportSocket: inner,
			})},
		}
	}
	if c.TransportSocket == nil && len(c.TransportSocketMatches) == 0 {
		c.TransportSocket = wrap(&corev3.TransportSocket{Name: rawBufferSocketName,
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(&rawbufferv3.RawBuffer{})}})
		return
	}
	if c.TransportSocket != nil {
		c.TransportSocket = wrap(c.TransportSocket)
	}
	for _, m := range c.TransportSocketMatches {
		m.TransportSocket = wrap(m.TransportSocket)
	}
}

// tunnelingConfig is the tcp_proxy's tunneling_config for a single
// destination cluster outbound|port|subset|host, from the tunnel of the
// host's DestinationRule (the subset's replacing the rule's), as istiod
// sets it: CONNECT, or POST, for targetHost:targetPort. nil without one.
func (g *gen) tunnelingConfig(cluster string) *tcpproxyv3.TcpProxy_TunnelingConfig {
	host, ok := outboundHost(cluster)
	if !ok {
		return nil
	}
	dr := g.pc.DestinationRule(g.p, host)
	if dr == nil {
		return nil
	}
	parts := strings.Split(cluster, "|") // outbound|port|subset|host
	port, _ := strconv.ParseUint(parts[1], 10, 32)
	t := effectivePolicy(dr, uint32(port), parts[2]).tunnel
	if t == nil {
		return nil
	}
	return &tcpproxyv3.TcpProxy_TunnelingConfig{
		Hostname: net.JoinHostPort(t.GetTargetHost(), strconv.FormatUint(uint64(t.GetTargetPort()), 10)),
		UsePost:  t.GetProtocol() == "POST",
	}
}
